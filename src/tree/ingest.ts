import type {FileHandle} from 'node:fs/promises'
import type {Readable} from 'node:stream'
import {mapLimit} from '../core/concurrency.js'
import {DigestMismatchError, verifyBytes} from '../core/digest.js'
import {errnoCode, RegError} from '../core/errors.js'
import {MAX_GRAPH_NODES, MAX_MANIFEST_BYTES, readBounded, readFileBounded, TooLargeError} from '../core/limits.js'
import type {ImageSource} from '../core/image-source.js'
import {type Descriptor, parseManifest, parsePlatform, type Platform} from '../core/manifest.js'
import {CONFIG_MEDIA_TYPES, isManifestMediaType} from '../core/media-types.js'
import type {BlobStore} from './blob-store.js'
import type {ManifestRecord, TreeIndex} from './model.js'

export interface IngestObserver {
  /** a blob is about to be copied */
  blobStart?(digest: string, size: number): void
  /** bytes copied so far, as they flow */
  bytes?(count: number): void
}

/** One walk of a graph from its root: what it reads from, what it is called, what it has reached. */
interface GraphWalk {
  source: ImageSource
  label: string
  nodes: Set<string>
}

/**
 * Image configs up to this size are read whole while they are copied (verified in memory, stored
 * from memory), so their platform is known without reading the stored file again; larger ones stream.
 */
const CONFIG_HELD_BYTES = 64 * 1024
/** blobs one ingester copies at a time, over all the graphs it walks */
const BLOBS_COPYING = 16

/** At most `count` holders at a time; the others wait in turn. */
class Slots {
  private readonly waiting: Array<() => void> = []

  constructor(private free: number) {}

  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--
      return
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve))
  }

  release(): void {
    const next = this.waiting.shift()
    if (next) next()
    else this.free++
  }
}

/**
 * Copy one manifest graph from a source into the store, verifying every byte against its
 * descriptor, and record it in the index. Blobs already in the store are not read again.
 */
export class GraphIngester {
  /** blobs copied or being copied: two images sharing a layer copy it once; a config's platform when it was read while copied */
  private readonly inFlight = new Map<string, Promise<Platform | undefined>>()
  /** manifests visited or being visited, by digest */
  private readonly manifestVisits = new Map<string, Promise<ManifestRecord>>()
  private readonly copySlots = new Slots(BLOBS_COPYING)
  /** graphs taken whole from the store by reuseStored, by manifest digest */
  private readonly reused = new Set<string>()
  bytesCopied = 0
  /** blobs the sources named that the store already had (not read again) */
  blobsAlreadyPresent = 0

  constructor(
    private readonly store: BlobStore,
    private readonly index: Pick<TreeIndex, 'manifests' | 'blobs'>,
    private readonly observer: IngestObserver = {},
    private readonly blobConcurrency = 4,
  ) {}

  /**
   * Ingest the graph under `descriptor`. Each digest is visited once per ingester, however often
   * and however deep it is listed (an index naming one child N times, L deep, is N·L work, not
   * N^L), and one graph reaches at most MAX_GRAPH_NODES distinct manifests and blobs.
   */
  async ingest(source: ImageSource, descriptor: Descriptor, label: string, platform?: Platform): Promise<ManifestRecord> {
    return this.visitManifest({source, label, nodes: new Set()}, descriptor, platform)
  }

  /**
   * Take the graph under `digest` as an earlier build recorded it in the index, without reading it
   * again, when the store holds every manifest and blob of it (files get their digest name only once
   * verified). Undefined when a part is missing, when it is a referrer (walked again: its record
   * carries what its source says), or when it is larger than a graph may be: then `ingest` it.
   * Only for stores that know their contents without a stat (private stores).
   */
  reuseStored(digest: string): ManifestRecord | undefined {
    // Tags naming one image: its graph is checked once.
    if (this.reused.has(digest)) return this.index.manifests[digest]
    const manifests: string[] = []
    const blobs = new Set<string>()
    const seen = new Set<string>()
    const pending = [digest]
    while (pending.length > 0) {
      const next = pending.pop()!
      if (seen.has(next)) continue
      seen.add(next)
      const record = this.index.manifests[next]
      if (!record || record.subject !== undefined || this.store.holds(next) !== true) return undefined
      manifests.push(next)
      for (const blob of record.blobs) {
        if (!(blob in this.index.blobs) || this.store.holds(blob) !== true) return undefined
        if (!seen.has(blob)) {
          seen.add(blob)
          blobs.add(blob)
        }
      }
      pending.push(...record.children)
      if (seen.size > MAX_GRAPH_NODES) return undefined
    }
    for (const manifest of manifests) {
      this.reused.add(manifest)
      if (!this.manifestVisits.has(manifest)) this.manifestVisits.set(manifest, Promise.resolve(this.index.manifests[manifest]))
    }
    for (const blob of blobs) {
      if (this.inFlight.has(blob)) continue
      this.blobsAlreadyPresent++
      this.inFlight.set(blob, Promise.resolve(undefined))
    }
    return this.index.manifests[digest]
  }

