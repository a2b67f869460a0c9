import type {Readable} from 'node:stream'
import {GetObjectCommand, PutObjectCommand, type S3Client} from '@aws-sdk/client-s3'
import {RegError} from '../../src/core/errors.js'
import {MAX_DEPLOY_STATE_BYTES, readBounded, TooLargeError} from '../../src/core/limits.js'
import {parseUnreferenced} from '../../src/publish/local-files.js'

/** An upload in parts that a deploy started and did not finish: the next deploy resumes it. */
export interface PendingUpload {
  uploadId: string
  /** the digest of the bytes it uploads: a key whose content changed is started afresh */
  digest: string
  size: number
  partSize: number
  /** ms since the epoch: after the timeout, the upload is aborted instead of resumed */
  started: number
}

/**
 * What the S3 family keeps between deploys, in one small object beside the registry
 * (`[prefix].reg-state.json`, outside the key space the plan lists): the keys the tree no longer has
 * and since when (`--prune-grace`), and the multipart uploads in flight (resumed, or aborted when old).
 */
export interface S3DeployState {
  /** whether the bucket holds shared copies under `_blobs/` after the last deploy (redirect mode, or copies left within the grace): they are listed then; undefined: not known */
  sharedBlobs?: boolean
  unreferenced: Map<string, number>
  uploads: Map<string, PendingUpload>
}

export const S3_STATE_KEY = '.reg-state.json'

function isPendingUpload(value: unknown): value is Omit<PendingUpload, 'started'> & {started: string} {
  const v = value as Record<string, unknown>
  return typeof value === 'object' && value !== null && typeof v.uploadId === 'string' && v.uploadId.length > 0 && v.uploadId.length <= 1024
    && typeof v.digest === 'string' && /^sha256:[a-f0-9]{64}$/.test(v.digest) && Number.isSafeInteger(v.size) && Number.isSafeInteger(v.partSize) && (v.partSize as number) > 0
    && typeof v.started === 'string' && Number.isFinite(Date.parse(v.started))
}

/** The state object's bytes, checked: a damaged one is refused with what to do. */
export function parseS3DeployState(text: string, where: string): S3DeployState {
  let raw: {sharedBlobs?: unknown; unreferenced?: unknown; uploads?: unknown}
  try {
    raw = JSON.parse(text) as typeof raw
  } catch {
    throw new RegError(`${where} is corrupt (not valid JSON)`, 'delete it: the next deploy counts the prune grace from then, and uploads in parts start afresh')
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new RegError(`${where} is corrupt (not a JSON object)`, 'delete it: the next deploy counts the prune grace from then')
  const uploads = new Map<string, PendingUpload>()
  if (typeof raw.uploads === 'object' && raw.uploads !== null) {
    for (const [key, value] of Object.entries(raw.uploads)) {
      if (isPendingUpload(value)) uploads.set(key, {uploadId: value.uploadId, digest: value.digest, size: value.size, partSize: value.partSize, started: Date.parse(value.started)})
    }
  }
  return {...(typeof raw.sharedBlobs === 'boolean' ? {sharedBlobs: raw.sharedBlobs} : {}), unreferenced: parseUnreferenced(raw.unreferenced), uploads}
}

export function serializeS3DeployState(state: S3DeployState): string {
  const sorted = <T>(map: Map<string, T>) => [...map].sort(([a], [b]) => (a < b ? -1 : 1))
  return JSON.stringify({
    ...(state.sharedBlobs === undefined ? {} : {sharedBlobs: state.sharedBlobs}),
    unreferenced: Object.fromEntries(sorted(state.unreferenced).map(([key, since]) => [key, new Date(since).toISOString()])),
    uploads: Object.fromEntries(sorted(state.uploads).map(([key, upload]) => [key, {...upload, started: new Date(upload.started).toISOString()}])),
  })
}

/** The state of the bucket, or an empty one when there is none yet. */
export async function readS3DeployState(client: S3Client, bucket: string, key: string, signal?: AbortSignal): Promise<S3DeployState> {
  let body: Readable
  try {
    const object = await client.send(new GetObjectCommand({Bucket: bucket, Key: key}), {abortSignal: signal})
    body = object.Body as Readable
  } catch (error) {
    if ((error as Error).name === 'NoSuchKey' || (error as {$metadata?: {httpStatusCode?: number}}).$metadata?.httpStatusCode === 404) return {unreferenced: new Map(), uploads: new Map()}
    throw error
  }
  try {
    return parseS3DeployState((await readBounded(body, MAX_DEPLOY_STATE_BYTES, `s3://${bucket}/${key}`)).toString('utf8'), `s3://${bucket}/${key}`)
  } catch (error) {
    if (error instanceof TooLargeError) throw new RegError(`s3://${bucket}/${key} is larger than ${MAX_DEPLOY_STATE_BYTES} bytes`, 'delete it: the next deploy counts the prune grace from then')
    throw error
  }
}

export async function writeS3DeployState(client: S3Client, bucket: string, key: string, state: S3DeployState, signal?: AbortSignal): Promise<void> {
  // Not public: it names keys in flight; no-store, should a bucket policy make it readable anyway.
  await client.send(new PutObjectCommand({Bucket: bucket, Key: key, Body: serializeS3DeployState(state), ContentType: 'application/json', CacheControl: 'no-store'}), {abortSignal: signal})
}
