import {createHash} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdir, readFile} from 'node:fs/promises'
import path from 'node:path'
import {PassThrough, Transform, type Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {createGunzip, createGzip} from 'node:zlib'
import {digestHex, parseDigest, sha256, VerifyingStream} from '../core/digest.js'
import {RegError} from '../core/errors.js'
import type {ImageSource, SourceRoot} from '../core/image-source.js'
import type {Descriptor} from '../core/manifest.js'
import {MediaType} from '../core/media-types.js'
import {parseReference} from '../core/reference.js'
import {extractArchive, isGzipFile} from './archive.js'
import {resolveInside} from './safe-path.js'

interface ArchiveEntry {
  Config: string
  RepoTags?: string[] | null
  Layers: string[]
}

/** Fixed so a rebuild of the same archive gives the same layer digests (zlib's gzip header has no mtime or name). */
const GZIP_LEVEL = 6

/**
 * `docker save` / `skopeo copy ... docker-archive:` tarballs. They hold a config and uncompressed
 * layers but no registry manifest: we write an OCI image manifest whose layers are the archive's
 * layers gzip-compressed deterministically, and keep the config (the image ID) byte for byte.
 * Every layer is checked against the config's diff_ids while it is compressed.
 */
export class DockerArchiveSource implements ImageSource {
  private readonly files = new Map<string, string>()
  private readonly manifests = new Map<string, Buffer>()
  private extracted?: string

  /** `extracted`: the archive's contents already unpacked there (a daemon's export), instead of `archive` */
  constructor(readonly description: string, private readonly archive: string, private readonly workDir: string, private readonly ref?: string, extracted?: string) {
    this.extracted = extracted
  }

  private async extract(): Promise<string> {
    if (!this.extracted) {
      const dir = path.join(this.workDir, 'docker-archive')
      await extractArchive(this.archive, dir, this.description)
      this.extracted = dir
    }
    return this.extracted
  }

  private async file(root: string, relative: string, what: string): Promise<string> {
    const file = await resolveInside(root, relative, `${this.description}: ${what}`)
    if (!file) throw new RegError(`${this.description}: ${what} (${relative}) is missing from the archive`, 'the archive is incomplete; save the image again')
    return file
  }

  async roots(): Promise<SourceRoot[]> {
    const root = await this.extract()
    let entries: ArchiveEntry[]
    try {
      entries = JSON.parse(await readFile(await this.file(root, 'manifest.json', 'manifest.json'), 'utf8')) as ArchiveEntry[]
      if (!Array.isArray(entries)) throw new Error('not an array')
    } catch (error) {
      if (error instanceof RegError) throw error
      throw new RegError(`${this.description}: manifest.json is not valid (${(error as Error).message})`, 'the archive is corrupt; save the image again')
    }
    const wanted = this.ref === undefined ? undefined : parseReference(this.ref)
    const roots: SourceRoot[] = []
    const layerCache = new Map<string, Descriptor>()
    for (const [i, entry] of entries.entries()) {
      const tags = (entry.RepoTags ?? []).map((t) => parseReference(t))
      const matching = wanted ? tags.filter((t) => t.name === wanted.name && (t.tag ?? 'latest') === (wanted.tag ?? 'latest')) : tags
      if (wanted && matching.length === 0) continue
      const descriptor = await this.writeManifest(root, entry, i, layerCache)
      if (matching.length === 0) roots.push({descriptor})
      for (const t of matching) roots.push({descriptor, name: t.name, tag: t.tag ?? 'latest'})
    }
    if (roots.length === 0) {
      const known = entries.flatMap((e) => e.RepoTags ?? []).join(', ') || 'none'
      throw new RegError(`${this.description}: no image ${this.ref ?? ''} in the archive`, `images in this archive: ${known}`)
    }
    return roots
  }

  private async writeManifest(root: string, entry: ArchiveEntry, position: number, layerCache: Map<string, Descriptor>): Promise<Descriptor> {
    if (typeof entry.Config !== 'string' || !Array.isArray(entry.Layers)) throw new RegError(`${this.description}: manifest.json entry ${position} has no Config or Layers`)
    const configFile = await this.file(root, entry.Config, 'image config')
    const configBytes = await readFile(configFile)
    const configDigest = sha256(configBytes)
    // The config's file name is its digest (the image ID) in every writer we know: check it.
    const named = /([a-f0-9]{64})(\.json)?$/.exec(entry.Config)
    if (named && named[1] !== digestHex(configDigest)) {
      throw new RegError(`${this.description}: image config ${entry.Config} does not match its digest: expected sha256:${named[1]}, got ${configDigest}`, 'the archive is corrupt; save the image again')
    }
    let diffIds: string[]
    try {
      const config = JSON.parse(configBytes.toString('utf8')) as {rootfs?: {diff_ids?: string[]}}
      diffIds = (config.rootfs?.diff_ids ?? []).map((d) => parseDigest(d, 'diff_id'))
    } catch (error) {
      if (error instanceof RegError) throw error
      throw new RegError(`${this.description}: image config ${entry.Config} is not valid JSON`)
    }
    if (diffIds.length !== entry.Layers.length) {
      throw new RegError(`${this.description}: image config lists ${diffIds.length} layers but manifest.json lists ${entry.Layers.length}`)
    }
    const layers: Descriptor[] = []
    for (const [i, layerPath] of entry.Layers.entries()) {
      const cached = layerCache.get(layerPath)
      const layer = cached ?? await this.compressLayer(await this.file(root, layerPath, `layer ${i}`), diffIds[i], layerPath)
      layerCache.set(layerPath, layer)
      layers.push(layer)
    }
    this.files.set(configDigest, configFile)
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

  private async compressLayer(file: string, diffId: string, name: string): Promise<Descriptor> {
    const out = path.join(this.workDir, 'layers', `${digestHex(diffId)}.tar.gz`)
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
    const uncompressed = (await isGzipFile(file)) ? createGunzip() : new PassThrough()
    try {
      await pipeline(
        createReadStream(file),
        uncompressed,
        new VerifyingStream({digest: diffId, label: `${this.description}: layer ${name} (diff_id)`}),
        createGzip({level: GZIP_LEVEL}),
        measure,
        createWriteStream(out),
      )
    } catch (error) {
      if (error instanceof RegError) throw error
      throw new RegError(`${this.description}: cannot read layer ${name}: ${(error as Error).message}`, 'the archive is truncated or corrupt; save the image again')
    }
    const digest = 'sha256:' + hash.digest('hex')
    this.files.set(digest, out)
    return {mediaType: MediaType.OciLayerGzip, digest, size}
  }

  async readManifest(descriptor: Descriptor): Promise<Buffer> {
    const raw = this.manifests.get(descriptor.digest)
    if (!raw) throw new RegError(`${this.description}: unknown manifest ${descriptor.digest}`)
    return raw
  }

  async openBlob(descriptor: Descriptor): Promise<Readable> {
    const file = this.files.get(descriptor.digest)
    if (!file) throw new RegError(`${this.description}: blob ${descriptor.digest} is missing from the archive`)
    return createReadStream(file)
  }

  async close(): Promise<void> {}
}
