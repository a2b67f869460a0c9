import {readFile} from 'node:fs/promises'
import {mapLimit} from '../core/concurrency.js'
import {verifyBytes} from '../core/digest.js'
import {errnoCode, RegError} from '../core/errors.js'
import type {ImageSource} from '../core/image-source.js'
import {type Descriptor, parseManifest, type Platform} from '../core/manifest.js'
import {CONFIG_MEDIA_TYPES, isManifestMediaType} from '../core/media-types.js'
import type {BlobStore} from './blob-store.js'
import type {ManifestRecord, TreeIndex} from './model.js'

export interface IngestObserver {
  /** a blob is about to be copied */
  blobStart?(digest: string, size: number): void
  /** bytes copied so far, as they flow */
  bytes?(count: number): void
}

/**
 * Copy one manifest graph from a source into the store, verifying every byte against its
 * descriptor, and record it in the index. Blobs already in the store are not read again.
 */
export class GraphIngester {
  /** blobs being copied right now: two images sharing a layer copy it once */
  private readonly inFlight = new Map<string, Promise<void>>()
  bytesCopied = 0
  /** blobs the sources named that the store already had (not read again) */
  blobsAlreadyPresent = 0

  constructor(
    private readonly store: BlobStore,
    private readonly index: Pick<TreeIndex, 'manifests' | 'blobs'>,
    private readonly observer: IngestObserver = {},
    private readonly blobConcurrency = 4,
  ) {}

  async ingest(source: ImageSource, descriptor: Descriptor, label: string, platform?: Platform): Promise<ManifestRecord> {
    if (!isManifestMediaType(descriptor.mediaType)) {
      throw new RegError(`${label}: ${descriptor.digest} has media type ${descriptor.mediaType}, not a manifest`, 'reg serves OCI and Docker v2 images and indexes; Docker schema 1 and other types are not supported')
    }
    let raw: Buffer
    try {
      // A manifest already in the store was verified when it was written: a re-mirror asks the source for nothing.
      raw = (await this.store.has(descriptor.digest)) ? await readFile(this.store.pathOf(descriptor.digest)) : await source.readManifest(descriptor)
    } catch (error) {
      throw this.missing(error, label, `manifest ${descriptor.digest}`)
    }
    verifyBytes(raw, {digest: descriptor.digest, size: descriptor.size, label: `${label}: manifest ${descriptor.digest}`})
    const manifest = parseManifest(raw, `${label}: manifest ${descriptor.digest}`, descriptor.mediaType)
    const record: ManifestRecord = {
      mediaType: manifest.mediaType, size: raw.length, kind: manifest.kind, children: [], blobs: [],
      ...(platform ? {platform} : {}),
      ...(manifest.subject ? {subject: manifest.subject.digest} : {}),
      ...(manifest.artifactType ? {artifactType: manifest.artifactType} : {}),
    }
    if (manifest.kind === 'index') {
      for (const child of manifest.manifests) {
        await this.ingest(source, child, label, child.platform)
        record.children.push(child.digest)
      }
    } else {
      if (!record.artifactType && !CONFIG_MEDIA_TYPES.has(manifest.config.mediaType)) record.artifactType = manifest.config.mediaType
      const blobs = [manifest.config, ...manifest.layers]
      await mapLimit(blobs, this.blobConcurrency, (blob) => this.ingestBlob(source, blob, label))
      record.blobs = blobs.map((b) => b.digest)
      record.platform ??= await this.platformOf(manifest.config)
    }
    await this.store.writeBytes(raw)
    this.index.manifests[descriptor.digest] = record
    return record
  }

  private async ingestBlob(source: ImageSource, blob: Descriptor, label: string): Promise<void> {
    if (!this.inFlight.has(blob.digest)) {
      this.inFlight.set(blob.digest, (async () => {
        if (await this.store.has(blob.digest)) {
          this.blobsAlreadyPresent++
        } else {
          this.observer.blobStart?.(blob.digest, blob.size)
          let input
          try {
            input = await source.openBlob(blob)
          } catch (error) {
            throw this.missing(error, label, `blob ${blob.digest}`)
          }
          // Read the count first: `x += await …` would add to a stale value while other blobs copy concurrently.
          const copied = await this.store.ingest(input, {digest: blob.digest, size: blob.size, label: `${label}: blob ${blob.digest}`}, this.observer.bytes)
          this.bytesCopied += copied
        }
        this.index.blobs[blob.digest] = {size: blob.size, mediaType: blob.mediaType}
      })())
    }
    await this.inFlight.get(blob.digest)
  }

  private missing(error: unknown, label: string, what: string): Error {
    if (error instanceof RegError) return error
    if (errnoCode(error) === 'ENOENT') return new RegError(`${label}: ${what} is missing from the source`, 'the source is incomplete; export the image again')
    return error as Error
  }

  /** os/architecture from an image config, for `reg ls` and index-less images. */
  private async platformOf(config: Descriptor): Promise<Platform | undefined> {
    if (!CONFIG_MEDIA_TYPES.has(config.mediaType) || config.size > 4 * 1024 * 1024) return undefined
    try {
      const parsed = JSON.parse(await readFile(this.store.pathOf(config.digest), 'utf8')) as Partial<Platform>
      if (typeof parsed.os !== 'string' || typeof parsed.architecture !== 'string') return undefined
      return {os: parsed.os, architecture: parsed.architecture, ...(typeof parsed.variant === 'string' ? {variant: parsed.variant} : {})}
    } catch {
      return undefined
    }
  }
}
