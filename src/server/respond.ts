import {createReadStream} from 'node:fs'
import {stat} from 'node:fs/promises'
import type http from 'node:http'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {errorBody, type HttpError} from '../core/api-errors.js'
import type {BlobStore} from '../tree/blob-store.js'
import type {RegistryObject} from '../tree/model.js'
import {API_VERSION_HEADER, blobHeaders, IMMUTABLE, manifestHeaders} from '../tree/objects.js'

/** Parse a single `bytes=a-b` range; undefined means "serve it all" (multi-range is not supported, as the spec allows). */
export function parseRange(header: string | undefined, size: number): {start: number; end: number} | 'unsatisfiable' | undefined {
  if (!header) return undefined
  // Only SP and HTAB may surround a field value (RFC 9110 §5.5): String.trim() would take more.
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.replace(/^[ \t]+|[ \t]+$/g, ''))
  if (!match || (match[1] === '' && match[2] === '')) return undefined
  let start: number
  let end: number
  if (match[1] === '') {
    const suffix = Number(match[2])
    if (suffix === 0) return 'unsatisfiable'
    start = Math.max(0, size - suffix)
    end = size - 1
  } else {
    start = Number(match[1])
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1)
  }
  if (start >= size || start > end) return 'unsatisfiable'
  return {start, end}
}

/**
 * The `Content-Range` of an upload chunk, as docker, containerd and distribution send and read it:
 * `start-end`, byte offsets of the chunk in the upload, without the `bytes ` unit of RFC 9110.
 * Whether the range fits the upload (where it starts, its order, its length) is the caller's to check.
 */
export function parseContentRange(header: string): {start: number; end: number} | 'invalid' {
  // Only SP and HTAB may surround a field value (RFC 9110 §5.5); 15 digits stay safe integers.
  const match = /^(\d{1,15})-(\d{1,15})$/.exec(header.replace(/^[ \t]+|[ \t]+$/g, ''))
  if (!match) return 'invalid'
  return {start: Number(match[1]), end: Number(match[2])}
}

/** What a response needs to know of an object: from the tree's index, or made up for content not (yet) in it. */
export type ServedObject = Pick<RegistryObject, 'class' | 'digest' | 'size' | 'headers'>

/**
 * An object's headers and bytes: GET and HEAD alike, `If-None-Match`, `Range` on blobs. `open`
 * gives bytes `start..end` (inclusive); a stream that fails cuts the connection, so a client never
 * takes a short body for a whole one.
 */
export function sendObject(req: http.IncomingMessage, res: http.ServerResponse, method: string, object: ServedObject, open: (start: number, end: number) => Readable): void {
  const headers: Record<string, string | number> = {...object.headers, ETag: `"${object.digest}"`}
  if (req.headers['if-none-match'] === `"${object.digest}"`) {
    res.writeHead(304, headers).end()
    return
  }
  let range: ReturnType<typeof parseRange>
  if (object.class === 'blob') {
    headers['Accept-Ranges'] = 'bytes'
    range = parseRange(req.headers.range, object.size)
  }
  if (range === 'unsatisfiable') {
    res.writeHead(416, {...headers, 'Content-Range': `bytes */${object.size}`, 'Content-Length': 0}).end()
    return
  }
  const start = range?.start ?? 0
  const end = range?.end ?? object.size - 1
  headers['Content-Length'] = object.size === 0 ? 0 : end - start + 1
  if (range) headers['Content-Range'] = `bytes ${start}-${end}/${object.size}`
  res.writeHead(range ? 206 : 200, headers)
  if (method === 'HEAD' || object.size === 0) {
    res.end()
    return
  }
  pipeline(open(start, end), res).catch(() => res.destroy())
}

/** A blob of the store that the tree's index does not name (yet): pushed and not tagged, or proxied. */
export async function sendStoredBlob(req: http.IncomingMessage, res: http.ServerResponse, method: string, store: BlobStore, digest: string): Promise<void> {
  const file = store.pathOf(digest)
  sendObject(req, res, method, {class: 'blob', digest, size: (await stat(file)).size, headers: blobHeaders(digest)}, (start, end) => createReadStream(file, {start, end}))
}

/** A manifest's exact bytes with its media type; by tag with `cacheControl`, by digest immutable. */
export function sendManifestBytes(req: http.IncomingMessage, res: http.ServerResponse, method: string, raw: Buffer, manifest: {digest: string; mediaType: string}, cacheControl = IMMUTABLE): void {
  sendObject(req, res, method, {class: cacheControl === IMMUTABLE ? 'digest-manifest' : 'tag-manifest', digest: manifest.digest, size: raw.length, headers: manifestHeaders(manifest.mediaType, manifest.digest, cacheControl)}, () => Readable.from([raw]))
}

export function sendJson(res: http.ServerResponse, method: string, status: number, body: string, contentType: string, cacheControl: string, extra: Readonly<Record<string, string | number>> = {}): void {
  res.writeHead(status, {'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': cacheControl, ...API_VERSION_HEADER, ...extra})
  res.end(method === 'HEAD' ? undefined : body)
}

/** An answer without a body (201, 202, 204 of the push API). */
export function sendStatus(res: http.ServerResponse, status: number, headers: Readonly<Record<string, string | number>> = {}): void {
  res.writeHead(status, {...API_VERSION_HEADER, 'Content-Length': 0, ...headers}).end()
}

/** A spec error (JSON body, never cached; the hint as its detail); HEAD gets the status and headers only. */
export function sendError(res: http.ServerResponse, method: string, error: HttpError, extra: Readonly<Record<string, string>> = {}): void {
  sendJson(res, method, error.status, errorBody(error.code, error.message, error.hint), 'application/json', 'no-store', {...error.headers, ...extra})
}
