// More of the unmodified e2b@2.51.0 and @e2b/desktop@2.4.0 SDKs against a
// real `cubicle serve`: PTYs, reconnecting to commands, stdin, multi-file
// and binary uploads, signed file URLs, static control-plane calls, and the
// desktop's pointer, keyboard, window and stream calls, each checked by
// its effect inside the sandbox.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import {
  Sandbox, CommandExitError, FileType, NotFoundError,
} from 'e2b'
import { Sandbox as Desktop } from '@e2b/desktop'
import { DOMAIN } from './server.mjs'
import { until, send, multipart, useServer } from './util.mjs'

const env = useServer()
const made = env.made // every sandbox a test made, killed at the end

const enc = (s) => new TextEncoder().encode(s)
const sha256 = (b) => createHash('sha256').update(b).digest('hex')

describe('base SDK', () => {
  let sbx
  const tag = `more-${process.pid}`

  before(async () => {
    sbx = await Sandbox.create('base', { metadata: { suite: tag }, timeoutMs: 600_000 })
    made.add(sbx.sandboxId)
  })

  describe('pty', () => {
    it('echoes typed input, runs it, follows resize and is killed', async () => {
      let out = ''
      const dec = new TextDecoder()
      const pty = await sbx.pty.create({
        cols: 80, rows: 24, timeoutMs: 120_000, onData: (d) => { out += dec.decode(d, { stream: true }) },
      })
      assert.ok(pty.pid > 0)
      await sbx.pty.sendInput(pty.pid, enc('echo pty-$((6*7)) $TERM\n'))
      // The terminal echoes what was typed, and the shell prints the result.
      await until('the command to run in the pty', async () => out.includes('pty-42 xterm-256color'), 30_000)
      assert.ok(out.includes('echo pty-$((6*7))'), `no echo of the typed line in ${JSON.stringify(out)}`)
      await sbx.pty.sendInput(pty.pid, enc('stty size\n'))
      await until('the first size', async () => out.includes('24 80'), 30_000)
      await sbx.pty.resize(pty.pid, { cols: 100, rows: 30 })
      await sbx.pty.sendInput(pty.pid, enc('stty size\n'))
      await until('the new size', async () => out.includes('30 100'), 30_000)
      assert.equal(await sbx.pty.kill(pty.pid), true)
      await assert.rejects(pty.wait(), CommandExitError)
      await until('the pty to leave the list', async () => !(await sbx.commands.list()).some((p) => p.pid === pty.pid))
    })
  })

  describe('commands', () => {
    it('connect follows a background command started earlier', async () => {
      const h = await sbx.commands.run(
        'echo first; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo after-connect; exit 7', { background: true })
      await h.disconnect()
      const chunks = []
      const again = await sbx.commands.connect(h.pid, { onStdout: (d) => chunks.push(d) })
      assert.equal(again.pid, h.pid)
      await sbx.files.write('/tmp/go', '')
      await assert.rejects(again.wait(), (e) => {
        assert.ok(e instanceof CommandExitError, `${e}`)
        assert.equal(e.exitCode, 7)
        assert.match(e.stdout, /after-connect\n$/)
        return true
      })
      assert.match(chunks.join(''), /after-connect\n$/)
      await assert.rejects(sbx.commands.connect(h.pid + 100_000), NotFoundError)
    })

    it('list reports each command as it was started', async () => {
      const h = await sbx.commands.run('sleep 600', { background: true, envs: { LISTED: 'yes' }, cwd: '/tmp' })
      try {
        const p = (await sbx.commands.list()).find((p) => p.pid === h.pid)
        assert.ok(p, 'the command is not listed')
        assert.equal(p.cmd, '/bin/bash')
        assert.deepEqual(p.args, ['-l', '-c', 'sleep 600'])
        assert.equal(p.envs.LISTED, 'yes')
        assert.equal(p.cwd, '/tmp')
      } finally {
        await h.kill()
      }
    })

    it('sendStdin then closeStdin ends a reader', async () => {
      const h = await sbx.commands.run('wc -c', { background: true, stdin: true })
      await sbx.commands.sendStdin(h.pid, 'twelve bytes')
      await sbx.commands.sendStdin(h.pid, enc(' and 6'))
      await sbx.commands.closeStdin(h.pid)
      const r = await h.wait()
      assert.equal(r.stdout.trim(), '18')
    })
  })

  describe('files', () => {
    it('writes several files in one call', async () => {
      const infos = await sbx.files.write([
        { path: '/tmp/multi/a.txt', data: 'alpha' },
        { path: '/tmp/multi/sub/b.bin', data: new Uint8Array([1, 2, 3]).buffer },
        { path: 'rel-multi.txt', data: new Blob(['gamma']) },
      ])
      assert.deepEqual(infos.map((i) => i.path), ['/tmp/multi/a.txt', '/tmp/multi/sub/b.bin', '/home/user/rel-multi.txt'])
      assert.equal(await sbx.files.read('/tmp/multi/a.txt'), 'alpha')
      assert.deepEqual(await sbx.files.read('/tmp/multi/sub/b.bin', { format: 'bytes' }), new Uint8Array([1, 2, 3]))
      assert.equal(await sbx.files.read('/home/user/rel-multi.txt'), 'gamma')
      const r = await sbx.commands.run('stat -c %U /tmp/multi/sub /tmp/multi/sub/b.bin')
      assert.equal(r.stdout, 'user\nuser\n')
    })

    it('a Blob of every byte value reads back exactly, as bytes, blob and stream', async () => {
      const all = new Uint8Array(256 * 4)
      for (let i = 0; i < all.length; i++) all[i] = i % 256
      await sbx.files.write('/tmp/all.bin', new Blob([all]))
      assert.deepEqual(await sbx.files.read('/tmp/all.bin', { format: 'bytes' }), all)
      const blob = await sbx.files.read('/tmp/all.bin', { format: 'blob' })
      assert.ok(blob instanceof Blob)
      assert.deepEqual(new Uint8Array(await blob.arrayBuffer()), all)
      const stream = await sbx.files.read('/tmp/all.bin', { format: 'stream' })
      const parts = []
      for await (const c of stream) parts.push(c)
      assert.deepEqual(new Uint8Array(Buffer.concat(parts)), all)
      assert.equal((await sbx.commands.run('sha256sum < /tmp/all.bin')).stdout.split(' ')[0], sha256(all))
    })

    it('round-trips a large file, multipart, streamed and gzipped', async () => {
      const big = randomBytes(12 << 20)
      await sbx.files.write('/tmp/big.bin', big.buffer.slice(big.byteOffset, big.byteOffset + big.length))
      const back = await sbx.files.read('/tmp/big.bin', { format: 'bytes' })
      assert.equal(back.length, big.length)
      assert.equal(sha256(back), sha256(big))
      assert.equal((await sbx.commands.run('sha256sum < /tmp/big.bin')).stdout.split(' ')[0], sha256(big))

      // A ReadableStream goes up as application/octet-stream.
      const chunk = 1 << 20
      const body = new ReadableStream({
        start(c) {
          for (let i = 0; i < big.length; i += chunk) c.enqueue(big.subarray(i, i + chunk))
          c.close()
        },
      })
      await sbx.files.write('/tmp/big-stream.bin', body)
      assert.equal((await sbx.commands.run('sha256sum < /tmp/big-stream.bin')).stdout.split(' ')[0], sha256(big))

      await sbx.files.write('/tmp/big-gzip.bin', big.buffer.slice(big.byteOffset, big.byteOffset + big.length), { gzip: true })
      assert.equal((await sbx.commands.run('sha256sum < /tmp/big-gzip.bin')).stdout.split(' ')[0], sha256(big))
    })

    it('exists and getInfo describe files, directories and links', async () => {
      await sbx.files.write('/tmp/info/f.txt', 'twelve bytes', { metadata: { owner: 'tests' } })
      await sbx.commands.run('chmod 640 /tmp/info/f.txt && ln -s /tmp/info/f.txt /tmp/info/link')
      const f = await sbx.files.getInfo('/tmp/info/f.txt')
      assert.equal(f.name, 'f.txt')
      assert.equal(f.type, FileType.FILE)
      assert.equal(f.path, '/tmp/info/f.txt')
      assert.equal(f.size, 12)
      assert.equal(f.mode, 0o640)
      assert.equal(f.permissions, '-rw-r-----')
      assert.equal(f.owner, 'user')
      assert.equal(f.group, 'user')
      assert.ok(f.modifiedTime instanceof Date && Math.abs(f.modifiedTime - Date.now()) < 600_000, `${f.modifiedTime}`)
      assert.deepEqual(f.metadata, { owner: 'tests' })
      const d = await sbx.files.getInfo('/tmp/info')
      assert.equal(d.type, FileType.DIR)
      const l = await sbx.files.getInfo('/tmp/info/link')
      assert.equal(l.symlinkTarget, '/tmp/info/f.txt')
      assert.equal(l.type, FileType.FILE)
      assert.equal(await sbx.files.exists('/tmp/info/link'), true)
      assert.equal(await sbx.files.exists('/tmp/info'), true)
      assert.equal(await sbx.files.exists('/tmp/info/none/deeper'), false)
      const deep = (await sbx.files.list('/tmp', { depth: 2 })).map((e) => e.path)
      assert.ok(deep.includes('/tmp/info/f.txt'), deep.join(' '))
    })
  })

  describe('file URLs', () => {
    it('downloadUrl opens with plain fetch, as returned and on the sandbox host', async () => {
      await sbx.files.write('/tmp/dl/file.txt', 'downloaded')
      const url = await sbx.downloadUrl('/tmp/dl/file.txt')
      assert.match(url, /signature=v1_/, 'the sandbox is secured, so the URL is signed')
      const r = await fetch(url)
      assert.equal(r.status, 200, await r.clone().text())
      assert.equal(await r.text(), 'downloaded')

      // Without E2B_SANDBOX_URL the SDK points it at 49983-<id>.<domain>.
      const u = new URL(url)
      const direct = await send(env.server.port, { path: u.pathname + u.search, host: `49983-${sbx.sandboxId}.${DOMAIN}` })
      assert.equal(direct.status, 200, direct.body.toString())
      assert.equal(direct.body.toString(), 'downloaded')

      const expiring = await fetch(await sbx.downloadUrl('/tmp/dl/file.txt', { useSignatureExpiration: 120 }))
      assert.equal(await expiring.text(), 'downloaded')
    })

    it('a tampered, expired or unsigned URL is refused', async () => {
      const url = new URL(await sbx.downloadUrl('/tmp/dl/file.txt'))
      const wrongPath = new URL(url)
      wrongPath.searchParams.set('path', '/etc/shadow')
      const expired = await sbx.downloadUrl('/tmp/dl/file.txt', { useSignatureExpiration: -60 })
      const unsigned = new URL(url)
      unsigned.searchParams.delete('signature')
      for (const [what, u] of [['another path', wrongPath], ['expired', expired], ['unsigned', unsigned]]) {
        const r = await fetch(u)
        assert.ok([401, 404].includes(r.status), `${what}: ${r.status} ${await r.text()}`)
        const h = new URL(u)
        const direct = await send(env.server.port, { path: h.pathname + h.search, host: `49983-${sbx.sandboxId}.${DOMAIN}` })
        assert.equal(direct.status, 401, `${what} on the sandbox host: ${direct.status} ${direct.body}`)
      }
      // A signed URL opens /files only: not the rest of envd.
      const rpc = await send(env.server.port, {
        method: 'POST', path: `/process.Process/List${url.search}`, host: `49983-${sbx.sandboxId}.${DOMAIN}`,
        headers: { 'content-type': 'application/json' }, body: '{}',
      })
      assert.equal(rpc.status, 401, rpc.body.toString())
    })

    it('uploadUrl takes a multipart POST from plain fetch', async () => {
      const url = await sbx.uploadUrl('/tmp/ul/up.bin')
      const bytes = new Uint8Array([0, 255, 10, 13, 128])
      const form = new FormData()
      form.append('file', new Blob([bytes]), 'up.bin')
      const r = await fetch(url, { method: 'POST', body: form })
      assert.equal(r.status, 200, await r.clone().text())
      const [info] = await r.json()
      assert.equal(info.path, '/tmp/ul/up.bin')
      assert.deepEqual(await sbx.files.read('/tmp/ul/up.bin', { format: 'bytes' }), bytes)

      const u = new URL(await sbx.uploadUrl('/tmp/ul/direct.txt'))
      const f2 = new FormData()
      f2.append('file', new Blob(['on the sandbox host']), 'direct.txt')
      const { body, type } = await multipart(f2)
      const direct = await send(env.server.port, {
        method: 'POST', path: u.pathname + u.search, host: `49983-${sbx.sandboxId}.${DOMAIN}`,
        headers: { 'content-type': type }, body,
      })
      assert.equal(direct.status, 200, direct.body.toString())
      assert.equal(await sbx.files.read('/tmp/ul/direct.txt'), 'on the sandbox host')

      // A download signature does not upload.
      const readSig = new URL(await sbx.downloadUrl('/tmp/ul/up.bin'))
      const f3 = new FormData()
      f3.append('file', new Blob(['overwritten']), 'up.bin')
      const denied = await fetch(readSig, { method: 'POST', body: f3 })
      assert.ok([401, 404].includes(denied.status), `${denied.status} ${await denied.text()}`)
      assert.deepEqual(await sbx.files.read('/tmp/ul/up.bin', { format: 'bytes' }), bytes)
    })
  })

  describe('control plane', () => {
    it('Sandbox.getInfo and Sandbox.setTimeout by id', async () => {
      const info = await Sandbox.getInfo(sbx.sandboxId)
      assert.equal(info.sandboxId, sbx.sandboxId)
      assert.equal(info.state, 'running')
      assert.deepEqual(info.metadata, { suite: tag })
      await Sandbox.setTimeout(sbx.sandboxId, 1_200_000)
      const left = (await Sandbox.getInfo(sbx.sandboxId)).endAt - Date.now()
      assert.ok(left > 1_100_000 && left <= 1_200_000, `endAt is ${left} ms away after setTimeout(1200 s)`)
    })

    it('getHost names a public port that answers without a token', async () => {
      await sbx.files.write('/tmp/www/index.html', 'served from the sandbox')
      await sbx.commands.run('python3 -m http.server 8081 --bind 0.0.0.0 --directory /tmp/www', { background: true })
      const host = sbx.getHost(8081)
      assert.equal(host, `8081-${sbx.sandboxId}.${DOMAIN}`)
      const r = await until('the server on port 8081', async () => {
        const r = await send(env.server.port, { path: '/index.html', host })
        return r.status === 200 ? r : null
      })
      assert.equal(r.body.toString(), 'served from the sandbox')
    })

    it('list pages one sandbox at a time with limit', async () => {
      const second = await Sandbox.create('base', { metadata: { suite: tag }, timeoutMs: 300_000 })
      made.add(second.sandboxId)
      const p = Sandbox.list({ limit: 1, query: { metadata: { suite: tag } } })
      const pages = []
      while (p.hasNext) pages.push((await p.nextItems()).map((s) => s.sandboxId))
      assert.equal(pages.length, 2, JSON.stringify(pages))
      assert.deepEqual(pages.map((pg) => pg.length), [1, 1])
      assert.deepEqual(pages.flat().sort(), [sbx.sandboxId, second.sandboxId].sort())
      assert.equal(await second.kill(), true)
    })
  })
})

