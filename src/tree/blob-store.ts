import {execFile} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {type FileHandle, link, mkdir, open, readdir, rename, stat, unlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {type DigestCheck, DigestVerifier, digestHex, parseDigest, sha256} from '../core/digest.js'
import {mapLimit} from '../core/concurrency.js'
import {errnoCode} from '../core/errors.js'

const STORE_NAME = /^[a-f0-9]{64}$/
/** chunk writes one blob keeps in flight while its next chunk is hashed */
const WRITES_IN_FLIGHT = 2
/** bytes `ingestFile` reads at a time */
const FILE_CHUNK_BYTES = 1 << 20
/** bytes of a blob written between two write-back requests */
const WRITEBACK_EVERY_BYTES = 8 << 20
/** write-back requests one store has running at a time: the thread pool has 4 threads, and the reads and writes of the blobs being copied need the others */
const WRITEBACKS_RUNNING = 2

export interface BlobStoreOptions {
  /**
   * The store is a private staging directory no other process writes: what it holds is kept in
   * memory (filled by one readdir), and files are written without an fsync each; `sync()` makes
   * them all durable at once before the directory is put in service.
   */
  private?: boolean
}

/**
 * The content-addressed store of a tree: `blobs/sha256/<hex>`, each blob once, the same layout as an
 * OCI image layout. Files are written under a temporary name and renamed into place only after
 * their digest checked out, so a file under its digest name is always complete and correct.
 */
export class BlobStore {
  readonly dir: string
  /** private stores: hex name → size of each stored file (undefined: present, size not asked yet) */
  protected contents?: Map<string, number | undefined>
  /** private stores: the hex digests of the files written since `init`, to fsync when `sync -f` is not at hand (the same strings as `contents`' keys, not a path each) */
  private written: string[] = []
  private readonly writeback = new WritebackSlots()

  constructor(readonly root: string, private readonly options: BlobStoreOptions = {}) {
    this.dir = path.join(root, 'blobs', 'sha256')
  }

  private get flush(): boolean {
    return !this.options.private
  }

  /** The file of a digest. The digest is checked here, the one place a digest becomes a path: nothing outside the store can be named. */
  pathOf(digest: string): string {
    return path.join(this.dir, digestHex(parseDigest(digest)))
  }

  async init(): Promise<void> {
    await mkdir(this.dir, {recursive: true})
    if (this.options.private) this.contents = new Map((await readdir(this.dir)).filter((n) => STORE_NAME.test(n)).map((n) => [n, undefined]))
  }

  async has(digest: string): Promise<boolean> {
    if (this.contents) return this.contents.has(digestHex(parseDigest(digest)))
    return (await this.sizeOf(digest)) !== undefined
  }

  /** Whether the store holds `digest`, without touching the disk: a private store's answer, undefined for others. */
  holds(digest: string): boolean | undefined {
    // A name that is no digest is simply not held: it never becomes a path here.
    return this.contents && digest.startsWith('sha256:') && this.contents.has(digest.slice(7))
  }

  /** Bytes of a stored blob; undefined when the store does not have it. */
  async sizeOf(digest: string): Promise<number | undefined> {
    const hex = digestHex(parseDigest(digest))
    if (this.contents && !this.contents.has(hex)) return undefined
    const known = this.contents?.get(hex)
    if (known !== undefined) return known
    try {
      const {size} = await stat(this.pathOf(digest))
      this.contents?.set(hex, size)
      return size
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') {
        this.contents?.delete(hex)
        return undefined
      }
      throw error
    }
  }

  /**
   * Make what a private store wrote durable, once, before the directory is put in service: one
   * syncfs of its file system (`sync -f`), else an fsync of every file written, in parallel.
   */
  async sync(): Promise<void> {
    const syncfs = await new Promise<boolean>((resolve) => {
      execFile('sync', ['-f', this.root], (error) => resolve(!error))
    })
    if (!syncfs) {
      await mapLimit([...this.written.map((hex) => path.join(this.dir, hex)), this.dir, path.dirname(this.dir), this.root], 16, async (file) => {
        const handle = await open(file, 'r').catch((error: unknown) => {
          // collected since: not in the tree any more
          if (errnoCode(error) === 'ENOENT') return undefined
          throw error
        })
        if (!handle) return
        try {
          await handle.sync()
        } finally {
          await handle.close()
        }
      })
    }
    this.written = []
  }

  /** A fresh name beside the blobs for bytes still arriving (never served; a build's garbage collection removes strays). */
  tempPath(): string {
    return path.join(this.dir, `.tmp-${randomBytes(8).toString('hex')}`)
  }

  /** Move a complete, verified temporary file in under its digest (atomic: readers see all or nothing). */
  async commit(temp: string, digest: string, size?: number): Promise<void> {
    await rename(temp, this.pathOf(digest))
    this.remember(digest, size)
  }

  private remember(digest: string, size: number | undefined): void {
    if (!this.contents) return
    const hex = digestHex(digest)
    this.contents.set(hex, size)
    this.written.push(hex)
  }

  /**
   * Copy `input` into the store, verifying it; `onBytes` sees progress. Returns bytes written.
   * One pass: each chunk is hashed on this thread while the chunks before it are still being written
   * by the thread pool, and it is the hashed chunk itself that is written (what lands is what was
   * verified, however the source changes meanwhile). The file gets its digest name only after the
   * digest and size checked out.
   */
  async ingest(input: Readable, check: DigestCheck & {size: number}, onBytes?: (bytes: number) => void): Promise<number> {
    return this.copyIn(check, async (verifier, writer) => {
      for await (const chunk of input as AsyncIterable<Buffer>) {
        verifier.update(chunk)
        await writer.write(chunk)
        onBytes?.(chunk.length)
      }
    })
  }

  /**
   * `ingest` for a source that is an open file: read into a few buffers of this copy, reused (a
   * stream's fresh buffer per chunk makes the collector run on external memory pressure and the
   * kernel fault in new pages, for every MiB). The next chunk is read while this one is hashed; a
   * buffer is read into again only once its write is done, so the bytes hashed are the bytes written.
   * The file's length is a claim like the descriptor's: reading stops at the first byte past `size`.
   */
  async ingestFile(source: FileHandle, check: DigestCheck & {size: number}, onBytes?: (bytes: number) => void): Promise<number> {
    // One byte more than the claim, so a file longer than its descriptor shows in the first read of a small blob.
    const chunkBytes = Math.min(Math.max(check.size + 1, 16 * 1024), FILE_CHUNK_BYTES)
    // One being read, one being hashed, WRITES_IN_FLIGHT being written.
    const buffers = Array.from({length: WRITES_IN_FLIGHT + 2}, () => Buffer.allocUnsafeSlow(chunkBytes))
    const written = new Map<Buffer, Promise<void>>()
    return this.copyIn(check, async (verifier, writer) => {
      let position = 0
      let next = 0
      let reading: Promise<{bytesRead: number}> | undefined = source.read(buffers[0], 0, chunkBytes, 0)
      try {
        for (;;) {
          const {bytesRead} = await reading
          reading = undefined
          if (bytesRead === 0) break
          const buffer = buffers[next]
          const chunk = buffer.subarray(0, bytesRead)
          position += bytesRead
          next = (next + 1) % buffers.length
          await written.get(buffers[next])
          reading = source.read(buffers[next], 0, chunkBytes, position)
          verifier.update(chunk)
          written.set(buffer, (await writer.write(chunk)).done)
          onBytes?.(bytesRead)
        }
      } finally {
        // Leaving early (too many bytes, a failed write): the read in flight settles before the file is closed.
        await reading?.catch(() => undefined)
      }
    })
  }

  /** Write what `feed` verifies and writes into a temporary file, and give it its digest name once it checked out. */
  private async copyIn(check: DigestCheck & {size: number}, feed: (verifier: DigestVerifier, writer: BlobFileWriter) => Promise<void>): Promise<number> {
    const temp = this.tempPath()
    const file = await open(temp, 'wx')
    const writer = new BlobFileWriter(file, this.writeback)
    const verifier = new DigestVerifier(check)
    try {
      try {
        await feed(verifier, writer)
        verifier.finish()
        await writer.settle()
        // On disk before the rename makes it a blob: a power loss leaves no torn blob under its name.
        // A private store is not served until `sync` made every file in it durable (the builder
        // syncs before it swaps the staging directory in, and a crash before that leaves a staging
        // directory the next build removes), so its blobs skip this wait; the write-back their
        // copy asked for on the way leaves that one sync little to do.
        if (this.flush) await file.sync()
      } finally {
        await writer.settle().catch(() => undefined)
        await file.close()
      }
      await this.commit(temp, check.digest, verifier.bytesSeen)
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
      await writeFile(temp, bytes, {flag: 'wx', flush: this.flush})
      await rename(temp, this.pathOf(digest))
      this.remember(digest, bytes.length)
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
    // Links are independent: several in flight (the thread pool's width) instead of one at a time.
    await mapLimit(names.filter((name) => STORE_NAME.test(name)), 8, async (name) => {
      await link(path.join(other.dir, name), path.join(this.dir, name)).catch((error: unknown) => {
        if (errnoCode(error) !== 'EEXIST') throw error
      })
      this.contents?.set(name, undefined)
    })
  }

  /** Delete every blob not in `keep` (and stray temporary files). Returns the digests removed. */
  async retainOnly(keep: ReadonlySet<string>): Promise<string[]> {
    const removed: string[] = []
    for (const name of await readdir(this.dir)) {
      const digest = `sha256:${name}`
      if (keep.has(digest)) continue
      await unlink(path.join(this.dir, name))
      this.contents?.delete(name)
      if (!name.startsWith('.tmp-')) removed.push(digest)
    }
    return removed
  }
}

/**
 * A tree's store looked at, never written: what a build would write and delete in it is noted in
 * `changed` instead (a rebuild that would change nothing need not stage a copy of the tree).
 */
export class TreeCheckStore extends BlobStore {
  changed = false

  constructor(root: string) {
    super(root, {private: true})
  }

  override async init(): Promise<void> {
    const names = await readdir(this.dir).catch((error: unknown) => {
      if (errnoCode(error) === 'ENOENT') return []
      throw error
    })
    this.contents = new Map(names.filter((n) => STORE_NAME.test(n)).map((n) => [n, undefined]))
  }

  override async ingest(): Promise<number> {
    throw new Error('a checked store is not written')
  }

  override async ingestFile(): Promise<number> {
    throw new Error('a checked store is not written')
  }

  override async writeBytes(bytes: Uint8Array): Promise<string> {
    const digest = sha256(bytes)
    if (this.holds(digest) !== true) this.changed = true
    return digest
  }

  override async linkFrom(): Promise<void> {
    throw new Error('a checked store is not written')
  }

  override async retainOnly(keep: ReadonlySet<string>): Promise<string[]> {
    const removed: string[] = []
    for (const name of await readdir(this.dir).catch(() => ['(no store)'])) {
      const digest = `sha256:${name}`
      if (keep.has(digest)) continue
      this.changed = true
      if (!name.startsWith('.tmp-')) removed.push(digest)
    }
    return removed
  }
}

/** The write-back requests one store has running: a few, so reads and writes keep threads of the pool. */
class WritebackSlots {
  running = 0
}

/**
 * Writes one blob's chunks at their offsets, up to WRITES_IN_FLIGHT at a time, so the next chunk
 * is hashed while earlier ones are written. Every WRITEBACK_EVERY_BYTES it asks the kernel to start
 * writing the file to disk (a datasync nobody waits for until the blob is closed), so the sync
 * that makes the blob durable has only its last bytes left to do, not the whole blob at the end.
 * Write-back here is a head start only: durability is still the caller's sync (or the private
 * store's `sync`), exactly as without it.
 */
class BlobFileWriter {
  private readonly writes = new Set<Promise<void>>()
  private failure: {error: unknown} | undefined
  private queued = 0
  private written = 0
  private writtenAtWriteback = 0
  private writeback: Promise<void> | undefined

  constructor(private readonly file: FileHandle, private readonly writebacks: WritebackSlots) {}

  /**
   * Start writing `chunk` after the bytes before it; waits only while WRITES_IN_FLIGHT are pending.
   * Resolves to when this write is done (it never rejects: a failure is thrown by the next call).
   */
  async write(chunk: Buffer): Promise<{done: Promise<void>}> {
    this.throwFailure()
    while (this.writes.size >= WRITES_IN_FLIGHT) await Promise.race(this.writes)
    this.throwFailure()
    const position = this.queued
    this.queued += chunk.length
    const write = this.writeAt(chunk, position).then(
      () => {
        this.written += chunk.length
        this.startWriteback()
      },
      (error: unknown) => {
        this.failure ??= {error}
      },
    ).finally(() => this.writes.delete(write))
    this.writes.add(write)
    return {done: write}
  }

  private async writeAt(chunk: Buffer, position: number): Promise<void> {
    let done = 0
    while (done < chunk.length) {
      const {bytesWritten} = await this.file.write(chunk, done, chunk.length - done, position + done)
      done += bytesWritten
    }
  }

  private startWriteback(): void {
    if (this.writeback || this.written - this.writtenAtWriteback < WRITEBACK_EVERY_BYTES || this.writebacks.running >= WRITEBACKS_RUNNING) return
    this.writtenAtWriteback = this.written
    this.writebacks.running++
    this.writeback = this.file.datasync().catch((error: unknown) => {
      this.failure ??= {error}
    }).finally(() => {
      this.writebacks.running--
      this.writeback = undefined
    })
  }

  /** Wait for every write and write-back started; throws the first write's error. */
  async settle(): Promise<void> {
    while (this.writes.size > 0) await Promise.all(this.writes)
    await this.writeback
    this.throwFailure()
  }

  private throwFailure(): void {
    if (this.failure) throw this.failure.error
  }
}
