// Small helpers the compatibility tests share.
import { request } from 'node:http'

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
