import {createHash} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdir} from 'node:fs/promises'
import path from 'node:path'
import {PassThrough, Readable, Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {createGunzip, createGzip} from 'node:zlib'
import {digestHex, parseDigest, sha256, VerifyingStream} from '../core/digest.js'
import {RegError} from '../core/errors.js'
import type {ImageSource, SourceRoot} from '../core/image-source.js'
import {MAX_MANIFEST_BYTES} from '../core/limits.js'
import type {Descriptor} from '../core/manifest.js'
import {MediaType} from '../core/media-types.js'
import {parseReference} from '../core/reference.js'
import {type ArchiveFile, TarArchive} from './archive.js'
import {parseJsonQuietly} from './oci-layout.js'

interface ArchiveEntry {
  Config: string
  RepoTags?: string[] | null
  Layers: string[]
}

/** Fixed so a rebuild of the same archive gives the same layer digests (zlib's gzip header has no mtime or name). */
const GZIP_LEVEL = 6

/** One image of manifest.json, with what it names resolved in the archive. */
interface SelectedImage {
  position: number
  tags: Array<{name: string; tag: string}>
  config: ArchiveFile
  configName: string
  layers: Array<{file: ArchiveFile; name: string}>
}

/**
 * `docker save` / `skopeo copy ... docker-archive:` tarballs. They hold a config and uncompressed
 * layers but no registry manifest: we write an OCI image manifest whose layers are the archive's
 * layers gzip-compressed deterministically, and keep the config (the image ID) byte for byte.
 * Every layer is checked against the config's diff_ids while it is compressed.
 *
 * The archive is never unpacked: manifest.json and the configs are read into memory (bounded), and
 * each layer streams from the tar straight into its compression, in one read. Scratch space holds
 * only the compressed layers, so neither a gzip-compressed archive nor a gzip-compressed layer can
 * blow up on disk; a layer whose content is not its diff_id is refused once read.
 */
export class DockerArchiveSource implements ImageSource {
  private readonly blobs = new Map<string, {body?: Buffer; file?: string}>()
  private readonly manifests = new Map<string, Buffer>()
  private opened?: Promise<SourceRoot[]>

  constructor(readonly description: string, private readonly archive: string, private readonly workDir: string, private readonly ref?: string) {}

  roots(): Promise<SourceRoot[]> {
    this.opened ??= this.open()
    return this.opened
  }

  private file(archive: TarArchive, relative: unknown, what: string): ArchiveFile {
    if (typeof relative !== 'string') throw new RegError(`${this.description}: ${what} is not named in manifest.json`, 'the archive is corrupt; save the image again')
    const file = archive.fileAt(relative, what)
    if (!file) throw new RegError(`${this.description}: ${what} (${relative}) is missing from the archive`, 'the archive is incomplete; save the image again')
    return file
  }

  private async open(): Promise<SourceRoot[]> {
    const archive = await TarArchive.scan(this.archive, this.description)
    const raw = await archive.readFile('manifest.json', MAX_MANIFEST_BYTES, 'manifest.json')
    if (!raw) throw new RegError(`${this.description}: manifest.json (manifest.json) is missing from the archive`, 'the archive is incomplete; save the image again')
    const entries = parseJsonQuietly(raw) as ArchiveEntry[] | undefined
    if (!Array.isArray(entries)) throw new RegError(`${this.description}: manifest.json is not valid (not a JSON array)`, 'the archive is corrupt; save the image again')
    const wanted = this.ref === undefined ? undefined : parseReference(this.ref)
    const selected: SelectedImage[] = []
    for (const [position, entry] of entries.entries()) {
      if (typeof entry !== 'object' || entry === null || typeof entry.Config !== 'string' || !Array.isArray(entry.Layers)) throw new RegError(`${this.description}: manifest.json entry ${position} has no Config or Layers`)
      const tags = (Array.isArray(entry.RepoTags) ? entry.RepoTags : []).map((t) => parseReference(String(t)))
      const matching = wanted ? tags.filter((t) => t.name === wanted.name && (t.tag ?? 'latest') === (wanted.tag ?? 'latest')) : tags
      if (wanted && matching.length === 0) continue
      selected.push({
        position,
        tags: matching.map((t) => ({name: t.name, tag: t.tag ?? 'latest'})),
        config: this.file(archive, entry.Config, 'image config'),
        configName: entry.Config,
        layers: entry.Layers.map((name, i) => ({file: this.file(archive, name, `layer ${i}`), name: String(name)})),
      })
    }
    if (selected.length === 0) {
      const known = entries.flatMap((e) => (Array.isArray(e?.RepoTags) ? e.RepoTags : [])).join(', ') || 'none'
      throw new RegError(`${this.description}: no image ${this.ref ?? ''} in the archive`, `images in this archive: ${known}`)
    }
    await archive.load(selected.map((s) => s.config), MAX_MANIFEST_BYTES, 'image config')
    // Each layer file once, with the one diff_id every image listing it expects.
    const layerJobs = new Map<number, {file: ArchiveFile; name: string; diffId: string; descriptor?: Descriptor}>()
    for (const image of selected) {
      const diffIds = this.checkConfig(image)
      for (const [i, layer] of image.layers.entries()) {
        const job = layerJobs.get(layer.file.ordinal)
        if (job && job.diffId !== diffIds[i]) throw new RegError(`${this.description}: layer ${layer.name} is listed with two different diff_ids (${job.diffId}, ${diffIds[i]})`, 'the archive is corrupt; save the image again')
        if (!job) layerJobs.set(layer.file.ordinal, {file: layer.file, name: layer.name, diffId: diffIds[i]})
      }
    }
    await archive.each(new Map([...layerJobs].map(([ordinal, job]) => [ordinal, job.file])), async (file, stream) => {
      const job = layerJobs.get(file.ordinal)!
      job.descriptor = await this.compressLayer(stream, file, job.diffId, job.name)
    })
    const roots: SourceRoot[] = []
    for (const image of selected) {
      const layers = image.layers.map((l) => layerJobs.get(l.file.ordinal)!.descriptor!)
      const descriptor = this.writeManifest(image.config.body!, layers)
      if (image.tags.length === 0) roots.push({descriptor})
      for (const t of image.tags) roots.push({descriptor, name: t.name, tag: t.tag})
    }
    return roots
  }

  /** Check an image's config (its name is its digest, its diff_ids match the layers); its diff_ids. */
  private checkConfig(image: SelectedImage): string[] {
    const configBytes = image.config.body!
    const configDigest = sha256(configBytes)
    // The config's file name is its digest (the image ID) in every writer we know: check it.
    const named = /([a-f0-9]{64})(\.json)?$/.exec(image.configName)
    if (named && named[1] !== digestHex(configDigest)) {
      throw new RegError(`${this.description}: image config ${image.configName} does not match its digest: expected sha256:${named[1]}, got ${configDigest}`, 'the archive is corrupt; save the image again')
    }
    const config = parseJsonQuietly(configBytes) as {rootfs?: {diff_ids?: unknown}} | undefined
    if (typeof config !== 'object' || config === null) throw new RegError(`${this.description}: image config ${image.configName} is not valid JSON`)
    const listed = config.rootfs?.diff_ids ?? []
    if (!Array.isArray(listed)) throw new RegError(`${this.description}: image config ${image.configName} has no diff_ids list`)
    const diffIds = listed.map((d) => parseDigest(String(d), 'diff_id'))
    if (diffIds.length !== image.layers.length) {
      throw new RegError(`${this.description}: image config lists ${diffIds.length} layers but manifest.json lists ${image.layers.length}`)
    }
    return diffIds
  }

  private writeManifest(configBytes: Buffer, layers: Descriptor[]): Descriptor {
    const configDigest = sha256(configBytes)
    this.blobs.set(configDigest, {body: configBytes})
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: {mediaType: MediaType.OciConfig, digest: configDigest, size: configBytes.length},
      layers,
    }
    const raw = Buffer.from(JSON.stringify(manifest))
    const digest = sha256(raw)
    this.manifests.set(digest, raw)
    return {mediaType: MediaType.OciManifest, digest, size: raw.length}
  }

  /** Compress one layer as it streams out of the archive (gunzipped first if it is gzip), verifying its diff_id. */
  private async compressLayer(input: Readable, file: ArchiveFile, diffId: string, name: string): Promise<Descriptor> {
    const out = path.join(this.workDir, 'layers', `${file.ordinal}.tar.gz`)
    await mkdir(path.dirname(out), {recursive: true})
    const hash = createHash('sha256')
    let size = 0
    const measure = new Transform({
      transform(chunk: Buffer, _enc, callback) {
        hash.update(chunk)
        size += chunk.length
        callback(null, chunk)
      },
    })
    try {
      await pipeline(
        input,
        file.gzip ? createGunzip({chunkSize: 1 << 18}) : new PassThrough(),
        new VerifyingStream({digest: diffId, label: `${this.description}: layer ${name} (diff_id)`}),
        createGzip({level: GZIP_LEVEL}),
        measure,
        createWriteStream(out, {flags: 'wx'}),
      )
    } catch (error) {
      if (error instanceof RegError) throw error
      throw new RegError(`${this.description}: cannot read layer ${name}: ${(error as Error).message}`, 'the archive is truncated or corrupt; save the image again')
    }
    const digest = 'sha256:' + hash.digest('hex')
    this.blobs.set(digest, {file: out})
    return {mediaType: MediaType.OciLayerGzip, digest, size}
  }

  async readManifest(descriptor: Descriptor): Promise<Buffer> {
    await this.roots()
    const raw = this.manifests.get(descriptor.digest)
    if (!raw) throw new RegError(`${this.description}: unknown manifest ${descriptor.digest}`)
    return raw
  }

  async openBlob(descriptor: Descriptor): Promise<Readable> {
    await this.roots()
    const blob = this.blobs.get(descriptor.digest)
    if (!blob) throw new RegError(`${this.description}: blob ${descriptor.digest} is missing from the archive`)
    return blob.body ? Readable.from([blob.body]) : createReadStream(blob.file as string)
  }

  async close(): Promise<void> {}
}