  private count(walk: GraphWalk, digest: string): void {
    walk.nodes.add(digest)
    if (walk.nodes.size > MAX_GRAPH_NODES) {
      throw new RegError(`${walk.label}: the image graph reaches more than ${MAX_GRAPH_NODES} manifests and blobs`, 'the source is malicious or corrupt; reg refuses graphs this large', 'GRAPH_TOO_LARGE')
    }
  }

  private visitManifest(walk: GraphWalk, descriptor: Descriptor, platform?: Platform): Promise<ManifestRecord> {
    this.count(walk, descriptor.digest)
    let visit = this.manifestVisits.get(descriptor.digest)
    if (!visit) {
      visit = this.ingestManifest(walk, descriptor, platform)
      this.manifestVisits.set(descriptor.digest, visit)
      // A failed visit is not remembered: the build stops, and a server's next push may try again.
      visit.catch(() => this.manifestVisits.delete(descriptor.digest))
    }
    return visit
  }

  private async ingestManifest(walk: GraphWalk, descriptor: Descriptor, platform?: Platform): Promise<ManifestRecord> {
    const {source, label} = walk
    if (!isManifestMediaType(descriptor.mediaType)) {
      throw new RegError(`${label}: ${descriptor.digest} has media type ${descriptor.mediaType}, not a manifest`, 'reg serves OCI and Docker v2 images and indexes; Docker schema 1 and other types are not supported')
    }
    // Refused before a byte is read: whatever the descriptor points at, a manifest is a small document.
    if (descriptor.size > MAX_MANIFEST_BYTES) throw new TooLargeError(`${label}: manifest ${descriptor.digest}`, MAX_MANIFEST_BYTES)
    let raw: Buffer
    try {
      // A manifest already in the store was verified when it was written: a re-mirror asks the source for nothing.
      raw = (await this.store.has(descriptor.digest))
        ? await readFileBounded(this.store.pathOf(descriptor.digest), MAX_MANIFEST_BYTES, `${label}: manifest ${descriptor.digest}`)
        : await source.readManifest(descriptor)
    } catch (error) {
      throw this.missing(error, label, `manifest ${descriptor.digest}`)
    }
    verifyBytes(raw, {digest: descriptor.digest, size: descriptor.size, label: `${label}: manifest ${descriptor.digest}`})
    const manifest = parseManifest(raw, `${label}: manifest ${descriptor.digest}`, descriptor.mediaType)
    const record: ManifestRecord = {
      mediaType: manifest.mediaType, size: raw.length, kind: manifest.kind, children: [], blobs: [],
      ...(platform ? {platform} : {}),
    }
    if (manifest.subject) {
      // What the referrers API lists of a referrer (kept only for referrers: the index stays small).
      const artifactType = manifest.artifactType ?? (manifest.kind === 'image' ? manifest.config.mediaType : undefined)
      Object.assign(record, {subject: manifest.subject.digest}, artifactType ? {artifactType} : {}, manifest.annotations ? {annotations: manifest.annotations} : {})
    }
    if (manifest.kind === 'index') {
      const children = new Set<string>()
      for (const child of manifest.manifests) {
        await this.visitManifest(walk, child, child.platform)
        children.add(child.digest)
      }
      record.children = [...children]
    } else {
      const blobs = [manifest.config, ...manifest.layers]
      for (const blob of blobs) this.count(walk, blob.digest)
      const [configPlatform] = await mapLimit(blobs, this.blobConcurrency, (blob, i) => this.ingestBlob(source, blob, label, i === 0))
      record.blobs = [...new Set(blobs.map((b) => b.digest))]
      record.platform ??= configPlatform ?? await this.platformOf(manifest.config)
    }
    await this.store.writeBytes(raw)
    this.index.manifests[descriptor.digest] = record
    return record
  }

