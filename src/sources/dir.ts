import {createReadStream} from 'node:fs'
import {readFile} from 'node:fs/promises'
import type {Readable} from 'node:stream'
import {digestHex, sha256} from '../core/digest.js'
import {RegError} from '../core/errors.js'
import type {ImageSource, SourceRoot} from '../core/image-source.js'
import type {Descriptor} from '../core/manifest.js'
import {parseManifest} from '../core/manifest.js'
import {requireDirectory, resolveInside} from './safe-path.js'

/**
 * skopeo's `dir:` transport: `manifest.json` (the top manifest), `version`, each blob as `<hex>`,
 * and, for a multi-arch copy (`skopeo copy --all`), each child manifest as `<hex>.manifest.json`.
 * It carries no name: the target comes from `=NAME:TAG`.
 */
export class DirSource implements ImageSource {
  private rootDigest?: string

  constructor(readonly description: string, private readonly root: string) {}

  async roots(): Promise<SourceRoot[]> {
    await requireDirectory(this.root, this.description)
    const file = await resolveInside(this.root, 'manifest.json', `${this.description}: manifest.json`)
    if (!file) throw new RegError(`${this.description}: ${this.root} has no manifest.json`, 'point dir: at a directory written by `skopeo copy ... dir:DIR`')
    const raw = await readFile(file)
    const manifest = parseManifest(raw, `${this.description} manifest.json`)
    this.rootDigest = sha256(raw)
    return [{descriptor: {mediaType: manifest.mediaType, digest: this.rootDigest, size: raw.length}}]
  }

  private async file(relative: string, what: string): Promise<string> {
    const file = await resolveInside(this.root, relative, `${this.description}: ${what}`)
    if (!file) throw new RegError(`${this.description}: ${what} is missing (${relative})`, 'the directory is incomplete; copy the image again')
    return file
  }

  async readManifest(descriptor: Descriptor): Promise<Buffer> {
    const relative = descriptor.digest === this.rootDigest ? 'manifest.json' : `${digestHex(descriptor.digest)}.manifest.json`
    return readFile(await this.file(relative, `manifest ${descriptor.digest}`))
  }

  async openBlob(descriptor: Descriptor): Promise<Readable> {
    return createReadStream(await this.file(digestHex(descriptor.digest), `blob ${descriptor.digest}`), {highWaterMark: 1 << 20})
  }

  async close(): Promise<void> {}
}
