import {open, stat} from 'node:fs/promises'
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
 * Where a response's bytes come from: a file (of the tree or the store), read in large reused
 * chunks, or a stream of bytes `start..end` (inclusive).
 */
export type ObjectBytes = {file: string} | ((start: number, end: number) => Readable)

/**
 * An object's headers and bytes: GET and HEAD alike, `If-None-Match`, `Range` on blobs. A body
 * that fails (a file or stream that errs or ends short) cuts the connection, so a client never
 * takes a short body for a whole one.
 */
export function sendObject(req: http.IncomingMessage, res: http.ServerResponse, method: string, object: ServedObject, bytes: ObjectBytes): void {
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
  const sent = typeof bytes === 'function' ? pipeline(bytes(start, end), res) : sendFileBytes(res, bytes.file, start, end)
  sent.catch(() => res.destroy())
}

/** Bytes of a file body per read and write: each read and socket write has a fixed cost, and 1 MiB pays it 16 times less often than node's default 64 KiB. */
const FILE_CHUNK_BYTES = 1 << 20
/** The chunk of a download when the large ones are all lent: node's default, what every download used before. */
const SMALL_FILE_CHUNK_BYTES = 1 << 16
/** Large chunks lent at once (two per download): slow clients that hold theirs cost at most this many MiB, kept for reuse after. */
const MAX_LENT_FILE_CHUNKS = 32

/**
 * Read buffers for file bodies, reused: a fresh buffer per chunk costs its allocation, its page
 * faults and its garbage collection, more than the copy itself. A buffer returns only once no read
 * or write uses it any more.
 */
class FileChunks {
  private readonly free: Buffer[] = []
  private lent = 0

  take(): Buffer {
    if (this.lent >= MAX_LENT_FILE_CHUNKS) return Buffer.allocUnsafeSlow(SMALL_FILE_CHUNK_BYTES)
    this.lent++
    return this.free.pop() ?? Buffer.allocUnsafeSlow(FILE_CHUNK_BYTES)
  }

  /** `reusable`: no read or socket write holds the buffer still (after a failure one may). */
  give(buffer: Buffer, reusable: boolean): void {
    if (buffer.length !== FILE_CHUNK_BYTES) return
    this.lent--
    if (reusable) this.free.push(buffer)
  }
}

const fileChunks = new FileChunks()

/** `chunk` written to the response; fails when the connection closes first (a write then may never be called back). */
function written(res: http.ServerResponse, chunk: Buffer, closed: Promise<never>): Promise<void> {
  const write = new Promise<void>((resolve, reject) => {
    res.write(chunk, (error) => (error ? reject(error) : resolve()))
  })
  return Promise.race([write, closed])
}

/**
 * Bytes `start..end` (inclusive) of `file` as the response's body, then its end. Two chunks take
 * turns: the next is read while the last is written, and a chunk is read into again only once its
 * write has completed. A body of at most one chunk is read whole and sent with the end.
 */
async function sendFileBytes(res: http.ServerResponse, file: string, start: number, end: number): Promise<void> {
  const length = end + 1 - start
  const handle = await open(file, 'r')
  let chunks: Buffer[] = []
  let settled = false
  try {
    if (length <= SMALL_FILE_CHUNK_BYTES) {
      const body = Buffer.allocUnsafe(length)
      for (let offset = 0; offset < length;) {
        const {bytesRead} = await handle.read(body, offset, length - offset, start + offset)
        if (bytesRead === 0) throw new Error(`${file} ends before byte ${end}`)
        offset += bytesRead
      }
      res.end(body)
      settled = true
      return
    }
    const closed = new Promise<never>((_resolve, reject) => {
      res.once('close', () => reject(new Error('the connection closed')))
    })
    closed.catch(() => undefined)
    chunks = [fileChunks.take(), fileChunks.take()]
    let writing = Promise.resolve()
    for (let position = start, turn = 0; position <= end; turn++) {
      const chunk = chunks[turn % 2]
      // This chunk's last write completed: it was awaited before the write that followed it.
      const {bytesRead} = await handle.read(chunk, 0, Math.min(chunk.length, end + 1 - position), position)
      if (bytesRead === 0) throw new Error(`${file} ends before byte ${end}`)
      await writing
      writing = written(res, chunk.subarray(0, bytesRead), closed)
      // awaited on the next turn; a failure while the next chunk is read must not go unhandled meanwhile
      writing.catch(() => undefined)
      position += bytesRead
    }
    await writing
    settled = true
    res.end()
  } finally {
    for (const chunk of chunks) fileChunks.give(chunk, settled)
    await handle.close()
  }
}

/** A blob of the store that the tree's index does not name (yet): pushed and not tagged, or proxied. */
export async function sendStoredBlob(req: http.IncomingMessage, res: http.ServerResponse, method: string, store: BlobStore, digest: string): Promise<void> {
  const file = store.pathOf(digest)
  sendObject(req, res, method, {class: 'blob', digest, size: (await stat(file)).size, headers: blobHeaders(digest)}, {file})
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
