/** The distribution spec's JSON error body ("Error Codes"). */
export function errorBody(code: string, message: string, detail?: unknown): string {
  return JSON.stringify({errors: [{code, message, ...(detail === undefined ? {} : {detail})}]})
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
