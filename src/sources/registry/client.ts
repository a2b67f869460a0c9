import dns from 'node:dns'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import type {Readable} from 'node:stream'
import {RegError} from '../../core/errors.js'
import {MAX_DOCUMENT_BYTES, readBounded, TooLargeError} from '../../core/limits.js'
import {DEFAULT_RETRY, serverDelayMs, withRetries} from '../../core/retry.js'
import type {Credentials} from './credentials.js'

/**
 * How long an upstream may take, in seconds: to answer with headers, to send the whole of a small
 * document (manifest, token, list), and the window a streamed body (a blob) must bring
 * MIN_BYTES_PER_WINDOW in. `REG_UPSTREAM_TIMEOUT` overrides it.
 */
export const DEFAULT_UPSTREAM_TIMEOUT_SECONDS = 60
/** A streamed body slower than this per timeout window is cut: a trickle cannot hold a download forever. */
export const MIN_BYTES_PER_WINDOW = 32 * 1024

function upstreamTimeoutMs(): number {
  const text = process.env.REG_UPSTREAM_TIMEOUT
  if (text === undefined || text === '') return DEFAULT_UPSTREAM_TIMEOUT_SECONDS * 1000
  const seconds = Number(text)
  if (!Number.isFinite(seconds) || seconds <= 0) throw new RegError(`REG_UPSTREAM_TIMEOUT=${text} is not a number of seconds`, `e.g. REG_UPSTREAM_TIMEOUT=${DEFAULT_UPSTREAM_TIMEOUT_SECONDS}`)
  return seconds * 1000
}

/**
 * Where an address leads. A registry may send its clients (redirects, token realms) to public
 * addresses, or to addresses of its own class (a registry on a private network to that network),
 * never elsewhere: an upstream must not make reg reach its host's loopback or a cloud's metadata
 * service (169.254.169.254).
 */
export type AddressClass = 'public' | 'loopback' | 'private' | 'link-local' | 'reserved'

