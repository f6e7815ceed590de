// The unmodified e2b@2.51.0 and @e2b/desktop@2.4.0 SDKs against a real
// `cubicle serve`. One server for the whole file; sandboxes are few and
// shared between the tests of a suite (each costs a few seconds).
import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import {
  Sandbox, AuthenticationError, CommandExitError, FileNotFoundError,
  NotFoundError, SandboxNotFoundError,
} from 'e2b'
import { Sandbox as Desktop } from '@e2b/desktop'
import { DOMAIN } from './server.mjs'
import { until, send, useServer } from './util.mjs'

const env = useServer()
const made = env.made // every sandbox a test made, killed at the end

// ids of every listed sandbox that matches opts.
async function listIds(opts) {
  const p = Sandbox.list(opts)
  const out = []
  while (p.hasNext) out.push(...(await p.nextItems()).map((s) => s.sandboxId))
  return out
}

describe('control plane', () => {
  let sbx
  const tag = `run-${process.pid}`

  before(async () => {
    sbx = await Sandbox.create('base', {
      metadata: { suite: tag, 'a key': 'b c&d=e' },
      envs: { FOO: 'bar' },
      timeoutMs: 600_000,
    })
    made.add(sbx.sandboxId)
  })

  it('creates a sandbox that answers at once', async () => {
    assert.match(sbx.sandboxId, /^[a-z0-9]{20}$/)
    assert.equal(await sbx.isRunning(), true)
    const r = await sbx.commands.run('echo $FOO')
    assert.equal(r.stdout, 'bar\n')
  })

  it('getInfo reports the sandbox', async () => {
    const info = await sbx.getInfo()
    assert.equal(info.sandboxId, sbx.sandboxId)
    assert.equal(info.state, 'running')
    assert.deepEqual(info.metadata, { suite: tag, 'a key': 'b c&d=e' })
    assert.ok(info.startedAt instanceof Date && !isNaN(info.startedAt))
    const left = info.endAt - Date.now()
    assert.ok(left > 500_000 && left <= 600_000, `endAt is ${left} ms away, want about 600 s`)
    assert.ok(info.cpuCount >= 1 && info.memoryMB > 0, `cpuCount ${info.cpuCount} memoryMB ${info.memoryMB}`)
    assert.match(info.envdVersion, /^\d+\.\d+\.\d+$/)
    assert.equal(info.sandboxDomain, DOMAIN)
    // As on E2B, its ports are public by default: no traffic token.
    assert.equal(info.network?.allowPublicTraffic, true)
    assert.equal(sbx.trafficAccessToken, undefined)
  })

  it('lists by metadata and state, page by page', async () => {
    assert.deepEqual(await listIds({ query: { metadata: { suite: tag } } }), [sbx.sandboxId])
    assert.deepEqual(await listIds({ query: { metadata: { 'a key': 'b c&d=e' } } }), [sbx.sandboxId])
    assert.deepEqual(await listIds({ query: { metadata: { suite: 'nobody' } } }), [])
    assert.ok((await listIds({ query: { state: ['running'] } })).includes(sbx.sandboxId))
    assert.ok(!(await listIds({ query: { state: ['paused'] } })).includes(sbx.sandboxId))
    assert.ok((await listIds({ limit: 1 })).includes(sbx.sandboxId))
  })

  it('setTimeout moves the end', async () => {
    await sbx.setTimeout(900_000)
    const left = (await sbx.getInfo()).endAt - Date.now()
    assert.ok(left > 800_000, `endAt is ${left} ms away after setTimeout(900 s)`)
  })

  it('getMetrics reports resource use', async () => {
    const ms = await sbx.getMetrics()
    assert.ok(ms.length >= 1)
    assert.ok(ms[0].timestamp instanceof Date)
    assert.ok(ms[0].cpuCount >= 1 && ms[0].memTotal > 0, JSON.stringify(ms[0]))
  })

  it('connect by id reaches the same sandbox', async () => {
    const again = await Sandbox.connect(sbx.sandboxId)
    assert.equal(again.sandboxId, sbx.sandboxId)
    assert.equal((await again.commands.run('echo $FOO')).stdout, 'bar\n')
  })

  it('pause, then connect resumes', async () => {
    assert.equal(await sbx.pause(), true)
    assert.equal((await sbx.getInfo()).state, 'paused')
    assert.equal(await sbx.isRunning(), false)
    assert.equal(await sbx.pause(), false) // already paused
    const resumed = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 600_000 })
    assert.equal((await resumed.getInfo()).state, 'running')
    assert.equal((await resumed.commands.run('echo back')).stdout, 'back\n')
  })

  it('unknown sandboxes are not found', async () => {
    const unknown = 'a'.repeat(20)
    await assert.rejects(Sandbox.connect(unknown), SandboxNotFoundError)
    await assert.rejects(Sandbox.getInfo(unknown), NotFoundError)
    assert.equal(await Sandbox.kill(unknown), false)
  })

  it('a bad key is an AuthenticationError', async () => {
    await assert.rejects(Sandbox.list({ apiKey: 'e2b_' + '0'.repeat(40) }).nextItems(), AuthenticationError)
    await assert.rejects(Sandbox.create('base', { apiKey: 'e2b_nope' }), AuthenticationError)
  })

  it('kill ends it, and a second kill finds nothing', async () => {
    const other = await Sandbox.create('base', { timeoutMs: 60_000 })
    made.add(other.sandboxId)
    assert.equal(await other.kill(), true)
    assert.equal(await other.isRunning(), false)
    assert.equal(await Sandbox.kill(other.sandboxId), false)
    await assert.rejects(other.getInfo(), SandboxNotFoundError)
    assert.ok(!(await listIds()).includes(other.sandboxId))
  })

  describe('commands', () => {
    it('runs as the default user with the sandbox env', async () => {
      const r = await sbx.commands.run('id -un; pwd; echo $FOO $BAR', { envs: { BAR: 'baz' } })
      assert.equal(r.exitCode, 0)
      assert.equal(r.stdout, 'user\n/home/user\nbar baz\n')
    })

    it('runs as root and in a cwd', async () => {
      const r = await sbx.commands.run('id -u; pwd', { user: 'root', cwd: '/tmp' })
      assert.equal(r.stdout, '0\n/tmp\n')
    })

    it('a non-zero exit is a CommandExitError with the output', async () => {
      await assert.rejects(sbx.commands.run('echo out; echo err >&2; exit 3'), (e) => {
        assert.ok(e instanceof CommandExitError, `${e}`)
        assert.equal(e.exitCode, 3)
        assert.equal(e.stdout, 'out\n')
        assert.equal(e.stderr, 'err\n')
        return true
      })
    })

    it('streams output to callbacks', async () => {
      const chunks = []
      const r = await sbx.commands.run('for i in 1 2 3; do echo line$i; done', { onStdout: (d) => chunks.push(d) })
      assert.equal(chunks.join(''), 'line1\nline2\nline3\n')
      assert.equal(r.stdout, 'line1\nline2\nline3\n')
    })

    it('background commands are listed, take stdin and are killed', async () => {
      const h = await sbx.commands.run('cat > /tmp/stdin.txt', { background: true, stdin: true })
      assert.ok(h.pid > 0)
      assert.ok((await sbx.commands.list()).some((p) => p.pid === h.pid))
      await sbx.commands.sendStdin(h.pid, 'via stdin\n')
      await until('stdin to arrive', async () => (await sbx.files.read('/tmp/stdin.txt')) === 'via stdin\n')
      assert.equal(await sbx.commands.kill(h.pid), true)
      await until('the process to leave the list', async () => !(await sbx.commands.list()).some((p) => p.pid === h.pid))
      assert.equal(await sbx.commands.kill(h.pid), false)
    })
  })

  describe('files', () => {
    it('writes, reads, lists and stats', async () => {
      const info = await sbx.files.write('/tmp/dir/a.txt', 'hello files')
      assert.equal(info.path, '/tmp/dir/a.txt')
      assert.equal(await sbx.files.read('/tmp/dir/a.txt'), 'hello files')
      const bytes = new Uint8Array([0, 1, 2, 250, 255])
      await sbx.files.write('/tmp/dir/b.bin', bytes.buffer)
      assert.deepEqual(await sbx.files.read('/tmp/dir/b.bin', { format: 'bytes' }), bytes)
      const names = (await sbx.files.list('/tmp/dir')).map((e) => `${e.name}:${e.type}`).sort()
      assert.deepEqual(names, ['a.txt:file', 'b.bin:file'])
      const st = await sbx.files.getInfo('/tmp/dir/a.txt')
      assert.equal(st.size, 11)
      assert.equal(await sbx.files.exists('/tmp/dir/a.txt'), true)
      assert.equal(await sbx.files.exists('/tmp/dir/none'), false)
    })

    it('writes relative paths in the home directory as the user', async () => {
      await sbx.files.write('rel.txt', 'mine')
      const r = await sbx.commands.run('stat -c %U ~/rel.txt; cat ~/rel.txt')
      assert.equal(r.stdout, 'user\nmine')
    })

    it('makes, renames and removes', async () => {
      assert.equal(await sbx.files.makeDir('/tmp/made/deep'), true)
      assert.equal(await sbx.files.makeDir('/tmp/made/deep'), false)
      await sbx.files.write('/tmp/made/x.txt', 'x')
      const moved = await sbx.files.rename('/tmp/made/x.txt', '/tmp/made/deep/y.txt')
      assert.equal(moved.path, '/tmp/made/deep/y.txt')
      await sbx.files.remove('/tmp/made')
      assert.equal(await sbx.files.exists('/tmp/made'), false)
    })

    it('missing files are FileNotFoundError', async () => {
      await assert.rejects(sbx.files.read('/tmp/no/such/file'), FileNotFoundError)
      await assert.rejects(sbx.files.list('/tmp/no/such/dir'), FileNotFoundError)
    })

    it('watchDir reports a write', async () => {
      await sbx.files.makeDir('/tmp/watched')
      const events = []
      const w = await sbx.files.watchDir('/tmp/watched', (e) => events.push(e))
      try {
        await sbx.files.write('/tmp/watched/new.txt', 'n')
        await until('a watch event', async () => events.some((e) => e.name === 'new.txt'), 20_000)
      } finally {
        await w.stop()
      }
    })
  })

  describe('timeout', () => {
    it('kills the sandbox when it ends', async () => {
      await sbx.setTimeout(2_000)
      await until('the timeout to kill it', async () => {
        try {
          await sbx.getInfo()
          return false
        } catch (e) {
          if (e instanceof SandboxNotFoundError) return true
          throw e
        }
      }, 60_000)
      assert.equal(await sbx.isRunning(), false)
      assert.ok(!(await listIds()).includes(sbx.sandboxId))
    })
  })
})

