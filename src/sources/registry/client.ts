import http from 'node:http'
import https from 'node:https'
import type {Readable} from 'node:stream'
import {setTimeout as sleep} from 'node:timers/promises'
import {RegError} from '../../core/errors.js'
import type {Credentials} from './credentials.js'

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

/** `Bearer realm="…",service="…",scope="…"` → its parameters. */
export function parseChallenge(header: string): {scheme: string; params: Record<string, string>} {
  const space = header.indexOf(' ')
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase()
  const params: Record<string, string> = {}
  for (const match of header.slice(space + 1).matchAll(/(\w+)="([^"]*)"/g)) params[match[1]] = match[2]
  return {scheme, params}
}

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function transient(status: number): boolean {
  return status === 429 || status >= 500
}

/**
 * The pull side of the Registry HTTP API v2 as registries answer it: anonymous first, then the
 * `WWW-Authenticate` challenge (Bearer token from the realm, scoped per repository, or Basic),
 * redirects followed (Authorization dropped on another host), transient errors retried.
 */
export class RegistryClient {
  private readonly tokens = new Map<string, string>()
  private basic = false

  constructor(readonly host: string, private readonly options: RegistryClientOptions = {}) {}

  get baseUrl(): string {
    return `${this.options.plainHttp ? 'http' : 'https'}://${this.host}`
  }

  private describeCredentials(): string {
    return this.options.credentials ? `credentials from ${this.options.credentials.source}` : 'no credentials (anonymous)'
  }

  private raw(url: URL, method: string, headers: Record<string, string>): Promise<RegistryResponse> {
    const transport = url.protocol === 'http:' ? http : https
    return new Promise((resolve, reject) => {
      const req = transport.request(url, {method, headers, ...(url.protocol === 'https:' && this.options.insecure ? {rejectUnauthorized: false} : {})}, (res) => {
        resolve({status: res.statusCode ?? 0, headers: res.headers, body: res})
      })
      req.setTimeout(60_000, () => req.destroy(new Error('timed out')))
      req.on('error', reject)
      req.end()
    })
  }

  private async token(realm: string, service: string | undefined, scope: string): Promise<string> {
    const url = new URL(realm)
    if (service) url.searchParams.set('service', service)
    url.searchParams.set('scope', scope)
    const headers: Record<string, string> = {}
    const creds = this.options.credentials
    if (creds) headers.Authorization = 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64')
    const res = await this.raw(url, 'GET', headers)
    const body = await readAll(res.body)
    if (res.status !== 200) {
      throw new RegError(`${this.host}: the token server ${url.origin} refused ${scope} (${res.status}) with ${this.describeCredentials()}`, 'check the credentials (--creds, REG_USERNAME/REG_PASSWORD, docker login)')
    }
    const parsed = JSON.parse(body.toString('utf8')) as {token?: string; access_token?: string}
    const token = parsed.token ?? parsed.access_token
    if (!token) throw new RegError(`${this.host}: the token server answered without a token`)
    return token
  }

  /**
   * GET (or HEAD) a path of the API for `repository` (the token scope). The body is a stream:
   * callers read it or destroy it.
   */
  async request(method: 'GET' | 'HEAD', path: string, repository: string | undefined, accept?: string): Promise<RegistryResponse> {
    const scope = repository ? `repository:${repository}:pull` : 'registry:catalog:*'
    const retries = this.options.retries ?? 3
    let fetchedToken = false
    for (let attempt = 0; ; attempt++) {
      let url = new URL(this.baseUrl + path)
      const headers: Record<string, string> = {...(accept ? {Accept: accept} : {})}
      const token = this.tokens.get(scope)
      if (token) headers.Authorization = `Bearer ${token}`
      else if (this.basic && this.options.credentials) headers.Authorization = 'Basic ' + Buffer.from(`${this.options.credentials.username}:${this.options.credentials.password}`).toString('base64')
      let res: RegistryResponse
      try {
        res = await this.raw(url, method, headers)
        // Redirects (blob storage elsewhere): follow, without our Authorization on another host.
        for (let hops = 0; res.status >= 300 && res.status < 400 && res.headers.location && hops < 5; hops++) {
          res.body.resume()
          const next = new URL(res.headers.location, url)
          if (next.host !== url.host) delete headers.Authorization
          url = next
          res = await this.raw(url, method, headers)
        }
      } catch (error) {
        const code = (error as {code?: string}).code
        if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') throw new RegError(`registry ${this.host}: unknown host`, 'check the name in docker://HOST/NAME')
        if (code === 'ECONNREFUSED') throw new RegError(`registry ${this.host}: connection refused at ${this.baseUrl}`, this.options.plainHttp ? 'is the registry running?' : 'is it plain HTTP? use --plain-http for a local registry')
        if (code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|EPROTO/.test(code)) throw new RegError(`registry ${this.host}: TLS error (${code})`, 'use --insecure to skip certificate verification, or --plain-http for an HTTP registry')
        if (attempt < retries) {
          await sleep(200 * 2 ** attempt)
          continue
        }
        throw new RegError(`registry ${this.host}: ${method} ${path} failed: ${(error as Error).message}`)
      }
      if (res.status === 401 && attempt < retries) {
        res.body.resume()
        const challenge = parseChallenge(String(res.headers['www-authenticate'] ?? ''))
        // No token yet, or one that expired during a long mirror: ask the realm once per request.
        if (challenge.scheme === 'bearer' && challenge.params.realm && !fetchedToken) {
          fetchedToken = true
          this.tokens.set(scope, await this.token(challenge.params.realm, challenge.params.service, challenge.params.scope ?? scope))
          continue
        }
        if (challenge.scheme === 'basic' && this.options.credentials && !this.basic) {
          this.basic = true
          continue
        }
        throw new RegError(`registry ${this.host}: ${path} needs authentication (401) and ${this.describeCredentials()} did not get in`, 'pass --creds user:pass, set REG_USERNAME/REG_PASSWORD, or docker login')
      }
      if (transient(res.status) && attempt < retries) {
        res.body.resume()
        await sleep(200 * 2 ** attempt)
        continue
      }
      return res
    }
  }

  /** GET a small document (manifest, list), failing with the registry's own error on non-200. */
  async getBytes(path: string, repository: string | undefined, accept?: string): Promise<{bytes: Buffer; headers: http.IncomingHttpHeaders}> {
    const res = await this.request('GET', path, repository, accept)
    const bytes = await readAll(res.body)
    if (res.status !== 200) {
      let detail = ''
      try {
        detail = (JSON.parse(bytes.toString('utf8')) as {errors?: Array<{code: string; message: string}>}).errors?.map((e) => `${e.code}: ${e.message}`).join('; ') ?? ''
      } catch {
        detail = bytes.toString('utf8').slice(0, 200)
      }
      throw new RegError(`registry ${this.host}: GET ${path} answered ${res.status}${detail ? ` (${detail})` : ''}`, res.status === 404 ? 'check the repository name and tag' : undefined)
    }
    return {bytes, headers: res.headers}
  }
}
