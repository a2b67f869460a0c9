import {type FileHandle, open} from 'node:fs/promises'
import type {Readable} from 'node:stream'
import {RegError} from './errors.js'

/**
 * The bounds reg puts on what other people send it, in one place (SECURITY.md lists them).
 * A manifest is a small document: distribution refuses more than 4 MiB, and so does reg, wherever
 * one is read (source, push, proxy, the store).
 */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024
/** Small JSON documents from upstreams that are not manifests: tokens, tags lists, catalogs, errors. */
export const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
/** A deploy state read back from a host (S3's state object): keys pruned with a grace, uploads in flight; about 100 bytes a key. */
export const MAX_DEPLOY_STATE_BYTES = 64 * 1024 * 1024
/**
 * A referrers document `reg serve` filters by `?artifactType=` in memory: parsing it costs what
 * parsing a manifest does. A larger one (thousands of referrers) is served whole and unfiltered,
 * without `OCI-Filters-Applied`, which the distribution spec allows.
 */
export const MAX_FILTERED_REFERRERS_BYTES = 4 * 1024 * 1024
/** Distinct manifests and blobs one image graph may reach (a huge multi-arch index has a few hundred). */
export const MAX_GRAPH_NODES = 10_000

/** A read that went over its bound. `status` is what an HTTP answer to it should say. */
export class TooLargeError extends RegError {
  constructor(what: string, limit: number) {
    super(`${what} is larger than ${limit} bytes`, 'reg refuses documents this large from others: the source or sender is malicious or broken', 'TOO_LARGE')
  }
}

/** Read a stream whole, but never more than `limit` bytes: the stream is destroyed at the first byte over. */
export async function readBounded(stream: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of stream) {
    total += (chunk as Buffer).length
    if (total > limit) {
      stream.destroy()
      throw new TooLargeError(what, limit)
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

/** Read a file whole, refusing one over `limit` before reading a byte of it. */
export async function readFileBounded(file: string, limit: number, what: string): Promise<Buffer> {
  const handle = await open(file, 'r')
  try {
    return await readHandleBounded(handle, (await handle.stat()).size, limit, what)
  } finally {
    await handle.close()
  }
}

/**
 * An open file (of `size` bytes when it was stat'ed) read whole from its current position, never
 * more than `limit` bytes: reading goes on to the end, so a file that grew since the stat is still caught.
 */
export async function readHandleBounded(handle: FileHandle, size: number, limit: number, what: string): Promise<Buffer> {
  if (size > limit) throw new TooLargeError(what, limit)
  let buffer = Buffer.allocUnsafe(size + 1)
  let length = 0
  for (;;) {
    if (length === buffer.length) {
      if (length > limit) throw new TooLargeError(what, limit)
      buffer = Buffer.concat([buffer, Buffer.allocUnsafe(Math.min(buffer.length, limit + 1 - length))])
    }
    const {bytesRead} = await handle.read(buffer, length, buffer.length - length, null)
    if (bytesRead === 0) break
    length += bytesRead
  }
  if (length > limit) throw new TooLargeError(what, limit)
  return buffer.subarray(0, length)
}
