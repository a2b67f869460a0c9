// How `reg serve` sends a file's bytes (sendObject over a file): large chunks reused between
// downloads, Range and short files exactly as before. In-process: one http server, clients of node:http.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {truncate, writeFile} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {sendObject} from '../src/server/respond.js'
import {blobHeaders} from '../src/tree/objects.js'
import {removeTempDirs, tempDir} from './support.js'

const MiB = 1 << 20
const BLOB_BYTES = 8 * MiB + 12345

/** Deterministic bytes that differ at every offset, so a chunk sent twice or out of place shows. */
function blobBytes(size: number): Buffer {
  const bytes = Buffer.alloc(size)
  for (let offset = 0; offset < size; offset += 32) createHash('sha256').update(String(offset)).digest().copy(bytes, offset)
  return bytes
}

interface Download {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
  /** the body ended complete (false: the connection was cut) */
  complete: boolean
}

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Download> {
  return new Promise((resolve, reject) => {
    http.get(url, {headers, method, agent: false}, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      const done = () => resolve({status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete})
      res.once('end', done)
      res.once('error', done)
      res.once('aborted', done)
    }).once('error', reject)
  })
}

/** A GET that reads the headers and a little of the body, then goes away. */
function getAndLeave(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, {agent: false}, (res) => {
      res.once('data', () => {
        request.destroy()
        resolve()
      })
    })
    request.once('error', (error) => (request.destroyed ? resolve() : reject(error)))
  })
}

describe('reg serve: file bodies', () => {
  let dir: string
  let server: http.Server
  let base: string
  const blob = blobBytes(BLOB_BYTES)
  const digest = 'sha256:' + createHash('sha256').update(blob).digest('hex')
  /** res.write calls per response, by URL path */
  const writes: number[] = []

  before(async () => {
    dir = await tempDir()
    await writeFile(path.join(dir, 'blob'), blob)
    await writeFile(path.join(dir, 'short'), blob)
    // the index says BLOB_BYTES; the file has fewer (a damaged or half-written store)
    await truncate(path.join(dir, 'short'), 3 * MiB)
    await writeFile(path.join(dir, 'tiny'), blob.subarray(0, 100))
    server = http.createServer((req, res) => {
      const name = (req.url ?? '/').slice(1)
      const size = name === 'tiny' ? 100 : BLOB_BYTES
      const tinyDigest = 'sha256:' + createHash('sha256').update(blob.subarray(0, 100)).digest('hex')
      const objectDigest = name === 'tiny' ? tinyDigest : digest
      const index = writes.push(0) - 1
      const write = res.write.bind(res) as (...args: unknown[]) => boolean
      res.write = ((...args: unknown[]) => {
        writes[index]++
        return write(...args)
      }) as typeof res.write
      sendObject(req, res, req.method ?? 'GET', {class: 'blob', digest: objectDigest, size, headers: blobHeaders(objectDigest)}, {file: path.join(dir, name)})
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
    const address = server.address()
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
  })

  after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await removeTempDirs()
  })

  it('sends a big blob whole in chunks of 1 MiB, not 64 KiB', async () => {
    writes.length = 0
    const download = await get(`${base}/blob`)
    assert.equal(download.status, 200)
    assert.equal(download.headers['content-length'], String(BLOB_BYTES))
    assert.equal(download.headers.etag, `"${digest}"`)
    assert.ok(download.complete)
    assert.ok(download.body.equals(blob))
    // 9 chunks of at most 1 MiB; node's default 64 KiB stream chunks would take 129 writes
    assert.ok(writes[0] <= Math.ceil(BLOB_BYTES / MiB) + 1, `${writes[0]} writes`)
  })

  it('answers ranges across chunk boundaries byte for byte', async () => {
    const ranges: Array<[string, number, number]> = [
      [`bytes=${MiB - 10}-${MiB + 10}`, MiB - 10, MiB + 10],
      [`bytes=${MiB}-${3 * MiB - 1}`, MiB, 3 * MiB - 1],
      ['bytes=5-', 5, BLOB_BYTES - 1],
      ['bytes=-1500000', BLOB_BYTES - 1500000, BLOB_BYTES - 1],
      [`bytes=${BLOB_BYTES - 1}-${BLOB_BYTES + 100}`, BLOB_BYTES - 1, BLOB_BYTES - 1],
    ]
    for (const [header, start, end] of ranges) {
      const download = await get(`${base}/blob`, {Range: header})
      assert.equal(download.status, 206, header)
      assert.equal(download.headers['content-range'], `bytes ${start}-${end}/${BLOB_BYTES}`, header)
      assert.equal(download.headers['content-length'], String(end - start + 1), header)
      assert.ok(download.body.equals(blob.subarray(start, end + 1)), header)
    }
    assert.equal((await get(`${base}/blob`, {Range: `bytes=${BLOB_BYTES}-`})).status, 416)
  })

  it('answers HEAD and If-None-Match without a body, and small files whole', async () => {
    const head = await get(`${base}/blob`, {}, 'HEAD')
    assert.equal(head.status, 200)
    assert.equal(head.headers['content-length'], String(BLOB_BYTES))
    assert.equal(head.body.length, 0)
    const cached = await get(`${base}/blob`, {'If-None-Match': `"${digest}"`})
    assert.equal(cached.status, 304)
    assert.equal(cached.body.length, 0)
    const tiny = await get(`${base}/tiny`)
    assert.equal(tiny.status, 200)
    assert.ok(tiny.body.equals(blob.subarray(0, 100)))
  })

  it('cuts the connection when the file ends before the size it was announced with', async () => {
    const download = await get(`${base}/short`)
    assert.equal(download.status, 200)
    assert.equal(download.complete, false)
    assert.ok(download.body.length < BLOB_BYTES)
  })

  it('keeps every concurrent download exact while clients come and go, and reuses its chunks after', async () => {
    // more downloads at once than large chunks are lent (the rest get small chunks of their own)
    const leaving = Array.from({length: 24}, () => getAndLeave(`${base}/blob`))
    const staying = Array.from({length: 24}, (_, i) => get(`${base}/blob`, i % 2 ? {Range: `bytes=${i * 1000}-`} : {}))
    await Promise.all(leaving)
    const downloads = await Promise.all(staying)
    downloads.forEach((download, i) => {
      const start = i % 2 ? i * 1000 : 0
      assert.ok(download.complete, `download ${i}`)
      assert.ok(download.body.equals(blob.subarray(start)), `download ${i}`)
    })
    // the chunks of the downloads that went away were given back: a new one still gets large ones
    for (let attempt = 0; attempt < 3; attempt++) {
      writes.length = 0
      const download = await get(`${base}/blob`)
      assert.ok(download.body.equals(blob))
      if (writes[0] <= Math.ceil(BLOB_BYTES / MiB) + 1) return
    }
    assert.fail(`a download after the others still used ${writes[0]} writes`)
  })
})