// X events as xev prints them: one block per event.
function xevEvents(log) {
  const out = []
  for (const block of log.split(/\n\n+/)) {
    const m = block.match(/^(ButtonPress|ButtonRelease|KeyPress|KeyRelease) event/m)
    if (!m) continue
    const root = block.match(/root:\((-?\d+),(-?\d+)\)/)
    const button = block.match(/button (\d+)/)
    const key = block.match(/keysym 0x[0-9a-f]+, ([^)]+)\)/)
    const state = block.match(/state (0x[0-9a-f]+)/)
    out.push({
      type: m[1], x: root && +root[1], y: root && +root[2],
      button: button ? +button[1] : undefined, key: key?.[1], state: state && parseInt(state[1], 16),
    })
  }
  return out
}

describe('desktop', () => {
  let d
  let xev // the xev window: its id and centre
  let mark = 0 // how much of the xev log earlier tests consumed

  // events returns the X events xev logged since the last call, once
  // there are at least n of them.
  async function events(n) {
    const log = await until(`${n} X events`, async () => {
      const l = await d.files.read('/tmp/xev.log')
      return xevEvents(l.slice(mark)).length >= n ? l : null
    }, 30_000)
    const evs = xevEvents(log.slice(mark))
    mark = log.length
    return evs
  }

  before(async () => {
    d = await Desktop.create({ resolution: [1024, 768], timeoutMs: 600_000 })
    made.add(d.sandboxId)
    await d.wait(2000)
    // xev opens a window and logs every button and key event it receives.
    await d.commands.run('stdbuf -oL xev -geometry 500x400+200+150 -event button -event keyboard > /tmp/xev.log 2>&1',
      { background: true, timeoutMs: 0 })
    const id = await until('the xev window', async () => {
      try {
        return (await d.commands.run('xdotool search --onlyvisible --name "^Event Tester$"')).stdout.trim().split('\n')[0]
      } catch (e) {
        if (e instanceof CommandExitError) return null
        throw e
      }
    })
    const g = Object.fromEntries((await d.commands.run(`xdotool getwindowgeometry --shell ${id}`)).stdout
      .trim().split('\n').map((l) => l.split('=')).map(([k, v]) => [k, +v]))
    xev = { id, x: g.X + Math.floor(g.WIDTH / 2), y: g.Y + Math.floor(g.HEIGHT / 2) }
    await d.commands.run(`xdotool windowactivate --sync ${id}`)
    await until('xev to have the focus', async () => (await d.getCurrentWindowId()) === id, 20_000)
  }, { timeout: 5 * 60_000 })

  it('leftClick(x, y) moves there and clicks button 1', async () => {
    await d.leftClick(xev.x, xev.y)
    assert.deepEqual(await d.getCursorPosition(), { x: xev.x, y: xev.y })
    const evs = await events(2)
    assert.deepEqual(evs.map((e) => [e.type, e.button, e.x, e.y]),
      [['ButtonPress', 1, xev.x, xev.y], ['ButtonRelease', 1, xev.x, xev.y]])
  })

  it('leftClick() without coordinates clicks where the pointer is', async () => {
    await d.moveMouse(xev.x + 20, xev.y + 10)
    await d.leftClick()
    assert.deepEqual(await d.getCursorPosition(), { x: xev.x + 20, y: xev.y + 10 })
    const evs = await events(2)
    assert.deepEqual(evs.map((e) => [e.type, e.button, e.x, e.y]),
      [['ButtonPress', 1, xev.x + 20, xev.y + 10], ['ButtonRelease', 1, xev.x + 20, xev.y + 10]])
  })

  it('a click where the pointer already is does not wait for a move', async () => {
    // moveMouse runs `xdotool mousemove --sync X Y`; Debian's xdotool then
    // waits 15 s for a move that never comes. The template's xdotool skips
    // --sync when the pointer is at X Y already.
    await d.moveMouse(xev.x, xev.y)
    const r = await d.commands.run(`command -v xdotool; sh -x "$(command -v xdotool)" mousemove --sync ${xev.x} ${xev.y} 2>&1`)
    assert.equal(r.stdout.split('\n')[0], '/usr/local/bin/xdotool')
    assert.ok(r.stdout.includes(`+ exec /usr/bin/xdotool mousemove ${xev.x} ${xev.y}\n`), r.stdout)
    await d.leftClick(xev.x, xev.y)
    const evs = await events(2)
    assert.deepEqual(evs.map((e) => [e.type, e.button, e.x, e.y]),
      [['ButtonPress', 1, xev.x, xev.y], ['ButtonRelease', 1, xev.x, xev.y]])
  })

  it('doubleClick, rightClick and middleClick press their buttons', async () => {
    await d.doubleClick(xev.x - 30, xev.y)
    assert.deepEqual(await d.getCursorPosition(), { x: xev.x - 30, y: xev.y })
    await d.rightClick(xev.x, xev.y - 30)
    await d.middleClick(xev.x + 30, xev.y + 30)
    assert.deepEqual(await d.getCursorPosition(), { x: xev.x + 30, y: xev.y + 30 })
    const presses = (await events(8)).filter((e) => e.type === 'ButtonPress').map((e) => [e.button, e.x, e.y])
    assert.deepEqual(presses, [[1, xev.x - 30, xev.y], [1, xev.x - 30, xev.y], [3, xev.x, xev.y - 30], [2, xev.x + 30, xev.y + 30]])
  })

  it('scroll sends wheel buttons 5 (down) and 4 (up)', async () => {
    await d.moveMouse(xev.x, xev.y)
    await d.scroll('down', 3)
    await d.scroll('up')
    const presses = (await events(8)).filter((e) => e.type === 'ButtonPress').map((e) => e.button)
    assert.deepEqual(presses, [5, 5, 5, 4])
  })

  it('drag presses at one point and releases at the other', async () => {
    const from = [xev.x - 50, xev.y - 40]
    const to = [xev.x + 60, xev.y + 45]
    await d.drag(from, to)
    assert.deepEqual(await d.getCursorPosition(), { x: to[0], y: to[1] })
    const evs = await events(2)
    assert.deepEqual(evs.map((e) => [e.type, e.button, e.x, e.y]),
      [['ButtonPress', 1, ...from], ['ButtonRelease', 1, ...to]])
  })

  it('mousePress and mouseRelease hold a button', async () => {
    await d.mousePress('right')
    const pressed = await events(1)
    assert.deepEqual(pressed.map((e) => [e.type, e.button]), [['ButtonPress', 3]])
    await d.mouseRelease('right')
    await d.mousePress('middle')
    await d.mouseRelease('middle')
    const rest = await events(3)
    assert.deepEqual(rest.map((e) => [e.type, e.button]), [['ButtonRelease', 3], ['ButtonPress', 2], ['ButtonRelease', 2]])
  })

  it('press sends single keys and combinations to the focused window', async () => {
    assert.equal(await d.getCurrentWindowId(), xev.id)
    await d.press(['ctrl', 'a'])
    await d.press('enter')
    await d.press(['shift', 'Tab'])
    const keys = (await events(10)).filter((e) => e.type === 'KeyPress').map((e) => [e.key, e.state & 0x5])
    assert.deepEqual(keys, [['Control_L', 0], ['a', 4], ['Return', 0], ['Shift_L', 0], ['ISO_Left_Tab', 1]])
  })

  it('wait returns after sleeping in the sandbox', async () => {
    await d.wait(300)
  })

  it('screenshot as a blob and a stream is a PNG', async () => {
    const blob = await d.screenshot('blob')
    assert.ok(blob instanceof Blob)
    const head = new Uint8Array(await blob.slice(0, 8).arrayBuffer())
    assert.deepEqual([...head], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
    const parts = []
    for await (const c of await d.screenshot('stream')) parts.push(c)
    const png = Buffer.concat(parts)
    assert.deepEqual([...png.subarray(0, 8)], [...head])
    assert.equal(png.readUInt32BE(16), 1024)
    assert.equal(png.readUInt32BE(20), 768)
  })

  it('write types non-ASCII text into a terminal', async () => {
    const before = new Set(await windows('xfce4-terminal'))
    await d.launch('xfce4-terminal')
    const id = await until('a terminal window', async () => (await windows('xfce4-terminal')).find((w) => !before.has(w)))
    await d.commands.run(`xdotool windowactivate --sync ${id}`)
    await until('the terminal to have the focus', async () => (await d.getCurrentWindowId()) === id, 20_000)
    const text = 'héllo wörld ✓ ß € ñ'
    await d.write(`printf '%s\\n' '${text}' > /tmp/utf8.txt`)
    await d.press('enter')
    let got
    await until('the terminal to write the file', async () => (got = await d.files.read('/tmp/utf8.txt')) === `${text}\n`, 60_000)
      .catch((e) => assert.equal(got, `${text}\n`, `${e.message}: the file holds ${JSON.stringify(got)}`))
  })

  it('open shows a directory, a text file and an image in windows', async () => {
    await d.files.write('/home/user/opened-dir/note.txt', 'a note')
    await d.open('/home/user/opened-dir')
    await until('a window for the directory', async () => (await windowNames()).some((n) => n.includes('opened-dir')), 120_000)
    await d.open('/home/user/opened-dir/note.txt')
    await until('a window for the file', async () => (await windowNames()).some((n) => n.includes('note.txt')), 120_000)
    await d.files.write('/home/user/opened-dir/shot.png', await d.screenshot())
    await d.open('/home/user/opened-dir/shot.png')
    await until('a window for the image', async () => (await windowNames()).some((n) => n.includes('shot.png')), 120_000)
  })

  it('stream.start({windowId}) shares that window only', async () => {
    await d.stream.start({ windowId: xev.id })
    try {
      const cmd = (await d.commands.run('pgrep -a x11vnc')).stdout
      assert.match(cmd, new RegExp(`-id ${xev.id}\\b`))
      assert.deepEqual(await rfbSecurity(), [1]) // None
      const url = new URL(d.stream.getUrl())
      const page = await send(env.server.port, { path: url.pathname + url.search, host: url.host })
      assert.equal(page.status, 200)
    } finally {
      await d.stream.stop()
    }
    await until('x11vnc to stop', async () => {
      try {
        await d.commands.run('pgrep -x x11vnc')
        return false
      } catch (e) {
        if (e instanceof CommandExitError) return true
        throw e
      }
    })
  })

  it('stream.start({requireAuth}) asks for the password in the URL', async () => {
    await d.stream.start({ requireAuth: true })
    try {
      const key = d.stream.getAuthKey()
      assert.match(key, /^[A-Za-z0-9]{16}$/)
      const url = new URL(d.stream.getUrl({ authKey: key }))
      assert.equal(url.searchParams.get('password'), key)
      assert.equal(url.host, `6080-${d.sandboxId}.${DOMAIN}`)
      assert.match((await d.commands.run('pgrep -a x11vnc')).stdout, /-usepw/)
      assert.deepEqual(await rfbSecurity(), [2]) // VNC authentication
      const page = await send(env.server.port, { path: url.pathname + url.search, host: url.host })
      assert.equal(page.status, 200)
      assert.match(page.body.toString(), /noVNC/)
    } finally {
      await d.stream.stop()
    }
  })

  // windows lists the visible windows of an application class.
  async function windows(cls) {
    try {
      return await d.getApplicationWindows(cls)
    } catch (e) {
      if (e instanceof CommandExitError) return []
      throw e
    }
  }

  // windowNames lists the titles of the visible windows.
  async function windowNames() {
    const r = await d.commands.run('for w in $(xdotool search --onlyvisible --name .); do xdotool getwindowname $w; done')
    return r.stdout.split('\n')
  }

  // rfbSecurity is the list of security types the VNC server on 5900
  // offers (RFB 3.8): 1 is none, 2 is VNC authentication.
  async function rfbSecurity() {
    const py = [
      'import socket',
      "s = socket.create_connection(('127.0.0.1', 5900), 10)",
      's.recv(12)',
      "s.sendall(b'RFB 003.008\\n')",
      'n = s.recv(1)[0]',
      "print(' '.join(str(b) for b in s.recv(n)))",
    ].join('\n')
    const r = await d.commands.run(`python3 -c "${py}"`)
    return r.stdout.trim().split(' ').map(Number)
  }

  after(async () => {
    if (d) await d.kill().catch(() => {})
  })
})
