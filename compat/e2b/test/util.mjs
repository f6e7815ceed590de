// Small helpers the compatibility tests share.
import { request } from 'node:http'
import { before, after } from 'node:test'
import { Sandbox } from 'e2b'
import { startServer } from './server.mjs'

// useServer runs one `cubicle serve` for the test file that calls it. The
// file adds the id of every sandbox it makes to made; they are killed at
// the end, before the server stops. server is set once the file's tests
// run.
export function useServer() {
  const t = { server: null, made: new Set() }
  before(async () => { t.server = await startServer() }, { timeout: 30 * 60_000 })
  after(async () => {
    for (const id of t.made) {
      try { await Sandbox.kill(id) } catch { /* gone already */ }
    }
    if (t.server) console.log(`cubicle serve log: ${await t.server.stop()}`)
  })
  return t
}

// until polls fn until it returns a truthy value, which it returns; errors
// count as "not yet" until the deadline.
export async function until(what, fn, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs
  let last
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${last ?? 'no error'}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

// send makes one request to the server on 127.0.0.1:port with a Host
// header, as a client that resolved the sandbox host to the server would.
// It resolves with the status, headers and the body as a Buffer.
export function send(port, { method = 'GET', path, host, headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { ...headers, host } }, (res) => {
      const chunks = []
      res.on('data', (d) => chunks.push(d))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

// multipart encodes form as multipart/form-data: the body and its
// Content-Type.
export async function multipart(form) {
  const req = new Request('http://multipart.invalid/', { method: 'POST', body: form })
  return { body: Buffer.from(await req.arrayBuffer()), type: req.headers.get('content-type') }
}
