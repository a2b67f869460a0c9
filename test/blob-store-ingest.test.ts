// BlobStore.ingest: what lands under a digest name is exactly the verified bytes, and a copy that
// fails (wrong digest, more bytes than claimed, a source that breaks) leaves nothing behind.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {type FileHandle, mkdir, open, readdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {Readable} from 'node:stream'
import {after, describe, it} from 'node:test'
import {errnoCode} from '../src/core/errors.js'
import {readFileBounded} from '../src/core/limits.js'
import {OciLayoutSource} from '../src/sources/oci-layout.js'
import type {SourceFiles} from '../src/sources/safe-path.js'
import {BlobStore} from '../src/tree/blob-store.js'
import {GraphIngester} from '../src/tree/ingest.js'
import {removeTempDirs, tempDir} from './support.js'

const MiB = 1024 * 1024

/** Chunk `i` of a deterministic byte stream (each chunk different, so misplaced chunks change the digest). */
function chunkOf(i: number, size = MiB): Buffer {
  const chunk = Buffer.alloc(size, i % 251)
  chunk.writeUInt32BE(i, 0)
  return chunk
}

function digestOf(chunks: Buffer[]): string {
  const hash = createHash('sha256')
  for (const chunk of chunks) hash.update(chunk)
  return 'sha256:' + hash.digest('hex')
}

/** A source of `count` chunks that counts how many it was asked for. */
function countingSource(count: number, failAt?: number): {stream: Readable; served: () => number} {
  let served = 0
  const stream = Readable.from((function* () {
    for (let i = 0; i < count; i++) {
      if (i === failAt) throw new Error('the source broke')
      served++
      yield chunkOf(i)
    }
  })(), {objectMode: false})
  return {stream, served: () => served}
}

async function storeFiles(store: BlobStore): Promise<string[]> {
  return (await readdir(store.dir)).sort()
}

after(removeTempDirs)

describe('BlobStore.ingest', () => {
  for (const private_ of [false, true]) {
    it(`stores a 40 MiB blob exactly, under its digest only once verified (${private_ ? 'private' : 'shared'} store)`, async () => {
      const store = new BlobStore(await tempDir(), {private: private_})
      await store.init()
      const chunks = Array.from({length: 40}, (_, i) => chunkOf(i))
      const digest = digestOf(chunks)
      let progress = 0
      const written = await store.ingest(Readable.from(chunks), {digest, size: 40 * MiB, label: 'blob'}, (bytes) => (progress += bytes))
      assert.equal(written, 40 * MiB)
      assert.equal(progress, 40 * MiB)
      const stored = await readFile(store.pathOf(digest))
      assert.equal(stored.length, 40 * MiB)
      assert.equal(digestOf([stored]), digest)
      assert.deepEqual(await storeFiles(store), [digest.slice(7)], 'no temporary file is left')
      assert.equal(await store.sizeOf(digest), 40 * MiB)
    })
  }

  it('refuses a source sending more than its descriptor claims as soon as the excess arrives', async () => {
    const store = new BlobStore(await tempDir())
    await store.init()
    // 10,000 chunks available (10 GB); the claim is 3 MiB: the copy must stop at the 4th chunk.
    const source = countingSource(10_000)
    const claimed = digestOf([chunkOf(0), chunkOf(1), chunkOf(2)])
    await assert.rejects(store.ingest(source.stream, {digest: claimed, size: 3 * MiB, label: 'blob x'}), (error: Error & {code?: string}) => {
      assert.equal(error.code, 'DIGEST_MISMATCH')
      assert.match(error.message, /more bytes than the descriptor says/)
      return true
    })
    assert.ok(source.served() <= 6, `the source was read for ${source.served()} chunks`)
    assert.deepEqual(await storeFiles(store), [], 'nothing stored, no temporary file left')
  })

  it('keeps nothing when the digest does not match', async () => {
    const store = new BlobStore(await tempDir(), {private: true})
    await store.init()
    const chunks = Array.from({length: 20}, (_, i) => chunkOf(i))
    const wrong = digestOf([Buffer.from('something else')])
    await assert.rejects(store.ingest(Readable.from(chunks), {digest: wrong, size: 20 * MiB, label: 'blob y'}), /content does not match its digest/)
    assert.equal(await store.has(wrong), false)
    assert.deepEqual(await storeFiles(store), [])
  })

  it('keeps nothing when the source ends short of its size', async () => {
    const store = new BlobStore(await tempDir())
    await store.init()
    const chunks = Array.from({length: 5}, (_, i) => chunkOf(i))
    const digest = digestOf(chunks)
    await assert.rejects(store.ingest(Readable.from(chunks.slice(0, 4)), {digest, size: 5 * MiB, label: 'blob z'}), /expected 5242880 bytes, read 4194304/)
    assert.deepEqual(await storeFiles(store), [])
  })

  it('keeps nothing and reports the source\'s error when the source breaks mid-blob', async () => {
    const store = new BlobStore(await tempDir(), {private: true})
    await store.init()
    const source = countingSource(40, 25)
    const digest = digestOf(Array.from({length: 40}, (_, i) => chunkOf(i)))
    await assert.rejects(store.ingest(source.stream, {digest, size: 40 * MiB, label: 'blob w'}), /the source broke/)
    assert.deepEqual(await storeFiles(store), [])
    assert.equal(store.holds(digest), false)
  })

  it('stores several blobs copied at once, each exactly', async () => {
    const store = new BlobStore(await tempDir(), {private: true})
    await store.init()
    const blobs = Array.from({length: 6}, (_, b) => Array.from({length: 3 + b * 5}, (_, i) => chunkOf(b * 1000 + i)))
    await Promise.all(blobs.map((chunks) => store.ingest(Readable.from(chunks), {digest: digestOf(chunks), size: chunks.length * MiB, label: 'blob'})))
    for (const chunks of blobs) assert.equal(digestOf([await readFile(store.pathOf(digestOf(chunks)))]), digestOf(chunks))
    assert.equal((await storeFiles(store)).length, 6)
    await store.sync()
  })
})