// get fetches path from the server with a Host header, as a browser that
// resolved the sandbox host to the server would; the body as text.
async function get(path, host, headers = {}) {
  const r = await send(env.server.port, { path, host, headers })
  return { status: r.status, body: r.body.toString('utf8') }
}

describe('desktop', () => {
  let d

  before(async () => {
    d = await Desktop.create({ resolution: [1024, 768], timeoutMs: 600_000 })
    made.add(d.sandboxId)
    // The desktop paints a moment after XFCE's processes are up.
    await d.wait(2000)
  }, { timeout: 5 * 60_000 })

  it('runs on :0 as the user', async () => {
    const r = await d.commands.run('echo $DISPLAY && id -un')
    assert.equal(r.stdout, ':0\nuser\n')
  })

  it('screenshot is a PNG of the screen size', async () => {
    assert.deepEqual(await d.getScreenSize(), { width: 1024, height: 768 })
    const png = await d.screenshot()
    assert.ok(png instanceof Uint8Array)
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
    const dv = new DataView(png.buffer, png.byteOffset)
    assert.equal(dv.getUint32(16), 1024)
    assert.equal(dv.getUint32(20), 768)
  })

  it('moveMouse and getCursorPosition agree', async () => {
    await d.moveMouse(100, 120)
    assert.deepEqual(await d.getCursorPosition(), { x: 100, y: 120 })
    await d.moveMouse(640, 480)
    assert.deepEqual(await d.getCursorPosition(), { x: 640, y: 480 })
  })

  it('launch opens a window, and write + press type into it', async () => {
    await d.launch('xfce4-terminal')
    const wins = await until('the terminal window', async () => {
      try {
        return (await d.getApplicationWindows('xfce4-terminal')).filter(Boolean)
      } catch (e) {
        if (e instanceof CommandExitError) return null // no window yet
        throw e
      }
    })
    assert.ok(wins.length >= 1)
    const id = wins[0]
    assert.match(await d.getWindowTitle(id), /Terminal|user@/)
    await d.commands.run(`xdotool windowactivate --sync ${id}`)
    await until('the terminal to have the focus', async () => (await d.getCurrentWindowId()) === id, 20_000)
    await d.write('echo typed-by-sdk > /tmp/typed.txt')
    await d.press('enter')
    await until('the terminal to run the typed command',
      async () => (await d.files.read('/tmp/typed.txt')) === 'typed-by-sdk\n', 30_000)
  })

  it('stream starts and its page is reached through the proxy', async () => {
    await d.stream.start()
    const url = new URL(d.stream.getUrl())
    assert.equal(url.protocol, 'https:')
    assert.equal(url.host, `6080-${d.sandboxId}.${DOMAIN}`)
    assert.equal(url.pathname, '/vnc.html')
    assert.equal(url.searchParams.get('autoconnect'), 'true')
    // As on E2B, the sandbox's ports are public unless it was created with
    // allowPublicTraffic false: the URL opens exactly as returned.
    assert.equal(d.trafficAccessToken, undefined)
    const page = await get(`${url.pathname}${url.search}`, url.host)
    assert.equal(page.status, 200, page.body.slice(0, 300))
    assert.match(page.body, /noVNC/)
    // envd's port still asks for the access token.
    const envd = await get('/health', `49983-${d.sandboxId}.${DOMAIN}`)
    assert.equal(envd.status, 401, envd.body.slice(0, 300))
    await d.stream.stop()
  })

  it('kill ends the desktop', async () => {
    assert.equal(await d.kill(), true)
    assert.equal(await d.isRunning(), false)
  })
})

