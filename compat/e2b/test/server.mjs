// A real `cubicle serve` for the compatibility tests: a fresh state
// directory, a free port on loopback, a test domain, and the environment
// that points E2B's SDKs at it.
import { spawn } from 'node:child_process'
import { mkdtempSync, chmodSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { once } from 'node:events'
import { createInterface } from 'node:readline'

export const DOMAIN = 'e2b.test'

const here = new URL('.', import.meta.url).pathname
const BIN = process.env.CUBICLE_BIN || resolve(here, '../../../bin/cubicle')
const TEMPLATES = process.env.CUBICLE_TEMPLATES_DIR || '/var/lib/cubicle/templates'

async function freePort() {
  const srv = createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const { port } = srv.address()
  srv.close()
  await once(srv, 'close')
  return port
}

// startServer starts the server and sets E2B_API_KEY, E2B_API_URL,
// E2B_SANDBOX_URL and E2B_DOMAIN. It resolves once the API answers.
export async function startServer() {
  const stateDir = mkdtempSync(join(tmpdir(), 'cubicle-compat-'))
  chmodSync(stateDir, 0o755) // the sandboxes' init passes through it
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const args = ['serve', '--state-dir', stateDir, '--templates-dir', TEMPLATES,
    '--listen', `127.0.0.1:${port}`, '--domain', DOMAIN, '--wait-lock', '20m', '--log-level', 'info']
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let log = ''
  proc.stderr.on('data', (b) => { log += b; if (log.length > 1 << 20) log = log.slice(-(1 << 19)) })
  const exited = once(proc, 'exit')

  let key = ''
  const lines = createInterface({ input: proc.stdout })
  const started = new Promise((resolve, reject) => {
    lines.on('line', (l) => {
      const f = l.trim().split(/\s+/)
      if (f.length === 1 && /^cbk_[0-9a-f]{40}$/.test(f[0])) key = f[0]
      if (l.startsWith('cubicle: try:')) resolve()
    })
    exited.then(([code]) => reject(new Error(`cubicle serve exited with ${code} before serving:\n${log}`)))
  })
  await started
  if (!key) throw new Error('cubicle serve printed no API key')

  // A server that restarts adopts sandboxes before it answers: wait.
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`${url}/health`)
      if (r.ok) break
    } catch (e) {
      if (i > 600) throw e
    }
    await new Promise((r) => setTimeout(r, 100))
  }

  process.env.E2B_API_KEY = 'e2b_' + key.slice(4)
  process.env.E2B_API_URL = url
  process.env.E2B_SANDBOX_URL = url
  process.env.E2B_DOMAIN = DOMAIN
  process.env.E2B_VALIDATE_API_KEY = 'false'
  delete process.env.E2B_DEBUG

  return {
    url,
    port,
    key,
    log: () => log,
    // stop ends the server (sandboxes must be killed before), removes
    // its state and returns the file its log was saved to.
    async stop() {
      if (proc.exitCode === null) {
        process.kill(-proc.pid, 'SIGTERM')
        const timer = setTimeout(() => process.kill(-proc.pid, 'SIGKILL'), 30_000)
        await exited
        clearTimeout(timer)
      }
      // The server's log outlives its state, for a failure to be read.
      const logFile = join(tmpdir(), `cubicle-compat-server-${process.pid}.log`)
      writeFileSync(logFile, log)
      rmSync(stateDir, { recursive: true, force: true })
      return logFile
    },
  }
}
