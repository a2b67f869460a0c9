// A registry upstream that misbehaves on purpose, for the proxy's security tests: node:http on
// 127.0.0.1 speaking just enough of /v2/ (ping, manifests, blobs, tags/list), each path answered
// by a handler the test gives; it counts requests and the body bytes it got onto the wire.
import {createHash} from 'node:crypto'
import http from 'node:http'
import {freePort} from './static-hosts.js'

export interface UpstreamRequest {
  method: string
  url: string
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>

export interface HostileUpstream {
  /** http://127.0.0.1:PORT */
  url: string
  requests: UpstreamRequest[]
  /** body bytes handed to the socket by `pump`, per URL path */
  sent: Map<string, number>
  /** answer METHOD PATH (GET also answers HEAD, without the body, unless HEAD has its own) */
  on(method: 'GET' | 'HEAD', path: string, handler: Handler): void
  /** serve bytes as a manifest (GET and HEAD) at /v2/REPO/manifests/REF */
  manifest(repository: string, reference: string, bytes: Buffer, mediaType: string): void
  /** serve bytes as a blob at /v2/REPO/blobs/DIGEST, with its Content-Length */
  blob(repository: string, bytes: Buffer): string
  stop(): Promise<void>
}

export const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`

/** The most a test's "endless" body sends: far past every bound, and still a loop that stops by itself. */
export const ENDLESS = 256 * 1024 * 1024

/**
 * Write `total` bytes of `fill` (after `prefix`) as fast as the reader takes them, stopping when
 * the reader goes away; `count` is told what was handed to the socket.
 */
export async function pump(res: http.ServerResponse, total: number, count: (bytes: number) => void, prefix = Buffer.alloc(0), fill = 0x20): Promise<void> {
  const block = Buffer.alloc(64 * 1024, fill)
  let written = 0
  let closed = false
  res.once('close', () => {
    closed = true
  })
  const write = async (chunk: Buffer) => {
    written += chunk.length
    count(chunk.length)
    if (!res.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done)
          res.off('close', done)
          resolve()
        }
        res.on('drain', done)
        res.on('close', done)
      })
    }
  }
  if (prefix.length > 0) await write(prefix)
  while (written < total && !closed && !res.destroyed) await write(block.subarray(0, Math.min(block.length, total - written)))
  if (!closed) res.end()
}

export async function startHostileUpstream(): Promise<HostileUpstream> {
  const port = await freePort()
  const handlers = new Map<string, Handler>()
  const requests: UpstreamRequest[] = []
  const sent = new Map<string, number>()
  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET'
    const path = new URL(req.url ?? '/', 'http://upstream.invalid').pathname
    requests.push({method, url: req.url ?? '/'})
    if (path === '/v2/') {
      res.writeHead(200, {'Content-Type': 'application/json', 'Docker-Distribution-API-Version': 'registry/2.0'}).end('{}')
      return
    }
    const handler = handlers.get(`${method} ${path}`) ?? (method === 'HEAD' ? handlers.get(`GET ${path}`) : undefined)
    if (!handler) {
      res.writeHead(404, {'Content-Type': 'application/json'}).end(JSON.stringify({errors: [{code: 'NOT_FOUND', message: 'not here'}]}))
      return
    }
    Promise.resolve(handler(req, res)).catch(() => res.destroy())
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()))
  const on = (method: string, path: string, handler: Handler) => {
    handlers.set(`${method} ${path}`, handler)
  }
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    sent,
    on,
    manifest(repository, reference, bytes, mediaType) {
      on('GET', `/v2/${repository}/manifests/${reference}`, (req, res) => {
        res.writeHead(200, {'Content-Type': mediaType, 'Content-Length': bytes.length, 'Docker-Content-Digest': sha256(bytes)})
        res.end(req.method === 'HEAD' ? undefined : bytes)
      })
    },
    blob(repository, bytes) {
      const digest = sha256(bytes)
      on('GET', `/v2/${repository}/blobs/${digest}`, (req, res) => {
        res.writeHead(200, {'Content-Type': 'application/octet-stream', 'Content-Length': bytes.length, 'Docker-Content-Digest': digest})
        res.end(req.method === 'HEAD' ? undefined : bytes)
      })
      return digest
    },
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}
