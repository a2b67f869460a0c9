import {createReadStream} from 'node:fs'
import {readFile} from 'node:fs/promises'
import type {Readable} from 'node:stream'
import {digestHex} from '../core/digest.js'
import {errnoCode, RegError} from '../core/errors.js'
import type {ImageSource, SourceRoot} from '../core/image-source.js'
import type {Descriptor} from '../core/manifest.js'
import {parseManifest} from '../core/manifest.js'
import {parseReference, validateTag} from '../core/reference.js'
import {requireDirectory, resolveInside} from './safe-path.js'

const REF_NAME = 'org.opencontainers.image.ref.name'
const CONTAINERD_NAME = 'io.containerd.image.name'

/** Name and tag of an index.json entry: containerd's full name first, then ref.name (a tag, or a full reference). */
function entryName(descriptor: Descriptor): {name?: string; tag?: string; ref?: string} {
  const ref = descriptor.annotations?.[REF_NAME]
  const full = descriptor.annotations?.[CONTAINERD_NAME]
  if (full) {
    const parsed = parseReference(full)
    return {name: parsed.name, tag: parsed.tag ?? ref, ref}
  }
  if (!ref) return {}
  if (ref.includes('/') || (ref.includes(':') && !/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(ref))) {
    const parsed = parseReference(ref)
    return {name: parsed.name, tag: parsed.tag, ref}
  }
  return {tag: validateTag(ref), ref}
}

/** An OCI image layout directory (`oci:PATH[:REF]`). */
export class OciLayoutSource implements ImageSource {
  constructor(readonly description: string, private readonly root: string, private readonly ref?: string) {}

  private async readLayoutFile(name: string): Promise<Buffer> {
    try {
      return await readFile(`${this.root}/${name}`)
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') {
        throw new RegError(`${this.description}: ${this.root} is not an OCI image layout (no ${name})`, 'point oci: at a directory written by `skopeo copy ... oci:DIR` or `umoci`')
      }
      throw error
    }
  }

  async roots(): Promise<SourceRoot[]> {
    await requireDirectory(this.root, this.description)
    const layout = await this.readLayoutFile('oci-layout')
    try {
      const version = (JSON.parse(layout.toString()) as {imageLayoutVersion?: unknown}).imageLayoutVersion
      if (typeof version !== 'string') throw new Error('no imageLayoutVersion')
    } catch (error) {
      throw new RegError(`${this.description}: invalid oci-layout file (${(error as Error).message})`)
    }
    const index = parseManifest(await this.readLayoutFile('index.json'), `${this.description} index.json`)
    if (index.kind !== 'index') throw new RegError(`${this.description}: index.json is not an image index`)
    const entries = index.manifests.map((descriptor) => ({descriptor, ...entryName(descriptor)}))
    if (this.ref !== undefined) {
      const wanted = this.ref
      const matches = entries.filter((e) => e.ref === wanted || (e.name && `${e.name}:${e.tag}` === wanted))
      if (matches.length === 0) {
        const known = entries.map((e) => e.ref).filter(Boolean).join(', ') || 'none'
        throw new RegError(`${this.description}: no image tagged "${wanted}" in the layout`, `tags in this layout: ${known}`)
      }
      return matches.map(({descriptor, name, tag}) => ({descriptor, name, tag}))
    }
    const tagged = entries.filter((e) => e.tag !== undefined)
    if (tagged.length === 0) {
      throw new RegError(`${this.description}: the layout has no tagged images`, 'name one with oci:PATH=NAME:TAG or tag the entries (org.opencontainers.image.ref.name)')
    }
    return tagged.map(({descriptor, name, tag}) => ({descriptor, name, tag}))
  }

  private async blobPath(descriptor: Descriptor): Promise<string> {
    const file = await resolveInside(this.root, `blobs/sha256/${digestHex(descriptor.digest)}`, `${this.description}: blob ${descriptor.digest}`)
    if (!file) throw new RegError(`${this.description}: blob ${descriptor.digest} is missing from the layout`, 'the layout is incomplete; copy the image again')
    return file
  }

  async readManifest(descriptor: Descriptor): Promise<Buffer> {
    return readFile(await this.blobPath(descriptor))
  }

  async openBlob(descriptor: Descriptor): Promise<Readable> {
    return createReadStream(await this.blobPath(descriptor), {highWaterMark: 1 << 20})
  }

  async close(): Promise<void> {}
}