  /** Copy a blob unless stored; for the `config` of an image, the platform when the copy read it anyway. */
  private async ingestBlob(source: ImageSource, blob: Descriptor, label: string, config: boolean): Promise<Platform | undefined> {
    if (!this.inFlight.has(blob.digest)) {
      this.inFlight.set(blob.digest, (async () => {
        const stored = await this.store.sizeOf(blob.digest)
        let platform: Platform | undefined
        if (stored !== undefined) {
          this.blobsAlreadyPresent++
        } else {
          this.observer.blobStart?.(blob.digest, blob.size)
          // However many images are walked at once, so many blobs are open and copying (each holds a
          // file and a few chunks of up to 1 MiB: read ahead, being hashed, two being written; one thread
          // hashes them all anyway).
          await this.copySlots.acquire()
          try {
            platform = await this.copyBlob(source, blob, label, config)
          } finally {
            this.copySlots.release()
          }
        }
        // What the store holds is what the blob is: the first size recorded is the stored file's.
        this.index.blobs[blob.digest] = {size: stored ?? blob.size, mediaType: blob.mediaType}
        return platform
      })())
      this.inFlight.get(blob.digest)!.catch(() => this.inFlight.delete(blob.digest))
    }
    const platform = await this.inFlight.get(blob.digest)
    // Every descriptor of a blob, not only the first, must agree with the bytes stored under its digest.
    const size = this.index.blobs[blob.digest].size
    if (size !== blob.size) {
      throw new RegError(`${label}: blob ${blob.digest} is listed with size ${blob.size}, but the stored blob has ${size} bytes`, 'the manifest is malicious or corrupt: a descriptor cannot change what a stored blob is', 'SIZE_INVALID')
    }
    return config ? platform : undefined
  }

  /** Copy a blob the store does not have; for a small config, its platform (read on the way). */
  private async copyBlob(source: ImageSource, blob: Descriptor, label: string, config: boolean): Promise<Platform | undefined> {
    const check = {digest: blob.digest, size: blob.size, label: `${label}: blob ${blob.digest}`}
    const held = config && CONFIG_MEDIA_TYPES.has(blob.mediaType) && blob.size <= CONFIG_HELD_BYTES
    let file: FileHandle | undefined
    let input: Readable | undefined
    try {
      // A blob that is a file is read by the store itself; other sources give a stream.
      if (!held) file = await source.openBlobFile?.(blob)
      if (!file) input = await source.openBlob(blob)
    } catch (error) {
      throw this.missing(error, label, `blob ${blob.digest}`)
    }
    if (file) {
      try {
        // Read the count first: `x += await …` would add to a stale value while other blobs copy concurrently.
        const copied = await this.store.ingestFile(file, check, this.observer.bytes)
        this.bytesCopied += copied
      } finally {
        await file.close()
      }
      return undefined
    }
    if (held) {
      // A small config is held while it is copied: its platform is read from memory, not from the store again.
      const raw = await readBounded(input!, blob.size, check.label).catch((error: unknown) => {
        if (error instanceof TooLargeError) throw new DigestMismatchError(check, 'sha256:(more bytes than the descriptor says)', blob.size + 1)
        throw error
      })
      verifyBytes(raw, check)
      await this.store.writeBytes(raw)
      this.observer.bytes?.(raw.length)
      this.bytesCopied += raw.length
      return platformOfConfig(raw)
    }
    const copied = await this.store.ingest(input!, check, this.observer.bytes)
    this.bytesCopied += copied
    return undefined
  }

  private missing(error: unknown, label: string, what: string): Error {
    if (error instanceof RegError) return error
    if (errnoCode(error) === 'ENOENT') return new RegError(`${label}: ${what} is missing from the source`, 'the source is incomplete; export the image again')
    return error as Error
  }

  /** os/architecture from an image config, for `reg ls` and index-less images. */
  private async platformOf(config: Descriptor): Promise<Platform | undefined> {
    if (!CONFIG_MEDIA_TYPES.has(config.mediaType) || config.size > MAX_MANIFEST_BYTES) return undefined
    try {
      return platformOfConfig(await readFileBounded(this.store.pathOf(config.digest), MAX_MANIFEST_BYTES, 'image config'))
    } catch {
      return undefined
    }
  }
}

function platformOfConfig(raw: Buffer): Platform | undefined {
  try {
    return parsePlatform(JSON.parse(raw.toString('utf8')) as Partial<Platform>)
  } catch {
    return undefined
  }
}
