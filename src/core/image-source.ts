import type {FileHandle} from 'node:fs/promises'
import type {Readable} from 'node:stream'
import type {Descriptor} from './manifest.js'

/** One tagged entry point of a source: a manifest (image or index) and the name it came with, if any. */
export interface SourceRoot {
  descriptor: Descriptor
  /** repository name from the source (registry host already dropped), if the source has one */
  name?: string
  tag?: string
}

/** A manifest attached to one the source holds: a signature, an SBOM, an attestation. */
export interface SourceReferrer {
  descriptor: Descriptor
  /**
   * the tag it lives under when its source names it by tag (cosign's `sha256-<hex>.sig`, `.att`,
   * `.sbom`: clients find those by tag); absent for OCI 1.1 referrers, which are kept untagged and
   * found through their subject
   */
  tag?: string
}

/**
 * What every source adapter gives, in the spirit of go-containerregistry's `partial`: descriptors and
 * raw bytes. Adapters do not verify; the shared ingest code hashes every byte against its descriptor.
 */
export interface ImageSource {
  /** how the user named it, for messages: `oci:./layout:1.0` */
  readonly description: string
  roots(): Promise<SourceRoot[]>
  /** exact bytes of a manifest (image or index) */
  readManifest(descriptor: Descriptor): Promise<Buffer>
  /** the bytes of a blob (config or layer), as stored */
  openBlob(descriptor: Descriptor): Promise<Readable>
  /**
   * The blob as an open file (an OCI layout directory's), for the store to read with buffers of its
   * own instead of through a stream; undefined (or absent): use `openBlob`.
   */
  openBlobFile?(descriptor: Descriptor): Promise<FileHandle | undefined>
  /**
   * What is attached to the manifest `subject` (a digest roots() led to): OCI 1.1 referrers and
   * cosign-style tags. Only sources that can hold attachments have it.
   */
  referrers?(subject: string): Promise<SourceReferrer[]>
  /** remove temporary files */
  close(): Promise<void>
}
