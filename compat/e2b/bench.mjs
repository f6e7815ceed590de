// Drives one desktop sandbox two ways and prints the latency of each
// action: through the unmodified @e2b/desktop SDK (each call is a command
// run through envd: a shell, then xdotool or scrot, as on E2B) and through
// Cubicle's native desktop API (one HTTP request to the agent, which holds
// one X connection). Same server, same sandbox, same run.
//
//   node compat/e2b/bench.mjs [iterations]    (as root; builds nothing:
//   run scripts/compat.sh once first, or go build -o bin/cubicle ./cmd/cubicle)
import { Sandbox as Desktop } from '@e2b/desktop'
import { startServer } from './test/server.mjs'

const n = Number(process.argv[2] || 30)

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

async function measure(fn) {
  await fn() // warm up
  const ms = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await fn()
    ms.push(performance.now() - t)
  }
  ms.sort((a, b) => a - b)
  return { p50: quantile(ms, 0.5), p95: quantile(ms, 0.95) }
}

const server = await startServer()
let d
try {
  d = await Desktop.create({ resolution: [1024, 768], timeoutMs: 600_000 })
  await d.wait(2000)
  // The native API of the same sandbox, through the same server: the
  // agent's path on the proxy, with the sandbox's access token.
  const agent = `${process.env.E2B_API_URL}/sandboxes/${d.sandboxId}/agent`
  const headers = { 'X-Access-Token': d.envdAccessToken, 'Content-Type': 'application/json' }
  async function native(method, path, body) {
    const r = await fetch(agent + path, { method, headers, body: body && JSON.stringify(body) })
    const b = await r.arrayBuffer()
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${Buffer.from(b).toString()}`)
    return b
  }
  await native('GET', '/v1/ready?wait=30s')
  // A terminal that swallows what is typed, so that typing changes nothing.
  await d.commands.run('xfce4-terminal --title=bench -x sh -c "stty -echo; cat > /dev/null"', { background: true })
  await d.wait(1500)

  const rows = [
    ['click at a point', () => d.leftClick(300, 300),
      () => native('POST', '/v1/action', { type: 'click', x: 300, y: 300 })],
    ['cursor position', () => d.getCursorPosition(), () => native('GET', '/v1/cursor')],
    ['key combination ctrl+a', () => d.press(['ctrl', 'a']),
      () => native('POST', '/v1/action', { type: 'key', keys: ['ctrl', 'a'] })],
    ['type "hello world"', () => d.write('hello world'),
      () => native('POST', '/v1/action', { type: 'type', text: 'hello world' })],
    ['screenshot 1024x768 PNG', () => d.screenshot(), () => native('GET', '/v1/screenshot')],
  ]
  console.log(`| action (n=${n}) | @e2b/desktop p50 / p95 (ms) | Cubicle API p50 / p95 (ms) |`)
  console.log('|---|---|---|')
  for (const [name, e2b, cubicle] of rows) {
    const a = await measure(e2b)
    const b = await measure(cubicle)
    console.log(`| ${name} | ${a.p50.toFixed(1)} / ${a.p95.toFixed(1)} | ${b.p50.toFixed(2)} / ${b.p95.toFixed(2)} |`)
  }
} finally {
  if (d) await d.kill().catch(() => {})
  await server.stop()
}
