import {RegError} from './errors.js'

/**
 * CORS for browser registry UIs: which origin may read the registry, and which headers a page may
 * see and send. Every host renders this one set (reg serve, nginx, Apache, `_headers`, S3's bucket
 * CORS configuration, a Worker); a registry of reg is read anonymously, so it is on by default.
 */

/** Who may read from a browser: `*` (any page), one origin, or nobody (`--cors off`: no CORS headers at all). */
export type CorsOrigin = string | undefined

/** The methods a page may use: the registry is read-only to browsers (pushes come from clients that do not ask). */
export const CORS_ALLOW_METHODS = ['GET', 'HEAD'] as const

/** Request headers a page may send: tokens, blob ranges, manifest media types, conditional requests. */
export const CORS_ALLOW_HEADERS = ['Authorization', 'Range', 'Accept', 'If-None-Match', 'If-Match'] as const

/** Response headers a page may read beyond the safelisted ones: the digest, sizes, ranges, pagination, auth challenges. */
export const CORS_EXPOSE_HEADERS = [
  'Docker-Content-Digest', 'Docker-Distribution-API-Version', 'Content-Length', 'Content-Range', 'Content-Type', 'Accept-Ranges',
  'ETag', 'Link', 'Location', 'WWW-Authenticate', 'OCI-Filters-Applied',
] as const

/** How long a browser may keep a preflight's answer, in seconds. */
export const CORS_MAX_AGE_SECONDS = 86_400

/** The default: any page may read, as it may with curl. */
export const DEFAULT_CORS_ORIGIN = '*'

/**
 * `--cors ORIGIN|off` (and the config's `cors`): `*`, an origin `scheme://host[:port]` exactly as a
 * browser sends it, or `off`. The value goes into host configuration files, so nothing else passes.
 */
export function parseCorsOrigin(value: string | undefined): CorsOrigin {
  if (value === undefined || value === '' || value === DEFAULT_CORS_ORIGIN) return DEFAULT_CORS_ORIGIN
  if (value === 'off') return undefined
  let origin: string | undefined
  try {
    const url = new URL(value)
    origin = (url.protocol === 'http:' || url.protocol === 'https:') ? url.origin : undefined
  } catch {}
  if (origin === undefined || origin !== value) {
    throw new RegError(`--cors ${JSON.stringify(value)} is not an origin, "*" or "off"`, 'an origin is scheme://host[:port] with no path, as a browser sends it: e.g. --cors https://ui.example.com, --cors "*" (the default) or --cors off')
  }
  return origin
}

/** The headers of every answer to GET and HEAD (errors too: a page reads a 404 as well). */
export function corsHeaders(origin: string): Record<string, string> {
  return {
    'Access-Control-Allow-Origin': origin,
    'Access-Control-Expose-Headers': CORS_EXPOSE_HEADERS.join(', '),
  }
}

/** The answer to an `OPTIONS` preflight: 204 with these headers. */
export function corsPreflightHeaders(origin: string): Record<string, string> {
  return {
    ...corsHeaders(origin),
    'Access-Control-Allow-Methods': CORS_ALLOW_METHODS.join(', '),
    'Access-Control-Allow-Headers': CORS_ALLOW_HEADERS.join(', '),
    'Access-Control-Max-Age': String(CORS_MAX_AGE_SECONDS),
  }
}

/**
 * For a Worker (or any host that computes its answers): the answer to a preflight (`OPTIONS`), or
 * undefined for any other method; answers to GET and HEAD add `corsHeaders(origin)`.
 */
export function corsPreflightResponse(method: string, origin: CorsOrigin): {status: 204; headers: Record<string, string>} | undefined {
  return method === 'OPTIONS' && origin !== undefined ? {status: 204, headers: corsPreflightHeaders(origin)} : undefined
}
