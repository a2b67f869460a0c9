import {createHash} from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import type {Readable} from 'node:stream'
import {createBrotliDecompress, createGunzip, createInflate} from 'node:zlib'
import {readBounded, TooLargeError} from '../core/limits.js'
import {quoted} from '../core/quote.js'

/** net/http's client follows at most 10 redirects (client.go); so does the probe. */
export const MAX_REDIRECTS = 10
/** A host that stops answering fails the check instead of holding the run. */
const REQUEST_TIMEOUT_MS = 30_000

/** What one request got, as a client would see it. Headers are lowercased, repeated ones joined by ", ". */
export interface Answer {
  method: string
  /** the URL asked for (before redirects) */
  url: string
  status: number
  headers: Record<string, string>
  /** the hops taken, each `STATUS LOCATION` */
  redirects: string[]
  /** for `read: 'body'`: the bytes, decoded as a Go client decodes a gzip answer it asked for */
  body?: Buffer
  /** for `read: 'hash'` and `read: 'body'`: sha256 and length of the bytes a client would hash */
  digest?: string
  length?: number
  /** transport error, timeout, a body over its bound, a redirect loop */
  error?: string
}

export interface ProbeRequest {
  method: 'GET' | 'HEAD'
  path: string
  accept?: string
  range?: string
  /**
   * none: headers only; body: the bytes, at most `limit`; hash: stream the bytes through sha256,
   * never more than `limit` (a blob's descriptor size)
   */
  read: 'none' | 'body' | 'hash'
  limit?: number
}

/**
 * HTTP for `reg verify`: node:http/https, one keep-alive agent per registry, no credentials ever
 * (a redirect is followed as an anonymous client follows it), requests shaped like a Go client's:
 * `Accept-Encoding: gzip` on every GET without Range (net/http adds it), none on HEAD.
 */
export class Prober {
  private readonly agent: http.Agent
  private readonly base: URL
  /** the registry URL as typed, without a trailing slash: what findings show */
  private readonly shownBase: string
  /** the authority as typed: Go sends `Host` as given, and some hosts (s3rver) route by its case */
  private readonly hostHeader: string
  requests = 0

  constructor(registryUrl: string, concurrency: number) {
    this.base = new URL(registryUrl)
    this.shownBase = registryUrl.replace(/\/+$/, '')
    this.hostHeader = /^[a-z][a-z0-9+.-]*:\/\/([^/?#@]+)/i.exec(registryUrl)?.[1] ?? this.base.host
    const Agent = this.base.protocol === 'https:' ? https.Agent : http.Agent
    this.agent = new Agent({keepAlive: true, maxSockets: concurrency})
  }

  close(): void {
    this.agent.destroy()
  }

  async probe(request: ProbeRequest): Promise<Answer> {
    const first = new URL(request.path, this.base)
    const redirects: string[] = []
    let target = first
    for (let hop = 0; ; hop++) {
      const answer = await this.once(target, request, redirects)
      if (answer.status < 300 || answer.status >= 400 || answer.status === 304 || answer.error) return answer
      const location = answer.headers.location
      if (!location) return answer
      if (hop >= MAX_REDIRECTS) return {...answer, error: `more than ${MAX_REDIRECTS} redirects`}
      redirects.push(`${answer.status} ${quoted(location, 200)}`)
      try {
        target = new URL(location, target)
      } catch {
        return {...answer, error: 'a redirect to an invalid URL'}
      }
      if (target.protocol !== 'http:' && target.protocol !== 'https:') return {...answer, error: `a redirect to ${target.protocol} URL`}
    }
  }

  private once(target: URL, request: ProbeRequest, redirects: string[]): Promise<Answer> {
    this.requests++
    const sameOrigin = target.origin === this.base.origin
    const headers: Record<string, string> = {'User-Agent': 'reg-verify'}
    if (sameOrigin) headers.Host = this.hostHeader
    if (request.accept) headers.Accept = request.accept
    if (request.range) headers.Range = request.range
    else if (request.method === 'GET') headers['Accept-Encoding'] = 'gzip'
    const transport = target.protocol === 'https:' ? https : http
    const url = this.shownBase + request.path
    const base: Omit<Answer, 'status' | 'headers'> = {method: request.method, url, redirects}
    return new Promise<Answer>((resolve) => {
      let settled = false
      const done = (answer: Answer) => {
        if (!settled) {
          settled = true
          resolve(answer)
        }
      }
      const req = transport.request(target, {method: request.method, headers, agent: sameOrigin ? this.agent : undefined, timeout: REQUEST_TIMEOUT_MS}, (res) => {
        const seen: Record<string, string> = {}
        for (const [name, value] of Object.entries(res.headers)) if (value !== undefined) seen[name] = Array.isArray(value) ? value.join(', ') : value
        const answer: Answer = {...base, status: res.statusCode ?? 0, headers: seen}
        const redirecting = answer.status >= 300 && answer.status < 400 && seen.location !== undefined
        if (request.method === 'HEAD' || request.read === 'none' || redirecting || answer.status >= 300) {
          res.resume()
          res.on('end', () => done(answer))
          res.on('error', (error) => done({...answer, error: error.message}))
          return
        }
        readAnswer(res, request, seen).then((read) => done({...answer, ...read}), (error: Error) => {
          res.destroy()
          done({...answer, error: error instanceof TooLargeError ? error.message : `reading the body: ${error.message}`})
        })
      })
      req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)))
      req.on('error', (error) => done({...base, status: 0, headers: {}, error: error.message}))
      req.end()
    })
  }
}

/** The body as a Go client gets it: a gzip answer to a request that asked for gzip is decoded. */
async function readAnswer(res: http.IncomingMessage, request: ProbeRequest, headers: Record<string, string>): Promise<Partial<Answer>> {
  const limit = request.limit ?? 0
  const encoding = (headers['content-encoding'] ?? '').trim().toLowerCase()
  let stream: Readable = res
  if (request.read === 'body' && encoding === 'gzip') stream = res.pipe(createGunzip())
  else if (request.read === 'body' && encoding === 'deflate') stream = res.pipe(createInflate())
  else if (request.read === 'body' && encoding === 'br') stream = res.pipe(createBrotliDecompress())
  if (request.read === 'body') {
    const body = await readBounded(stream, limit, `${request.method} ${request.path}`)
    return {body, digest: 'sha256:' + createHash('sha256').update(body).digest('hex'), length: body.length}
  }
  // Blobs: hash the bytes as they come, and stop at the first byte past the descriptor's size.
  const hash = createHash('sha256')
  let length = 0
  for await (const chunk of stream) {
    length += (chunk as Buffer).length
    if (length > limit) {
      stream.destroy()
      return {digest: 'sha256:(more bytes than the descriptor says)', length}
    }
    hash.update(chunk as Buffer)
  }
  return {digest: 'sha256:' + hash.digest('hex'), length}
}

/** `Name: value` of a header as the answer had it, for a finding. */
export function seenHeader(answer: Answer, name: string): string {
  const value = answer.headers[name.toLowerCase()]
  // A header is the host's text: quoted, bounded and escaped like any outside string.
  return value === undefined ? `no ${name}` : `${name}: ${quoted(value, 120)}`
}
