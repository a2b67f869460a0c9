import {createReadStream} from 'node:fs'
import path from 'node:path'
import {Readable} from 'node:stream'
import {verifyBytes} from '../core/digest.js'
import {RegError} from '../core/errors.js'
import type {ImageSource, SourceRoot} from '../core/image-source.js'
import {MAX_GRAPH_NODES, MAX_MANIFEST_BYTES} from '../core/limits.js'
import {type Descriptor, parseManifest} from '../core/manifest.js'
import {isManifestMediaType} from '../core/media-types.js'
import {type ArchiveFile, TarArchive} from './archive.js'
import {OciLayoutSource, parseJsonQuietly} from './oci-layout.js'
import type {SourceFiles} from './safe-path.js'

/** An archive's namespace as the files of an OCI layout: for its small files (oci-layout, index.json). */
class ArchiveFiles implements SourceFiles {
  constructor(private readonly archive: TarArchive) {}

  get where(): string {
    return this.archive.file
  }

  read(relative: string, limit: number, what: string): Promise<Buffer | undefined> {
    return this.archive.readFile(relative, limit, what)
  }

  async open(relative: string, what: string): Promise<Readable | undefined> {
    const body = await this.read(relative, MAX_MANIFEST_BYTES, what)
    return body && Readable.from([body])
  }
}

/**
 * `oci-archive:FILE[:REF]`: a tar of an OCI layout. It is never unpacked as it is: its index.json
 * and the manifests the selected images reach are read from the tar into memory, then only the blobs
 * those manifests reference are copied to scratch space, each refused unless its size is the one its
 * descriptor declares. So a build costs no more disk than the images it publishes, whatever else
 * the archive holds (a gzip bomb among them).
 */
export class OciArchiveSource implements ImageSource {
  private opened?: Promise<SourceRoot[]>
  /** manifests and blobs of the selected images, by digest: their bytes, or the scratch file holding them */
  private readonly contents = new Map<string, {body?: Buffer; file?: string}>()

  constructor(readonly description: string, private readonly archive: string, private readonly workDir: string, private readonly ref?: string) {}

  roots(): Promise<SourceRoot[]> {
    this.opened ??= this.open()
    return this.opened
  }

  private async open(): Promise<SourceRoot[]> {
    const archive = await TarArchive.scan(this.archive, this.description)
    const roots = await new OciLayoutSource(this.description, new ArchiveFiles(archive), this.ref).roots()
    const blobs = await this.walk(archive, roots.map((r) => r.descriptor))
    const toExtract: ArchiveFile[] = []
    for (const [digest, file] of blobs) {
      if (file.body) this.contents.set(digest, {body: file.body})
      else toExtract.push(file)
    }
    const paths = await archive.extract(toExtract, path.join(this.workDir, 'oci-archive'))
    for (const [digest, file] of blobs) if (!file.body) this.contents.set(digest, {file: paths.get(file.ordinal)})
    return roots
  }

  /** The archive file holding `descriptor`'s blob, refused unless it has the declared size; undefined when missing. */
  private fileOf(archive: TarArchive, descriptor: Descriptor): ArchiveFile | undefined {
    const file = archive.fileAt(OciLayoutSource.blobPath(descriptor), `blob ${descriptor.digest}`)
    if (file && file.size !== descriptor.size) {
      throw new RegError(
        `${this.description}: blob ${descriptor.digest} is ${file.size} bytes in the archive but its descriptor says ${descriptor.size}`,
        'the archive is corrupt or malicious; reg copies no more than the manifests declare',
      )
    }
    return file
  }

  /**
   * Walk the manifests from the roots, level by level (one read of the archive per level for what the
   * first read did not keep), each digest once: the blobs they reference, by digest.
   */
  private async walk(archive: TarArchive, roots: Descriptor[]): Promise<Map<string, ArchiveFile>> {
    const seen = new Set<string>()
    const blobs = new Map<string, ArchiveFile>()
    let frontier = roots.filter((d) => isManifestMediaType(d.mediaType)).map((descriptor) => ({descriptor, manifest: true}))
    while (frontier.length > 0) {
      const level: Array<{descriptor: Descriptor; file: ArchiveFile}> = []
      for (const {descriptor, manifest} of frontier) {
        if (seen.has(descriptor.digest)) continue
        seen.add(descriptor.digest)
        if (seen.size > MAX_GRAPH_NODES) throw new RegError(`${this.description}: the images reach more than ${MAX_GRAPH_NODES} manifests and blobs`, 'select one image with oci-archive:FILE:REF')
        // A missing one is left to the copy, which reports it.
        const file = this.fileOf(archive, descriptor)
        if (!file) continue
        if (manifest) level.push({descriptor, file})
        else blobs.set(descriptor.digest, file)
      }
      await archive.load(level.map((l) => l.file), MAX_MANIFEST_BYTES, 'manifest')
      frontier = []
      for (const {descriptor, file} of level) {
        const raw = file.body as Buffer
        const label = `${this.description}: manifest ${descriptor.digest}`
        verifyBytes(raw, {digest: descriptor.digest, size: descriptor.size, label})
        this.contents.set(descriptor.digest, {body: raw})
        if (parseJsonQuietly(raw) === undefined) throw new RegError(`${label}: manifest is not valid JSON`, 'the archive is corrupt; export the image again')
        const parsed = parseManifest(raw, label, descriptor.mediaType)
        if (parsed.kind === 'index') {
          frontier.push(...parsed.manifests.filter((d) => isManifestMediaType(d.mediaType)).map((d) => ({descriptor: d, manifest: true})))
        } else {
          frontier.push(...[parsed.config, ...parsed.layers].map((d) => ({descriptor: d, manifest: false})))
        }
      }
    }
    return blobs
  }

  private content(descriptor: Descriptor, what: string): {body?: Buffer; file?: string} {
    const found = this.contents.get(descriptor.digest)
    if (!found?.body && !found?.file) throw new RegError(`${this.description}: ${what} ${descriptor.digest} is missing from the archive`, 'the archive is incomplete; export the image again')
    return found
  }

  async readManifest(descriptor: Descriptor): Promise<Buffer> {
    await this.roots()
    return this.content(descriptor, 'manifest').body ?? Buffer.alloc(0)
  }

  async openBlob(descriptor: Descriptor): Promise<Readable> {
    await this.roots()
    const {body, file} = this.content(descriptor, 'blob')
    return body ? Readable.from([body]) : createReadStream(file as string, {highWaterMark: 1 << 20})
  }

  async close(): Promise<void> {}
}
