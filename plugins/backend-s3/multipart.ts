import {createReadStream} from 'node:fs'
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, type CreateMultipartUploadCommandInput, ListPartsCommand,
  type S3Client, UploadPartCommand, UploadPartCopyCommand,
} from '@aws-sdk/client-s3'
import {mapLimit} from '../../src/core/concurrency.js'
import {RegError} from '../../src/core/errors.js'
import type {PendingUpload} from './deploy-state.js'

const MiB = 1024 * 1024
/** S3's largest part; also the largest object one CopyObject copies. */
export const MAX_PART_BYTES = 5 * 1024 * MiB
/** S3's most parts in one upload */
const MAX_PARTS = 10_000
/** parts in flight at once for one object */
const PART_CONCURRENCY = 4
/** an upload in parts older than this is aborted instead of resumed (its parts cost storage; S3 keeps them until then) */
export const MULTIPART_RESUME_MS = 3 * 24 * 3_600_000

/** Scaleway caps multipart uploads at 1,000 parts: keep a 50 GB layer under 900, never below S3's 5 MiB minimum. */
export function partSizeFor(size: number): number {
  return Math.max(8 * MiB, Math.ceil(size / 900 / MiB) * MiB)
}

/** The byte ranges of the parts of an object of `size` bytes, 1-based part numbers. */
export function partsOf(size: number, partSize: number): Array<{number: number; start: number; length: number}> {
  const count = Math.max(1, Math.ceil(size / partSize))
  if (count > MAX_PARTS || partSize > MAX_PART_BYTES) throw new RegError(`internal: ${size} bytes in parts of ${partSize} is more than S3 accepts`)
  return Array.from({length: count}, (_, i) => ({number: i + 1, start: i * partSize, length: Math.min(partSize, size - i * partSize)}))
}

/** Where an upload in parts goes, and with which object headers. */
export interface PartsTarget {
  client: S3Client
  bucket: string
  key: string
  /** the object's Content-Type, Cache-Control, metadata, ACL, storage class */
  params: Omit<CreateMultipartUploadCommandInput, 'Bucket' | 'Key'>
  signal?: AbortSignal
}

/** The uploads in parts a deploy state keeps, by key: written through as soon as one starts, so a killed deploy resumes. */
export interface PendingUploads {
  get(key: string): PendingUpload | undefined
  set(key: string, upload: PendingUpload): Promise<void>
  remove(key: string): Promise<void>
}

function statusOf(error: unknown): number | undefined {
  return (error as {$metadata?: {httpStatusCode?: number}}).$metadata?.httpStatusCode
}

/** Abort an upload in parts, whatever is left of it: one that is gone already is fine. */
export async function abortUpload(client: S3Client, bucket: string, key: string, uploadId: string, signal?: AbortSignal): Promise<void> {
  try {
    await client.send(new AbortMultipartUploadCommand({Bucket: bucket, Key: key, UploadId: uploadId}), {abortSignal: signal})
  } catch (error) {
    if ((error as Error).name !== 'NoSuchUpload' && statusOf(error) !== 404) throw error
  }
}

/**
 * The parts of `uploadId` S3 already has, by number (ETag and size); undefined when the upload is
 * gone (aborted, expired). Pages are bounded by the number of parts the object can have.
 */
async function uploadedParts(target: PartsTarget, uploadId: string, expected: number): Promise<Map<number, {etag: string; size: number}> | undefined> {
  const parts = new Map<number, {etag: string; size: number}>()
  let marker: string | undefined
  try {
    for (let page = 0; page <= expected / 1000 + 1; page++) {
      const listed = await target.client.send(new ListPartsCommand({Bucket: target.bucket, Key: target.key, UploadId: uploadId, PartNumberMarker: marker}), {abortSignal: target.signal})
      for (const part of listed.Parts ?? []) if (part.PartNumber && part.ETag && part.Size !== undefined) parts.set(part.PartNumber, {etag: part.ETag, size: part.Size})
      if (!listed.IsTruncated || !listed.NextPartNumberMarker) break
      marker = listed.NextPartNumberMarker
    }
  } catch (error) {
    if ((error as Error).name === 'NoSuchUpload' || statusOf(error) === 404) return undefined
    throw error
  }
  return parts
}

/**
 * Upload `file` (the bytes of `digest`, `size` long) in parts, resuming an upload a previous deploy
 * started for the same bytes: the parts S3 has (right number, right size) are not sent again. The
 * upload id goes into the deploy state before the first part, and out of it once complete; one that
 * fails stays there for the next deploy (or is aborted once too old, see `MULTIPART_RESUME_MS`).
 */
