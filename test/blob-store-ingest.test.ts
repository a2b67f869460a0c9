// BlobStore.ingest: what lands under a digest name is exactly the verified bytes, and a copy that
// fails (wrong digest, more bytes than claimed, a source that breaks) leaves nothing behind.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {readdir, readFile} from 'node:fs/promises'
import {Readable} from 'node:stream'
import {after, describe, it} from 'node:test'
import {BlobStore} from '../src/tree/blob-store.js'
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
