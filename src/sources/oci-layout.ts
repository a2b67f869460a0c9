import type {FileHandle} from 'node:fs/promises'
import type {Readable} from 'node:stream'
import {digestHex, parseDigest} from '../core/digest.js'
import {RegError} from '../core/errors.js'
import type {ImageSource, SourceRoot} from '../core/image-source.js'
import type {Descriptor} from '../core/manifest.js'
import {parseManifest} from '../core/manifest.js'
import {MAX_MANIFEST_BYTES} from '../core/limits.js'
import {parseReference, validateTag} from '../core/reference.js'
import {DirectoryFiles, requireDirectory, type SourceFiles} from './safe-path.js'

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

/** Parse JSON without echoing it: JSON.parse's messages quote the input, and the input may be anything. */
export function parseJsonQuietly(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString('utf8'))
  } catch {
    return undefined
  }
}

/**
 * An OCI image layout (`oci:PATH[:REF]`): a directory, or (for `oci-archive:`) the namespace of an
 * archive. Every file is read through `files`, which never follows a link out of the source.
 */
export class OciLayoutSource implements ImageSource {
  private readonly files: SourceFiles

  constructor(readonly description: string, root: string | SourceFiles, private readonly ref?: string) {
    this.files = typeof root === 'string' ? new DirectoryFiles(root) : root
  }

  private async readLayoutFile(name: string): Promise<Buffer> {
    const raw = await this.files.read(name, MAX_MANIFEST_BYTES, `${this.description}: ${name}`)
    if (!raw) {
      throw new RegError(`${this.description}: ${this.files.where} is not an OCI image layout (no ${name})`, 'point oci: at a directory written by `skopeo copy ... oci:DIR` or `umoci`')
    }
    return raw
  }

  async roots(): Promise<SourceRoot[]> {
    if (this.files instanceof DirectoryFiles) await requireDirectory(this.files.where, this.description)
    const layout = parseJsonQuietly(await this.readLayoutFile('oci-layout')) as {imageLayoutVersion?: unknown} | undefined
    if (typeof layout?.imageLayoutVersion !== 'string') throw new RegError(`${this.description}: invalid oci-layout file (not JSON with an imageLayoutVersion)`)
    const indexBytes = await this.readLayoutFile('index.json')
    let index
    try {
      // Parsed once (it may be megabytes): parseManifest refuses bytes that are not JSON, with the layout's own hint here.
      index = parseManifest(indexBytes, `${this.description} index.json`)
    } catch (error) {
      if (error instanceof RegError && error.message === `${this.description} index.json: manifest is not valid JSON`) throw new RegError(error.message, 'the layout is corrupt; copy the image again')
      throw error
    }
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

  /** Where a blob lives in any OCI layout. */
  static blobPath(descriptor: Descriptor): string {
    return `blobs/sha256/${digestHex(parseDigest(descriptor.digest))}`
  }

  private missing(descriptor: Descriptor): RegError {
    return new RegError(`${this.description}: blob ${descriptor.digest} is missing from the layout`, 'the layout is incomplete; copy the image again')
  }

  async readManifest(descriptor: Descriptor): Promise<Buffer> {
    const raw = await this.files.read(OciLayoutSource.blobPath(descriptor), MAX_MANIFEST_BYTES, `${this.description}: manifest ${descriptor.digest}`)
    if (!raw) throw this.missing(descriptor)
    return raw
  }

  /**
   * The blob as an open file, for the store to read with buffers of its own, when `files` can open
   * files (`openHandle`: a directory's, opened the way `open` does); undefined otherwise (an archive).
   */
  async openBlobFile(descriptor: Descriptor): Promise<FileHandle | undefined> {
    if (!this.files.openHandle) return undefined
    const opened = await this.files.openHandle(OciLayoutSource.blobPath(descriptor), `${this.description}: blob ${descriptor.digest}`)
    if (!opened) throw this.missing(descriptor)
    return opened.handle
  }

  async openBlob(descriptor: Descriptor): Promise<Readable> {
    const stream = await this.files.open(OciLayoutSource.blobPath(descriptor), `${this.description}: blob ${descriptor.digest}`)
    if (!stream) throw this.missing(descriptor)
    return stream
  }

  async close(): Promise<void> {}
}
