import {Readable} from 'node:stream'
import {RegError} from '../../src/core/errors.js'
import {MAX_DOCUMENT_BYTES, readBounded} from '../../src/core/limits.js'
import {RetryableError, serverDelayMs, withRetries} from '../../src/core/retry.js'

export const CLOUDFLARE_API_URL = 'https://api.cloudflare.com/client/v4'

/** The API base: CLOUDFLARE_API_BASE_URL (the variable wrangler reads too), else Cloudflare's. */
export function cloudflareApiUrl(env: NodeJS.ProcessEnv = process.env): string {
  return (env.CLOUDFLARE_API_BASE_URL ?? CLOUDFLARE_API_URL).replace(/\/$/, '')
}

/** The token scopes each backend needs, for messages and the README. */
export const TOKEN_SCOPES = {
  cloudflare: 'Account → Workers Scripts: Edit (and Zone → Workers Routes: Edit for --route)',
  'cloudflare-pages': 'Account → Cloudflare Pages: Edit',
} as const

export interface CloudflareApiSettings {
  token: string
  /** API base, https://api.cloudflare.com/client/v4 unless told */
  apiUrl: string
  retries: number
  /** which backend calls, for the token hint */
  backend: keyof typeof TOKEN_SCOPES
}

interface Envelope<T> {
  success?: boolean
  errors?: Array<{code?: number; message?: string}>
  result?: T
}

/** A failure the API answered, kept apart from network failures. */
class ApiAnswer extends Error {
  constructor(readonly status: number, readonly detail: string) {
    super(`${status}: ${detail}`)
  }
}

/**
 * Cloudflare's v4 API: `{success, errors, result}` envelopes, a bearer token, reg's one retry policy
 * (5xx, 429 after the delay asked for, network failures), and errors that say what to do.
 */
export class CloudflareApi {
  constructor(private readonly settings: CloudflareApiSettings) {}

  /**
   * `init.body` is JSON (an object), form data, or bytes; `token` replaces the account token (the
   * Pages upload endpoints take a short-lived JWT of their own). `absentWhen`: statuses that mean
   * "nothing there" (undefined), not a failure.
   */
  async call<T>(doing: string, method: string, path: string, init: {body?: unknown; token?: string; absentWhen?: number[]; signal?: AbortSignal} = {}): Promise<T | undefined> {
    const headers: Record<string, string> = {Authorization: `Bearer ${init.token ?? this.settings.token}`}
    let body: BodyInit | undefined
    if (init.body instanceof FormData || typeof init.body === 'string' || init.body instanceof Uint8Array) body = init.body as BodyInit
    else if (init.body !== undefined) {
      body = JSON.stringify(init.body)
      headers['Content-Type'] = 'application/json'
    }
    try {
      return await withRetries(async () => {
        let response: Response
        try {
          response = await fetch(`${this.settings.apiUrl}${path}`, {method, headers, body, signal: init.signal})
        } catch (error) {
          if (init.signal?.aborted) throw error
          throw new RetryableError(`cannot reach the Cloudflare API at ${this.settings.apiUrl} (${(error as {cause?: {code?: string}}).cause?.code ?? (error as Error).message})`)
        }
        // JSON envelopes: read as the small documents of others they are.
        const text = response.body ? (await readBounded(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream), MAX_DOCUMENT_BYTES, 'an answer of the Cloudflare API')).toString('utf8') : ''
        let envelope: Envelope<T> = {}
        try {
          envelope = JSON.parse(text) as Envelope<T>
        } catch {}
        if (init.absentWhen?.includes(response.status)) return undefined
        if (!response.ok || envelope.success === false) {
          const detail = envelope.errors?.map((e) => `${e.message ?? 'error'}${e.code === undefined ? '' : ` (code ${e.code})`}`).join('; ') || response.statusText
          if (response.status >= 500 || response.status === 429) throw new RetryableError(`${response.status}: ${detail}`, serverDelayMs(Object.fromEntries(response.headers)), {cause: new ApiAnswer(response.status, detail)})
          throw new ApiAnswer(response.status, detail)
        }
        return envelope.result as T
      }, {policy: {retries: this.settings.retries, maxMs: 8000}, signal: init.signal})
    } catch (error) {
      if (init.signal?.aborted) throw error
      throw this.explain(error, doing)
    }
  }

  private explain(error: unknown, doing: string): RegError {
    const answer = error instanceof ApiAnswer ? error : error instanceof RetryableError && error.cause instanceof ApiAnswer ? error.cause : undefined
    const scopes = TOKEN_SCOPES[this.settings.backend]
    if (answer?.status === 401 || answer?.status === 403) {
      return new RegError(`Cloudflare refused the token when asked to ${doing} (${answer.status}: ${answer.detail})`, `use an API token with ${scopes} (dashboard → My Profile → API Tokens), in CLOUDFLARE_API_TOKEN or --api-token`)
    }
    if (answer) return new RegError(`Cloudflare answered ${answer.status} when asked to ${doing}: ${answer.detail}`, answer.status >= 500 || answer.status === 429 ? 'try again later (--retries sets how often)' : undefined)
    return new RegError(`${(error as Error).message} when asked to ${doing}`, 'check the network and try again')
  }
}

/** The token: --api-token, else CLOUDFLARE_API_TOKEN; refused clearly when neither is set. */
export function apiToken(flag: string | undefined, backend: keyof typeof TOKEN_SCOPES): string {
  const token = flag ?? process.env.CLOUDFLARE_API_TOKEN
  if (!token) throw new RegError(`--backend ${backend} needs a Cloudflare API token`, `export CLOUDFLARE_API_TOKEN=<token with ${TOKEN_SCOPES[backend]}> (dashboard → My Profile → API Tokens)`)
  return token
}