/** A file of `count` chunks, written for `ingestFile` to read. */
async function chunkFile(dir: string, name: string, count: number, first = 0): Promise<{file: string; digest: string}> {
  const chunks = Array.from({length: count}, (_, i) => chunkOf(first + i))
  const file = path.join(dir, name)
  await writeFile(file, Buffer.concat(chunks))
  return {file, digest: digestOf(chunks)}
}

describe('BlobStore.ingestFile', () => {
  it('stores files exactly when their chunk writes finish out of order (a buffer is read into again only once its write is done)', async () => {
    const dir = await tempDir()
    const store = new BlobStore(path.join(dir, 'tree'), {private: true})
    await store.init()
    const sources = await Promise.all(Array.from({length: 4}, (_, b) => chunkFile(dir, `src-${b}`, 9 + b * 4, b * 1000)))
    // Every other write of a file handle waits a moment first, so later chunks land before earlier ones.
    const probe = await open(sources[0].file)
    const prototype = Object.getPrototypeOf(probe) as {write: (...args: unknown[]) => Promise<unknown>}
    await probe.close()
    const write = prototype.write
    let writes = 0
    prototype.write = async function (this: FileHandle, ...args: unknown[]) {
      if (writes++ % 2 === 0) await new Promise((resolve) => setTimeout(resolve, 15))
      return write.apply(this, args)
    }
    let progress = 0
    try {
      await Promise.all(sources.map(async ({file, digest}) => {
        const handle = await open(file)
        try {
          const size = (await handle.stat()).size
          assert.equal(await store.ingestFile(handle, {digest, size, label: 'blob'}, (bytes) => (progress += bytes)), size)
        } finally {
          await handle.close()
        }
      }))
    } finally {
      prototype.write = write
    }
    assert.ok(writes >= 50, `${writes} writes`)
    for (const {digest} of sources) assert.equal(digestOf([await readFile(store.pathOf(digest))]), digest)
    assert.equal(progress, sources.reduce((sum, _, b) => sum + (9 + b * 4) * MiB, 0))
    assert.equal((await storeFiles(store)).length, 4, 'no temporary file is left')
  })

  it('stops reading a file longer than its claim at the first chunk past it', async () => {
    const store = new BlobStore(await tempDir())
    await store.init()
    // A "file" of 10,000 MiB that counts its reads.
    let reads = 0
    const endless = {
      async read(buffer: Buffer, offset: number, length: number) {
        reads++
        buffer.fill(7, offset, offset + length)
        return {bytesRead: length, buffer}
      },
    } as unknown as FileHandle
    const claimed = digestOf([Buffer.alloc(3 * MiB, 7)])
    await assert.rejects(store.ingestFile(endless, {digest: claimed, size: 3 * MiB, label: 'blob x'}), /more bytes than the descriptor says/)
    assert.ok(reads <= 6, `${reads} reads of 1 MiB for a claim of 3 MiB`)
    assert.deepEqual(await storeFiles(store), [])
  })

  it('keeps nothing when the file is shorter than its claim or its bytes differ', async () => {
    const dir = await tempDir()
    const store = new BlobStore(path.join(dir, 'tree'))
    await store.init()
    const {file, digest} = await chunkFile(dir, 'src', 5)
    for (const check of [{digest, size: 6 * MiB}, {digest: digestOf([chunkOf(99)]), size: 5 * MiB}]) {
      const handle = await open(file)
      try {
        await assert.rejects(store.ingestFile(handle, {...check, label: 'blob z'}), /content does not match its digest/)
      } finally {
        await handle.close()
      }
    }
    assert.deepEqual(await storeFiles(store), [])
  })
})