describe('traffic access token', () => {
  it('allowPublicTraffic false asks for e2b-traffic-access-token on other ports', async () => {
    const sbx = await Sandbox.create('base', { network: { allowPublicTraffic: false }, timeoutMs: 300_000 })
    made.add(sbx.sandboxId)
    const token = sbx.trafficAccessToken
    assert.ok(token, 'create returned no trafficAccessToken')
    assert.equal((await sbx.getInfo()).network?.allowPublicTraffic, false)
    // The SDK reaches envd as before (X-Access-Token).
    await sbx.commands.run('python3 -m http.server 8080 --bind 0.0.0.0 --directory /tmp', { background: true })
    const host = sbx.getHost(8080)
    assert.equal(host, `8080-${sbx.sandboxId}.${DOMAIN}`)
    const ok = await until('the server on port 8080', async () => {
      const r = await get('/', host, { 'e2b-traffic-access-token': token })
      return r.status === 200 ? r : null
    })
    assert.match(ok.body, /Directory listing/)
    const denied = await get('/', host)
    assert.ok([401, 403].includes(denied.status), `without the header: ${denied.status} ${denied.body.slice(0, 300)}`)
    assert.match(denied.body, /e2b-traffic-access-token/i)
    const wrong = await get('/', host, { 'e2b-traffic-access-token': 'x'.repeat(token.length) })
    assert.ok([401, 403].includes(wrong.status), `with a wrong token: ${wrong.status}`)
    assert.equal(await sbx.kill(), true)
  })
})
