// The registry client's retries follow the core policy: 429 and 5xx are tried again, the
// registry's Retry-After is honoured (a wait past the request's deadline is not taken), and an
// AbortSignal stops a request while it waits.
import assert from 'node:assert/strict'
import http from 'node:http'
import {after, before, describe, it} from 'node:test'
import {RegistryClient} from '../src/sources/registry/client.js'
import {freePort} from './static-hosts.js'

/** A registry that answers each request with the next status of a script (then 200). */
class ScriptedRegistry {
  requests = 0
  script: Array<{status: number; retryAfter?: string}> = []
  /** told of each request as it arrives */
  onRequest = () => {}
  private readonly server = http.createServer((req, res) => {
    this.requests++
    this.onRequest()
    const step = this.script.shift() ?? {status: 200}
    res.writeHead(step.status, {'Content-Type': 'application/json', ...(step.retryAfter ? {'Retry-After': step.retryAfter} : {})})
    res.end('{}')
  })
  port = 0
  async start(): Promise<void> {
    this.port = await freePort()
    await new Promise<void>((resolve) => this.server.listen(this.port, '127.0.0.1', () => resolve()))
  }
  stop(): Promise<void> {
    this.server.closeAllConnections()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

describe('registry client: retries', () => {
  const registry = new ScriptedRegistry()
  const previousTimeout = process.env.REG_UPSTREAM_TIMEOUT
  before(async () => {
    await registry.start()
  })
  after(async () => {
    if (previousTimeout === undefined) delete process.env.REG_UPSTREAM_TIMEOUT
    else process.env.REG_UPSTREAM_TIMEOUT = previousTimeout
    await registry.stop()
  })
  const client = () => new RegistryClient(`127.0.0.1:${registry.port}`, {plainHttp: true})

  it('tries 5xx and 429 again until the registry answers', async () => {
    registry.requests = 0
    registry.script = [{status: 503}, {status: 500}, {status: 429, retryAfter: '0'}]
    const res = await client().request('GET', '/v2/', undefined)
    res.body.resume()
    assert.equal(res.status, 200)
    assert.equal(registry.requests, 4)
  })

  it('honours Retry-After: a wait past the deadline is not taken, and the 503 is the answer', async () => {
    process.env.REG_UPSTREAM_TIMEOUT = '5'
    try {
      registry.requests = 0
      registry.script = [{status: 503, retryAfter: '3600'}]
      const res = await client().request('GET', '/v2/', undefined)
      res.body.resume()
      assert.equal(res.status, 503)
      assert.equal(registry.requests, 1, 'asked once: the registry said to come back in an hour')
    } finally {
      delete process.env.REG_UPSTREAM_TIMEOUT
    }
  })

  it('stops waiting when its signal aborts', async () => {
    registry.requests = 0
    registry.script = [{status: 429, retryAfter: '30'}]
    const abort = new AbortController()
    const arrived = new Promise<void>((resolve) => {
      registry.onRequest = resolve
    })
    const request = client().request('GET', '/v2/', undefined, undefined, 'document', abort.signal)
    await arrived
    abort.abort()
    await assert.rejects(request, (error: Error) => error.name === 'AbortError')
    assert.equal(registry.requests, 1)
    registry.script = []
  })
})
