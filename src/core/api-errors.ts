import {RegError} from './errors.js'

/** The distribution spec's error codes ("Error Codes"), and UNKNOWN for a registry's own failure. */
export type SpecErrorCode =
  | 'BLOB_UNKNOWN' | 'BLOB_UPLOAD_INVALID' | 'BLOB_UPLOAD_UNKNOWN' | 'DIGEST_INVALID' | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID' | 'MANIFEST_UNKNOWN' | 'NAME_INVALID' | 'NAME_UNKNOWN' | 'SIZE_INVALID' | 'UNAUTHORIZED'
  | 'DENIED' | 'UNSUPPORTED' | 'TOOMANYREQUESTS' | 'PAGINATION_NUMBER_INVALID' | 'UNKNOWN'

/** The distribution spec's JSON error body. */
export function errorBody(code: string, message: string, detail?: unknown): string {
  return JSON.stringify({errors: [{code, message, ...(detail === undefined ? {} : {detail})}]})
}

/**
 * A request refused as the distribution API says: the HTTP status, the spec's error code, a
 * message for the client (never a server path, never bytes it refused) and how to fix it (sent
 * as the error's `detail`).
 * `closeConnection`: the request's body is not read (it may be endless), so the connection ends
 * with the answer.
 */
export class HttpError extends RegError {
  declare readonly code: SpecErrorCode
  readonly headers: Readonly<Record<string, string | number>>
  readonly closeConnection: boolean

  constructor(readonly status: number, code: SpecErrorCode, message: string, options: {hint?: string; headers?: Record<string, string | number>; closeConnection?: boolean} = {}) {
    super(message, options.hint, code)
    this.name = 'HttpError'
    this.headers = options.headers ?? {}
    this.closeConnection = options.closeConnection ?? false
  }
}

/**
 * The errors of the shared core that say what is wrong with content a client sent, and the
 * spec's answer to each. Any other failure is the registry's own (500).
 */
const CORE_ERRORS: Readonly<Record<string, {status: number; code: SpecErrorCode}>> = {
  DIGEST_MISMATCH: {status: 400, code: 'DIGEST_INVALID'},
  SIZE_INVALID: {status: 400, code: 'SIZE_INVALID'},
  MANIFEST_INVALID: {status: 400, code: 'MANIFEST_INVALID'},
  GRAPH_TOO_LARGE: {status: 400, code: 'MANIFEST_INVALID'},
  TOO_LARGE: {status: 413, code: 'MANIFEST_INVALID'},
}

/** The spec's answer to an error: itself when it is one, its code's row of CORE_ERRORS, else undefined (the registry's own failure). */
export function httpErrorOf(error: unknown): HttpError | undefined {
  if (error instanceof HttpError) return error
  if (!(error instanceof RegError) || !Object.hasOwn(CORE_ERRORS, error.code)) return undefined
  const {status, code} = CORE_ERRORS[error.code]
  // The core's hints speak to a user building a tree, not to a client of the registry.
  return new HttpError(status, code, error.message)
}

export type NotFoundCode = 'NAME_UNKNOWN' | 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN'

export const TAG_PATTERN = '[A-Za-z0-9_][A-Za-z0-9._-]{0,127}'
export const DIGEST_PATTERN = 'sha256:[a-f0-9]{64}'
const MANIFEST_URL = new RegExp(`^v2/.+/manifests/(${TAG_PATTERN}|${DIGEST_PATTERN})$`)
const BLOB_URL = new RegExp(`^v2/.+/blobs/${DIGEST_PATTERN}$`)

/** Which spec error a missing URL deserves: a well-formed manifest or blob reference is unknown, anything else names nothing. */
export function notFoundError(urlPath: string): {code: NotFoundCode; message: string} {
  if (MANIFEST_URL.test(urlPath)) return {code: 'MANIFEST_UNKNOWN', message: 'manifest unknown'}
  if (BLOB_URL.test(urlPath)) return {code: 'BLOB_UNKNOWN', message: 'blob unknown to registry'}
  return {code: 'NAME_UNKNOWN', message: 'repository name not known to registry'}
}

export const UNSUPPORTED_MESSAGE = 'this registry is read-only: only GET and HEAD are supported'
