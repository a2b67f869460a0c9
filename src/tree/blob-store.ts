import {randomBytes} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {link, mkdir, readdir, rename, stat, unlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {type DigestCheck, digestHex, parseDigest, sha256, VerifyingStream} from '../core/digest.js'
import {errnoCode} from '../core/errors.js'

/**
 * The content-addressed store of a tree: `blobs/sha256/<hex>`, each blob once, the same layout as an
 * OCI image layout. Files are written under a temporary name and renamed into place only after
 * their digest checked out, so a file under its digest name is always complete and correct.
 */
export class BlobStore {
  readonly dir: string

  constructor(readonly root: string) {
    this.dir = path.join(root, 'blobs', 'sha256')
  }

  /** The file of a digest. The digest is checked here, the one place a digest becomes a path: nothing outside the store can be named. */
  pathOf(digest: string): string {
    return path.join(this.dir, digestHex(parseDigest(digest)))
  }

  async init(): Promise<void> {
    await mkdir(this.dir, {recursive: true})
  }

  async has(digest: string): Promise<boolean> {
    return (await this.sizeOf(digest)) !== undefined
  }

  /** Bytes of a stored blob; undefined when the store does not have it. */
  async sizeOf(digest: string): Promise<number | undefined> {
    try {
      return (await stat(this.pathOf(digest))).size
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return undefined
      throw error
    }
  }

  /** A fresh name beside the blobs for bytes still arriving (never served; a build's garbage collection removes strays). */
  tempPath(): string {
    return path.join(this.dir, `.tmp-${randomBytes(8).toString('hex')}`)
  }

  /** Move a complete, verified temporary file in under its digest (atomic: readers see all or nothing). */
  async commit(temp: string, digest: string): Promise<void> {
    await rename(temp, this.pathOf(digest))
  }

  /** Stream `input` into the store, verifying it; `onBytes` sees progress. Returns bytes written. */
  async ingest(input: Readable, check: DigestCheck & {size: number}, onBytes?: (bytes: number) => void): Promise<number> {
    const temp = this.tempPath()
    const verifier = new VerifyingStream(check)
    if (onBytes) verifier.on('data', (chunk: Buffer) => onBytes(chunk.length))
    try {
      // flush: the bytes are on disk before the rename makes them a blob (a power loss leaves no torn blob)
      await pipeline(input, verifier, createWriteStream(temp, {flags: 'wx', highWaterMark: 1 << 20, flush: true}))
      await this.commit(temp, check.digest)
    } catch (error) {
      await unlink(temp).catch(() => undefined)
      throw error
    }
    return verifier.bytesSeen
  }

  /** Store small bytes (manifests, generated documents); returns their digest. */
  async writeBytes(bytes: Uint8Array): Promise<string> {
    const digest = sha256(bytes)
    if (!(await this.has(digest))) {
      const temp = this.tempPath()
      await writeFile(temp, bytes, {flag: 'wx', flush: true})
      await rename(temp, this.pathOf(digest))
    }
    return digest
  }

  /** Hardlink every blob of another store into this one (an incremental build starts from the old tree). */
  async linkFrom(other: BlobStore): Promise<void> {
    let names: string[]
    try {
      names = await readdir(other.dir)
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return
      throw error
    }
    for (const name of names) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue
      await link(path.join(other.dir, name), path.join(this.dir, name)).catch((error: unknown) => {
        if (errnoCode(error) !== 'EEXIST') throw error
      })
    }
  }

  /** Delete every blob not in `keep` (and stray temporary files). Returns the digests removed. */
  async retainOnly(keep: ReadonlySet<string>): Promise<string[]> {
    const removed: string[] = []
    for (const name of await readdir(this.dir)) {
      const digest = `sha256:${name}`
      if (keep.has(digest)) continue
      await unlink(path.join(this.dir, name))
      if (!name.startsWith('.tmp-')) removed.push(digest)
    }
    return removed
  }
}