const ADDRESS_CLASSES: Array<[AddressClass, net.BlockList]> = ([
  ['loopback', ['127.0.0.0/8', '0.0.0.0/8'], ['::1/128', '::/128']],
  ['private', ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'], ['fc00::/7']],
  ['link-local', ['169.254.0.0/16'], ['fe80::/10']],
  // IPv6 forms that carry an IPv4 address (IPv4-compatible, NAT64, 6to4) could reach any of the above: never public.
  ['reserved', ['224.0.0.0/4', '240.0.0.0/4'], ['ff00::/8', '::/96', '64:ff9b::/96', '64:ff9b:1::/48', '2002::/16']],
] as Array<[AddressClass, string[], string[]]>).map(([name, v4, v6]) => {
  const list = new net.BlockList()
  for (const subnet of v4) list.addSubnet(subnet.split('/')[0], Number(subnet.split('/')[1]), 'ipv4')
  for (const subnet of v6) list.addSubnet(subnet.split('/')[0], Number(subnet.split('/')[1]), 'ipv6')
  return [name, list]
})

/** The class of an IP address (IPv4-mapped IPv6 addresses count as their IPv4 address). */
export function addressClass(address: string): AddressClass {
  const family = net.isIPv6(address) ? 'ipv6' : 'ipv4'
  return ADDRESS_CLASSES.find(([, list]) => list.check(address, family))?.[0] ?? 'public'
}

/** `[::1]` → `::1`: URL hostnames keep IPv6 brackets, the resolver does not want them. */
function bareHostname(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1')
}

/** An upstream answered too slowly, or sent reg somewhere it must not go: not retried. */
export class UpstreamRefusedError extends RegError {}

/** The registry answered with another status than the one asked for (200): `status` says which. */
export class RegistryStatusError extends RegError {
  constructor(readonly status: number, message: string, hint?: string) {
    super(message, hint)
  }
}

/**
 * A try that may succeed later: the connection failed, or the registry answered 429 or 5xx
 * (`response`, kept whole: when the retries are spent it is the answer), maybe saying when to
 * come back (`afterMs`, from Retry-After on 429 and 503).
 */
class TransientFailure extends RegError {
  constructor(message: string, readonly afterMs?: number, readonly response?: RegistryResponse) {
    super(message)
  }
}

/**
 * Drop a body nobody needs: a short one is read out (the connection can be used again), any other
 * is cut, so an endless body is never drained.
 */
export function discardBody(res: RegistryResponse): void {
  const length = Number(res.headers['content-length'])
  if (res.body.readableEnded || (res.headers['content-length'] !== undefined && length <= 64 * 1024)) res.body.resume()
  else res.body.destroy()
}

/** Upstream text for an error message: printable ASCII only, and short. */
function printable(text: string): string {
  return text.replaceAll(/[^\x20-\x7e]/g, '?').slice(0, 200)
}

export interface RegistryClientOptions {
  /** talk plain HTTP (localhost registries) */
  plainHttp?: boolean
  /** HTTPS without certificate verification */
  insecure?: boolean
  credentials?: Credentials
  retries?: number
}

export interface RegistryResponse {
  status: number
  headers: http.IncomingHttpHeaders
  body: Readable
}

export interface Challenge {
  /** lowercase: `bearer`, `basic` */
  scheme: string
  /** lowercase parameter names, unescaped values */
  params: Record<string, string>
}

const TOKEN = /[!#$%&'*+.^_`|~0-9A-Za-z-]+/y
const SPACE = /[ \t]*/y

/**
 * Every challenge of a `WWW-Authenticate` field (RFC 9110 §11.6.1): `Bearer realm="…",service="…",
 * Basic realm="…"` is two challenges. Parameter names are case-insensitive; values are tokens or
 * quoted strings with `\"` escapes (an unquoted value is read up to the next comma or space, as
 * registries in the wild write URLs unquoted). Never throws: what cannot be read is skipped.
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = []
  let i = 0
  const match = (pattern: RegExp): string => {
    pattern.lastIndex = i
    const found = pattern.exec(header)
    if (!found) return ''
    i = pattern.lastIndex
    return found[0]
  }
  const skipSeparators = () => {
    while (i < header.length && /[ \t,]/.test(header[i])) i++
  }
  let current: Challenge | undefined
  while (i < header.length) {
    skipSeparators()
    const name = match(TOKEN)
    if (!name) {
      i++
      continue
    }
    match(SPACE)
    if (header[i] !== '=' || !current) {
      // Not `name=`: a new challenge begins (its scheme), or a token68 the registry protocol does not use.
      if (header[i] === '=') {
        while (header[i] === '=') i++
        continue
      }
      current = {scheme: name.toLowerCase(), params: Object.create(null) as Record<string, string>}
      challenges.push(current)
      continue
    }
    i++
    match(SPACE)
    let value = ''
    if (header[i] === '"') {
      for (i++; i < header.length && header[i] !== '"'; i++) value += header[i] === '\\' && i + 1 < header.length ? header[++i] : header[i]
      i++
    } else {
      while (i < header.length && !/[ \t,]/.test(header[i])) value += header[i++]
    }
    current.params[name.toLowerCase()] ??= value
  }
  return challenges
}

/** The challenge reg answers: Bearer when the registry offers it, else the first one. */
export function parseChallenge(header: string): Challenge {
  const challenges = parseChallenges(header)
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges[0] ?? {scheme: '', params: Object.create(null) as Record<string, string>}
}

/**
 * A document's body whole, never more than `limit` bytes: one that says it is longer is refused
 * before a byte is read.
 */
export async function readDocument(res: RegistryResponse, limit: number, what: string): Promise<Buffer> {
  const length = Number(res.headers['content-length'])
  if (res.headers['content-length'] !== undefined && length > limit) {
    res.body.destroy()
    throw new TooLargeError(what, limit)
  }
  return readBounded(res.body, limit, what)
}

function transient(status: number): boolean {
  return status === 429 || status >= 500
}

/** The authentication one request has been through, across its tries. */
interface AuthRounds {
  /** a token was asked of the realm in this request (once: a second 401 is a refusal) */
  tokenFetched: boolean
}

/** How one HTTP exchange is bounded. */
interface Exchange {
  /** when (Date.now()) the headers, and a document's whole body, must have arrived */
  deadline: number
  /** a document is read whole under the deadline; a stream (a blob) only has to keep arriving */
  body: 'document' | 'stream'
  /** where the registry's own addresses are: set for hosts other than the registry (redirects, realms) */
  allowed?: ReadonlySet<AddressClass>
}

/**
 * The pull side of the Registry HTTP API v2 as registries answer it: anonymous first, then the
 * `WWW-Authenticate` challenge (Bearer token from the realm, scoped per repository, or Basic),
 * redirects followed (Authorization dropped on another host; never to an address of another class
 * than the registry's own), transient errors retried. Every exchange has a deadline, every
 * document a size bound, every streamed body a minimum pace.
 */
export class RegistryClient {
  private readonly tokens = new Map<string, string>()
  private basic = false
  private readonly timeoutMs: number
  private registryClasses?: Promise<ReadonlySet<AddressClass>>

  constructor(readonly host: string, private readonly options: RegistryClientOptions = {}) {
    this.timeoutMs = upstreamTimeoutMs()
  }

  get baseUrl(): string {
    return `${this.options.plainHttp ? 'http' : 'https'}://${this.host}`
  }

  private describeCredentials(): string {
    return this.options.credentials ? `credentials from ${this.options.credentials.source}` : 'no credentials (anonymous)'
  }

  /** Public addresses, and the classes of the registry's own addresses. */
  private allowedClasses(): Promise<ReadonlySet<AddressClass>> {
    if (!this.registryClasses) {
      const hostname = bareHostname(new URL(this.baseUrl))
      const resolving = net.isIP(hostname) ? Promise.resolve([hostname]) : dns.promises.lookup(hostname, {all: true}).then((all) => all.map((a) => a.address))
      this.registryClasses = resolving.then((addresses) => new Set<AddressClass>(['public', ...addresses.map(addressClass)]))
      this.registryClasses.catch(() => {
        this.registryClasses = undefined
      })
    }
    return this.registryClasses
  }

  /** The bound for a request to `url`: hosts other than the registry are held to its address classes. */
  private async exchange(url: URL, deadline: number, body: Exchange['body']): Promise<Exchange> {
    if (bareHostname(url) === bareHostname(new URL(this.baseUrl))) return {deadline, body}
    return {deadline, body, allowed: await this.allowedClasses()}
  }

  private refuse(url: URL, address: string, what: string): UpstreamRefusedError {
    return new UpstreamRefusedError(`registry ${this.host}: refused ${what} to ${url.host}: ${address} is a ${addressClass(address)} address, and the registry itself is not at one`, 'a registry may send reg to public addresses or to addresses like its own, nowhere else')
  }

  /** The resolver for a guarded exchange: the addresses actually connected to are the ones checked. */
  private guardedLookup(url: URL, allowed: ReadonlySet<AddressClass>, what: string): net.LookupFunction {
    return (hostname, options, callback) => {
      dns.lookup(hostname, {...options, all: true}, (error, addresses) => {
        if (error) return callback(error, '')
        const forbidden = addresses.find((a) => !allowed.has(addressClass(a.address)))
        if (forbidden) return callback(this.refuse(url, forbidden.address, what), '')
        if (options.all) callback(null, addresses)
        else callback(null, addresses[0].address, addresses[0].family)
      })
    }
  }

  private raw(url: URL, method: string, headers: Record<string, string>, exchange: Exchange, what = 'a request', signal?: AbortSignal): Promise<RegistryResponse> {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return Promise.reject(new UpstreamRefusedError(`registry ${this.host}: refused ${what} to ${url.protocol} (only http: and https:)`))
    const {allowed} = exchange
    const literal = bareHostname(url)
    if (allowed && net.isIP(literal) && !allowed.has(addressClass(literal))) return Promise.reject(this.refuse(url, literal, what))
    const transport = url.protocol === 'http:' ? http : https
    const seconds = this.timeoutMs / 1000
    return new Promise((resolve, reject) => {
      let response: http.IncomingMessage | undefined
      const timer = setTimeout(() => {
        const error = new UpstreamRefusedError(`registry ${this.host}: ${method} ${url.pathname} at ${url.host} got no ${response ? 'whole answer' : 'answer'} within ${seconds} s`, 'REG_UPSTREAM_TIMEOUT sets the seconds an upstream may take')
        if (response) response.destroy(error)
        else req.destroy(error)
      }, Math.max(0, exchange.deadline - Date.now()))
      const req = transport.request(url, {
        method, headers, signal,
        ...(allowed ? {lookup: this.guardedLookup(url, allowed, what)} : {}),
        ...(url.protocol === 'https:' && this.options.insecure ? {rejectUnauthorized: false} : {}),
      }, (res) => {
        response = res
        if (exchange.body === 'stream' && method !== 'HEAD') {
          clearTimeout(timer)
          this.keepPace(res, method, url)
        } else {
          res.once('close', () => clearTimeout(timer))
        }
        resolve({status: res.statusCode ?? 0, headers: res.headers, body: res})
      })
      req.on('error', (error) => {
        if (!response) clearTimeout(timer)
        reject(error)
      })
      req.end()
    })
  }

  /** A streamed body is cut when a timeout window brings less than MIN_BYTES_PER_WINDOW (it stalled, or trickles). */
  private keepPace(res: http.IncomingMessage, method: string, url: URL): void {
    const socket = res.socket
    let seen = socket.bytesRead
    const watch = setInterval(() => {
      if (socket.bytesRead - seen < MIN_BYTES_PER_WINDOW) {
        res.destroy(new UpstreamRefusedError(`registry ${this.host}: ${method} ${url.pathname} at ${url.host} stalled (less than ${MIN_BYTES_PER_WINDOW} bytes in ${this.timeoutMs / 1000} s)`, 'REG_UPSTREAM_TIMEOUT sets the seconds an upstream may take'))
      }
      seen = socket.bytesRead
    }, this.timeoutMs)
    res.once('close', () => clearInterval(watch))
  }

  private async token(realm: string, service: string | undefined, scope: string, deadline: number, signal?: AbortSignal): Promise<string> {
    let url: URL
    try {
      url = new URL(realm)
    } catch {
      throw new RegError(`${this.host}: the token realm is not a URL`)
    }
    if (service) url.searchParams.set('service', service)
    url.searchParams.set('scope', scope)
    const headers: Record<string, string> = {}
    const creds = this.options.credentials
    if (creds) headers.Authorization = 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64')
    const res = await this.raw(url, 'GET', headers, await this.exchange(url, deadline, 'document'), 'the token realm', signal)
    const body = await readDocument(res, MAX_DOCUMENT_BYTES, `${this.host}: the token from ${url.origin}`)
    if (res.status !== 200) {
      throw new RegError(`${this.host}: the token server ${url.origin} refused ${scope} (${res.status}) with ${this.describeCredentials()}`, 'check the credentials (--creds, REG_USERNAME/REG_PASSWORD, docker login)')
    }
    let parsed: {token?: unknown; access_token?: unknown}
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed
    } catch {
      throw new RegError(`${this.host}: the token server ${url.origin} answered something other than JSON`)
    }
    const token = parsed?.token ?? parsed?.access_token
    if (typeof token !== 'string' || !token) throw new RegError(`${this.host}: the token server answered without a token`)
    return token
  }

  /**
   * GET (or HEAD) a path of the API for `repository` (the token scope). The body is a stream:
   * callers read it or discard it. A `document` body must arrive whole within the deadline (read
   * it at once); a `stream` body (a blob) only has to keep a minimum pace. Failed connections,
   * 429 and 5xx are tried again as the core's retry policy says; `signal` stops it all.
   */
  async request(method: 'GET' | 'HEAD', path: string, repository: string | undefined, accept?: string, body: Exchange['body'] = 'stream', signal?: AbortSignal): Promise<RegistryResponse> {
    const scope = repository ? `repository:${repository}:pull` : 'registry:catalog:*'
    // One deadline for the whole request: retries, redirects and the token included.
    const deadline = Date.now() + this.timeoutMs
    const mode = method === 'HEAD' ? 'document' : body
    const rounds: AuthRounds = {tokenFetched: false}
    try {
      return await withRetries(() => this.attempt(method, path, scope, accept, {deadline, body: mode}, rounds, signal), {
        policy: {retries: this.options.retries ?? DEFAULT_RETRY.retries},
        signal,
        // A wait that ends past the deadline is not worth it: the answer so far stands.
        classify: (error) => (error instanceof TransientFailure && Date.now() + (error.afterMs ?? 0) < deadline ? {retry: true, afterMs: error.afterMs} : {retry: false}),
        onRetry: (error) => {
          if (error instanceof TransientFailure && error.response) discardBody(error.response)
        },
      })
    } catch (error) {
      // The retries are spent on a 429 or 5xx: the caller reads the registry's answer.
      if (error instanceof TransientFailure && error.response) return error.response
      throw error
    }
  }

  /** One try: the request, the redirects it is sent on and the authentication it is asked for. */
  private async attempt(method: 'GET' | 'HEAD', path: string, scope: string, accept: string | undefined, exchange: Exchange, rounds: AuthRounds, signal?: AbortSignal): Promise<RegistryResponse> {
    for (;;) {
      let url = new URL(this.baseUrl + path)
      const headers: Record<string, string> = {...(accept ? {Accept: accept} : {})}
      const token = this.tokens.get(scope)
      if (token) headers.Authorization = `Bearer ${token}`
      else if (this.basic && this.options.credentials) headers.Authorization = 'Basic ' + Buffer.from(`${this.options.credentials.username}:${this.options.credentials.password}`).toString('base64')
      let res: RegistryResponse
      try {
        res = await this.raw(url, method, headers, exchange, 'a request', signal)
        // Redirects (blob storage elsewhere): follow, without our Authorization on another host.
        for (let hops = 0; res.status >= 300 && res.status < 400 && res.headers.location && hops < 5; hops++) {
          discardBody(res)
          const next = new URL(res.headers.location, url)
          if (next.host !== url.host) delete headers.Authorization
          url = next
          res = await this.raw(url, method, headers, await this.exchange(url, exchange.deadline, exchange.body), 'a redirect', signal)
        }
      } catch (error) {
        if (error instanceof RegError) throw error
        signal?.throwIfAborted()
        const code = (error as {code?: string}).code
        if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') throw new RegError(`registry ${this.host}: unknown host`, 'check the name in docker://HOST/NAME')
        if (code === 'ECONNREFUSED') throw new RegError(`registry ${this.host}: connection refused at ${this.baseUrl}`, this.options.plainHttp ? 'is the registry running?' : 'is it plain HTTP? use --plain-http for a local registry')
        if (code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|EPROTO/.test(code)) throw new RegError(`registry ${this.host}: TLS error (${code})`, 'use --insecure to skip certificate verification, or --plain-http for an HTTP registry')
        throw new TransientFailure(`registry ${this.host}: ${method} ${path} failed: ${(error as Error).message}`)
      }
      if (res.status === 401) {
        discardBody(res)
        const challenge = parseChallenge(String(res.headers['www-authenticate'] ?? ''))
        // No token yet, or one that expired during a long mirror: ask the realm once per request.
        if (challenge.scheme === 'bearer' && challenge.params.realm && !rounds.tokenFetched) {
          rounds.tokenFetched = true
          this.tokens.set(scope, await this.token(challenge.params.realm, challenge.params.service, challenge.params.scope ?? scope, exchange.deadline, signal))
          continue
        }
        if (challenge.scheme === 'basic' && this.options.credentials && !this.basic) {
          this.basic = true
          continue
        }
        throw new RegError(`registry ${this.host}: ${path} needs authentication (401) and ${this.describeCredentials()} did not get in`, 'pass --creds user:pass, set REG_USERNAME/REG_PASSWORD, or docker login')
      }
      if (transient(res.status)) {
        const afterMs = res.status === 429 || res.status === 503 ? serverDelayMs(res.headers) : undefined
        throw new TransientFailure(`registry ${this.host}: ${method} ${path} answered ${res.status}`, afterMs, res)
      }
      return res
    }
  }

  /**
   * GET a small document (manifest, list), failing with the registry's own error on non-200.
   * `limit` bounds it (MAX_MANIFEST_BYTES for manifests).
   */
  async getBytes(path: string, repository: string | undefined, accept?: string, limit = MAX_DOCUMENT_BYTES, signal?: AbortSignal): Promise<{bytes: Buffer; headers: http.IncomingHttpHeaders}> {
    const res = await this.request('GET', path, repository, accept, 'document', signal)
    if (res.status !== 200) {
      let detail = ''
      try {
        const bytes = await readDocument(res, MAX_DOCUMENT_BYTES, `registry ${this.host}: the error body of GET ${path}`)
        try {
          detail = (JSON.parse(bytes.toString('utf8')) as {errors?: Array<{code: string; message: string}>}).errors?.map((e) => `${e.code}: ${e.message}`).join('; ') ?? ''
        } catch {
          detail = bytes.toString('utf8')
        }
      } catch (error) {
        if (!(error instanceof TooLargeError)) throw error
      }
      detail = printable(detail)
      throw new RegistryStatusError(res.status, `registry ${this.host}: GET ${path} answered ${res.status}${detail ? ` (${detail})` : ''}`, res.status === 404 ? 'check the repository name and tag' : undefined)
    }
    const bytes = await readDocument(res, limit, `registry ${this.host}: the answer to GET ${path}`)
    return {bytes, headers: res.headers}
  }
}