export async function uploadInParts(target: PartsTarget, file: string, digest: string, size: number, pending: PendingUploads, now: number): Promise<{partsSent: number; partsResumed: number}> {
  const partSize = partSizeFor(size)
  const parts = partsOf(size, partSize)
  const previous = pending.get(target.key)
  let uploadId: string | undefined
  let have = new Map<number, {etag: string; size: number}>()
  if (previous) {
    const same = previous.digest === digest && previous.size === size && previous.partSize === partSize && now - previous.started < MULTIPART_RESUME_MS
    const found = same ? await uploadedParts(target, previous.uploadId, parts.length) : undefined
    if (found) {
      uploadId = previous.uploadId
      have = found
    } else {
      // Other bytes, too old, or gone: what is left of it is not ours to keep.
      await abortUpload(target.client, target.bucket, target.key, previous.uploadId, target.signal)
      await pending.remove(target.key)
    }
  }
  if (uploadId === undefined) {
    const created = await target.client.send(new CreateMultipartUploadCommand({...target.params, Bucket: target.bucket, Key: target.key}), {abortSignal: target.signal})
    if (!created.UploadId) throw new RegError(`s3://${target.bucket}/${target.key}: the store started an upload in parts without an id`)
    uploadId = created.UploadId
    await pending.set(target.key, {uploadId, digest, size, partSize, started: now})
  }
  const id = uploadId
  const etags = new Map<number, string>()
  let partsSent = 0
  await mapLimit(parts, PART_CONCURRENCY, async (part) => {
    const uploaded = have.get(part.number)
    if (uploaded && uploaded.size === part.length) {
      etags.set(part.number, uploaded.etag)
      return
    }
    const sent = await target.client.send(new UploadPartCommand({
      Bucket: target.bucket, Key: target.key, UploadId: id, PartNumber: part.number, ContentLength: part.length,
      // A stream of exactly the part's bytes with a known length: no aws-chunked framing.
      Body: createReadStream(file, {start: part.start, end: part.start + part.length - 1, highWaterMark: MiB}),
    }), {abortSignal: target.signal})
    if (!sent.ETag) throw new RegError(`s3://${target.bucket}/${target.key}: part ${part.number} was stored without an ETag`)
    etags.set(part.number, sent.ETag)
    partsSent++
  })
  await complete(target, id, etags)
  await pending.remove(target.key)
  return {partsSent, partsResumed: parts.length - partsSent}
}

async function complete(target: PartsTarget, uploadId: string, etags: Map<number, string>): Promise<void> {
  const Parts = [...etags].sort(([a], [b]) => a - b).map(([PartNumber, ETag]) => ({PartNumber, ETag}))
  await target.client.send(new CompleteMultipartUploadCommand({Bucket: target.bucket, Key: target.key, UploadId: uploadId, MultipartUpload: {Parts}}), {abortSignal: target.signal})
}

/**
 * A server-side copy of an object over 5 GiB (one CopyObject's limit): an upload in parts, each part
 * copied from a byte range of the source (UploadPartCopy), nothing going through this machine. A copy
 * is not resumed: one that fails is aborted, and the step is tried again whole.
 */
export async function copyInParts(target: PartsTarget, copySource: string, size: number): Promise<number> {
  const parts = partsOf(size, partSizeFor(size))
  const created = await target.client.send(new CreateMultipartUploadCommand({...target.params, Bucket: target.bucket, Key: target.key}), {abortSignal: target.signal})
  const uploadId = created.UploadId
  if (!uploadId) throw new RegError(`s3://${target.bucket}/${target.key}: the store started an upload in parts without an id`)
  try {
    const etags = new Map<number, string>()
    await mapLimit(parts, PART_CONCURRENCY, async (part) => {
      const copied = await target.client.send(new UploadPartCopyCommand({
        Bucket: target.bucket, Key: target.key, UploadId: uploadId, PartNumber: part.number,
        CopySource: copySource, CopySourceRange: `bytes=${part.start}-${part.start + part.length - 1}`,
      }), {abortSignal: target.signal})
      const etag = copied.CopyPartResult?.ETag
      if (!etag) throw new RegError(`s3://${target.bucket}/${target.key}: part ${part.number} was copied without an ETag`)
      etags.set(part.number, etag)
    })
    await complete(target, uploadId, etags)
  } catch (error) {
    // Never after Ctrl-C: the abort would be cut short too; the store expires it (or the bucket's lifecycle rule does).
    if (!target.signal?.aborted) await abortUpload(target.client, target.bucket, target.key, uploadId).catch(() => undefined)
    throw error
  }
  return parts.length
}
