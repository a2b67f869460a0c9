/** The distribution spec's JSON error body ("Error Codes"). */
export function errorBody(code: string, message: string, detail?: unknown): string {
  return JSON.stringify({errors: [{code, message, ...(detail === undefined ? {} : {detail})}]})
}

export type NotFoundCode = 'NAME_UNKNOWN' | 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN'

/** Which spec error a missing URL deserves. */
export function notFoundError(urlPath: string): {code: NotFoundCode; message: string} {
  const match = /^v2\/(.+)\/(manifests|blobs|tags|referrers)\/[^/]+$/.exec(urlPath)
  if (match?.[2] === 'manifests') return {code: 'MANIFEST_UNKNOWN', message: 'manifest unknown'}
  if (match?.[2] === 'blobs') return {code: 'BLOB_UNKNOWN', message: 'blob unknown to registry'}
  return {code: 'NAME_UNKNOWN', message: 'repository name not known to registry'}
}

export const UNSUPPORTED_MESSAGE = 'this registry is read-only: only GET and HEAD are supported'