describe('an OCI layout whose files open as files', () => {
  const LAYER = 'application/vnd.oci.image.layer.v1.tar'

  /** A layout of one image: a layer of `layerChunks` MiB (its file `extra` MiB longer than the manifest says). */
  async function layout(dir: string, layerChunks: number, extra = 0): Promise<string> {
    const blobs = path.join(dir, 'blobs', 'sha256')
    await mkdir(blobs, {recursive: true})
    const put = async (bytes: Buffer, stored = bytes) => {
      const digest = digestOf([bytes])
      await writeFile(path.join(blobs, digest.slice(7)), stored)
      return {digest, size: bytes.length}
    }
    const layerBytes = Buffer.concat(Array.from({length: layerChunks}, (_, i) => chunkOf(i)))
    const layer = await put(layerBytes, Buffer.concat([layerBytes, Buffer.alloc(extra * MiB, 1)]))
    const config = await put(Buffer.from(JSON.stringify({architecture: 'amd64', os: 'linux'})))
    const manifest = await put(Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: {mediaType: 'application/vnd.oci.image.config.v1+json', ...config}, layers: [{mediaType: LAYER, ...layer}]})))
    await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({imageLayoutVersion: '1.0.0'}))
    await writeFile(path.join(dir, 'index.json'), JSON.stringify({schemaVersion: 2, manifests: [{mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: {'org.opencontainers.image.ref.name': 'app:1'}}]}))
    return layer.digest
  }

  /** A directory's files that also open as handles, counting them. */
  function openableFiles(dir: string): SourceFiles & {handles: number; openHandle(relative: string): Promise<{handle: FileHandle; size: number} | undefined>} {
    return {
      where: dir,
      handles: 0,
      async read(relative, limit, what) {
        return readFileBounded(path.join(dir, relative), limit, what).catch((error: unknown) => {
          if (errnoCode(error) === 'ENOENT') return undefined
          throw error
        })
      },
      async open(relative) {
        return createReadStream(path.join(dir, relative))
      },
      async openHandle(relative) {
        this.handles++
        const handle = await open(path.join(dir, relative))
        return {handle, size: (await handle.stat()).size}
      },
    }
  }

  it('copies its blobs through ingestFile, exactly', async () => {
    const dir = await tempDir()
    const layerDigest = await layout(path.join(dir, 'layout'), 9)
    const files = openableFiles(path.join(dir, 'layout'))
    const source = new OciLayoutSource('oci:test', files)
    const [root] = await source.roots()
    const store = new BlobStore(path.join(dir, 'tree'), {private: true})
    await store.init()
    const index = {manifests: {}, blobs: {}}
    await new GraphIngester(store, index).ingest(source, root.descriptor, 'app:1')
    assert.equal(files.handles, 1, 'the layer was opened as a file (the small config is held in memory)')
    assert.equal(digestOf([await readFile(store.pathOf(layerDigest))]), layerDigest)
  })

  it('refuses a blob file longer than its descriptor and stores nothing for it', async () => {
    const dir = await tempDir()
    const layerDigest = await layout(path.join(dir, 'layout'), 3, 5)
    const source = new OciLayoutSource('oci:test', openableFiles(path.join(dir, 'layout')))
    const [root] = await source.roots()
    const store = new BlobStore(path.join(dir, 'tree'), {private: true})
    await store.init()
    await assert.rejects(new GraphIngester(store, {manifests: {}, blobs: {}}).ingest(source, root.descriptor, 'app:1'), (error: Error & {code?: string}) => {
      assert.equal(error.code, 'DIGEST_MISMATCH')
      return true
    })
    assert.equal(store.holds(layerDigest), false)
    assert.ok((await storeFiles(store)).every((name) => !name.startsWith('.tmp-')), 'no temporary file is left')
  })
})

describe('BlobStore.sync', () => {
  it('without `sync -f` (no syncfs), fsyncs every file a private store wrote, and its directories, once each', async () => {
    const store = new BlobStore(await tempDir(), {private: true})
    await store.init()
    const digests = await Promise.all(['one', 'two', 'three'].map((text) => store.writeBytes(Buffer.from(text))))
    assert.equal(new Set(digests).size, 3)
    const probe = await open(store.pathOf(digests[0]), 'r')
    const prototype = Object.getPrototypeOf(probe) as FileHandle
    await probe.close()
    const original = prototype.sync
    let synced = 0
    const path_ = process.env.PATH
    // No `sync` command to be found: the store falls back to fsync, file by file.
    process.env.PATH = await tempDir()
    prototype.sync = async function (this: FileHandle) {
      synced++
      return original.call(this)
    }
    try {
      await store.sync()
    } finally {
      prototype.sync = original
      process.env.PATH = path_
    }
    assert.equal(synced, 3 + 3, 'the three files, the store directory, its parent and the root')
  })
})
