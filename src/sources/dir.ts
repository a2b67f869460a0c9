import type {Readable} from 'node:stream'
import {digestHex, parseDigest, sha256} from '../core/digest.js'
import {RegError} from '../core/errors.js'
import type {ImageSource, SourceRoot} from '../core/image-source.js'
import {MAX_MANIFEST_BYTES} from '../core/limits.js'
import type {Descriptor} from '../core/manifest.js'
import {parseManifest} from '../core/manifest.js'
import {parseJsonQuietly} from './oci-layout.js'
import {DirectoryFiles, requireDirectory} from './safe-path.js'

/**
 * skopeo's `dir:` transport: `manifest.json` (the top manifest), `version`, each blob as `<hex>`,
 * and, for a multi-arch copy (`skopeo copy --all`), each child manifest as `<hex>.manifest.json`.
 * It carries no name: the target comes from `=NAME:TAG`.
 */
export class DirSource implements ImageSource {
  private rootDigest?: string
  private readonly files: DirectoryFiles

  constructor(readonly description: string, private readonly root: string) {
    this.files = new DirectoryFiles(root)
  }

  async roots(): Promise<SourceRoot[]> {
    await requireDirectory(this.root, this.description)
    const raw = await this.files.read('manifest.json', MAX_MANIFEST_BYTES, `${this.description}: manifest.json`)
    if (!raw) throw new RegError(`${this.description}: ${this.root} has no manifest.json`, 'point dir: at a directory written by `skopeo copy ... dir:DIR`')
    if (parseJsonQuietly(raw) === undefined) throw new RegError(`${this.description} manifest.json: manifest is not valid JSON`, 'the directory is corrupt; copy the image again')
    const manifest = parseManifest(raw, `${this.description} manifest.json`)
    this.rootDigest = sha256(raw)
    return [{descriptor: {mediaType: manifest.mediaType, digest: this.rootDigest, size: raw.length}}]
  }

  private missing(relative: string, what: string): RegError {
    return new RegError(`${this.description}: ${what} is missing (${relative})`, 'the directory is incomplete; copy the image again')
  }

  async readManifest(descriptor: Descriptor): Promise<Buffer> {
    const relative = descriptor.digest === this.rootDigest ? 'manifest.json' : `${digestHex(parseDigest(descriptor.digest))}.manifest.json`
    const what = `manifest ${descriptor.digest}`
    const raw = await this.files.read(relative, MAX_MANIFEST_BYTES, `${this.description}: ${what}`)
    if (!raw) throw this.missing(relative, what)
    return raw
  }

  async openBlob(descriptor: Descriptor): Promise<Readable> {
    const relative = digestHex(parseDigest(descriptor.digest))
    const what = `blob ${descriptor.digest}`
    const stream = await this.files.open(relative, `${this.description}: ${what}`)
    if (!stream) throw this.missing(relative, what)
    return stream
  }

  async close(): Promise<void> {}
}
