// Blobs over 5 GiB on the S3 family: server-side copies in parts (UploadPartCopy), and uploads in
// parts that resume from the parts the store has after an interrupted deploy (the upload id kept in
// the deploy state), aborted once too old. s3rver stores uploads in parts but implements neither
// UploadPartCopy nor ListParts: those request shapes are checked with nock against a fake bucket.
// Large files are sparse: a 6 GiB blob takes no disk.
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {open, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, afterEach, before, describe, it} from 'node:test'
import nock from 'nock'
import {netlifyBackend} from '../plugins/backend-netlify/index.js'
import {createS3Backend} from '../plugins/backend-s3/index.js'
import {partSizeFor} from '../plugins/backend-s3/multipart.js'
import type {Backend} from '../src/publish/backend.js'
import type {RegistryObject} from '../src/tree/model.js'
import {type RunningS3, S3_BUCKET, S3_CREDENTIALS, startS3rver} from './s3rver.js'
import {freePort} from './static-hosts.js'
import {removeTempDirs, runReg, runRegProcess, tempDir, writeTinyOciLayout} from './support.js'

const MiB = 1024 * 1024
const GiB = 1024 * MiB
const DAY = 86_400_000
const FAKE = 'http://s3.fake.invalid'
const BUCKET = 'bucket'

/** A file of `size` bytes that takes no disk: zeros. */
async function sparseFile(file: string, size: number): Promise<string> {
  const handle = await open(file, 'w')
  await handle.truncate(size)
  await handle.close()
  return file
}

function blobObject(digest: string, size: number, repository = 'team/app'): RegistryObject {
  return {path: `v2/${repository}/blobs/${digest}`, class: 'blob', repository, digest, size, headers: {'Content-Type': 'application/octet-stream', 'Cache-Control': 'public, max-age=31536000, immutable', 'Docker-Content-Digest': digest}}
}

interface Recorded {
  method: string
  path: string
  query: URLSearchParams
  headers: Record<string, string | string[] | undefined>
  body: string
}

/**
 * A bucket as far as uploads in parts go, answered by nock: the state object, empty listings,
 * uploads (create, part, copy part, list parts paged by 500, complete, abort). `failPart` answers a
 * part with a 500; `uploads` holds each upload's parts.
 */
function fakeBucket() {
  const requests: Recorded[] = []
  const uploads = new Map<string, Map<number, number>>()
  const completed: Array<{key: string; parts: number[]}> = []
  const bucket = {requests, uploads, completed, state: undefined as string | undefined, failPart: (_n: number) => false, nextId: 1}
  const xml = (body: string) => `<?xml version="1.0" encoding="UTF-8"?>${body}`
  const answer = function (this: nock.ReplyFnContext, uri: string, body: nock.Body): nock.ReplyFnResult {
    const url = new URL(uri, FAKE)
    const request: Recorded = {method: this.req.method, path: decodeURIComponent(url.pathname), query: url.searchParams, headers: this.req.headers, body: typeof body === 'string' ? body : JSON.stringify(body)}
    requests.push(request)
    const key = request.path.replace(`/${BUCKET}/`, '')
    const q = url.searchParams
    if (request.path === `/${BUCKET}` || request.path === `/${BUCKET}/`) return [200, xml(`<ListBucketResult><Name>${BUCKET}</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>`)]
    if (key === '.reg-state.json') {
      if (request.method === 'PUT') {
        bucket.state = request.body
        return [200, '', {ETag: '"s"'}]
      }
      return bucket.state === undefined ? [404, xml('<Error><Code>NoSuchKey</Code><Message>none</Message></Error>')] : [200, bucket.state]
    }
    if (request.method === 'POST' && q.has('uploads')) {
      const id = `U${bucket.nextId++}`
      uploads.set(id, new Map())
      return [200, xml(`<InitiateMultipartUploadResult><Bucket>${BUCKET}</Bucket><Key>${key}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`)]
    }
    const id = q.get('uploadId') ?? ''
    const parts = uploads.get(id)
    if (!parts) return [404, xml('<Error><Code>NoSuchUpload</Code><Message>no such upload</Message></Error>')]
    if (request.method === 'PUT') {
      const number = Number(q.get('partNumber'))
      if (bucket.failPart(number)) return [500, xml('<Error><Code>InternalError</Code><Message>injected</Message></Error>')]
      const range = /^bytes=(\d+)-(\d+)$/.exec(String(request.headers['x-amz-copy-source-range'] ?? ''))
      parts.set(number, range ? Number(range[2]) - Number(range[1]) + 1 : Number(request.headers['content-length']))
      return range ? [200, xml(`<CopyPartResult><ETag>"p${number}"</ETag><LastModified>2026-01-01T00:00:00.000Z</LastModified></CopyPartResult>`)] : [200, '', {ETag: `"p${number}"`}]
    }
    if (request.method === 'GET') {
      const marker = Number(q.get('part-number-marker') ?? 0)
      const listed = [...parts].sort(([a], [b]) => a - b).filter(([n]) => n > marker)
      const page = listed.slice(0, 500)
      const truncated = listed.length > 500
      return [200, xml(`<ListPartsResult><Bucket>${BUCKET}</Bucket><Key>${key}</Key><UploadId>${id}</UploadId><IsTruncated>${truncated}</IsTruncated>${truncated ? `<NextPartNumberMarker>${page[page.length - 1][0]}</NextPartNumberMarker>` : ''}${page.map(([n, size]) => `<Part><PartNumber>${n}</PartNumber><ETag>"p${n}"</ETag><Size>${size}</Size></Part>`).join('')}</ListPartsResult>`)]
    }
    if (request.method === 'POST') {
      const numbers = [...request.body.matchAll(/<PartNumber>(\d+)<\/PartNumber>/g)].map((m) => Number(m[1]))
      completed.push({key, parts: numbers})
      uploads.delete(id)
      return [200, xml(`<CompleteMultipartUploadResult><Bucket>${BUCKET}</Bucket><Key>${key}</Key><ETag>"done-${numbers.length}"</ETag></CompleteMultipartUploadResult>`)]
    }
    if (request.method === 'DELETE') {
      uploads.delete(id)
      return [204, '']
    }
    return [400, xml('<Error><Code>Unexpected</Code><Message>not in the fake</Message></Error>')]
  }
  const scope = nock(FAKE).persist()
  for (const method of ['GET', 'PUT', 'POST', 'DELETE', 'HEAD'] as const) scope.intercept(/.*/, method).reply(answer)
  /** the deploy state as the bucket holds it */
  const savedState = () => JSON.parse(bucket.state ?? '{}') as {uploads?: Record<string, {uploadId: string; started: string}>}
  return Object.assign(bucket, {savedState})
}

const fakeBackend = () => createS3Backend('s3', {bucket: BUCKET}, {region: 'us-east-1', endpoint: FAKE, forcePathStyle: true})
const partRequests = (requests: Recorded[]) => requests.filter((r) => r.method === 'PUT' && r.query.has('partNumber'))

describe('S3: blobs over 5 GiB, uploads in parts resumed', () => {
  let work: string
  let s3: RunningS3
  before(async () => {
    work = await tempDir()
    Object.assign(process.env, S3_CREDENTIALS)
    nock.disableNetConnect()
    nock.enableNetConnect('127.0.0.1')
    s3 = await startS3rver(path.join(work, 's3rver'), await freePort())
  })
  afterEach(() => nock.cleanAll())
  after(async () => {
    nock.enableNetConnect()
    await s3?.stop()
    await removeTempDirs()
  })

  it('copies an object over 5 GiB server-side, in ranges that tile it exactly (UploadPartCopy, nock)', async () => {
    const fake = fakeBucket()
    const backend = await fakeBackend()
    const size = 6 * GiB + 123
    const object = blobObject(`sha256:${'a'.repeat(64)}`, size, 'team/other')
    await backend.copyObject(`v2/team/app/blobs/${object.digest}`, object.path, object)
    const created = fake.requests.filter((r) => r.method === 'POST' && r.query.has('uploads'))
    assert.equal(created.length, 1)
    assert.equal(created[0].headers['content-type'], 'application/octet-stream', 'the object\'s headers are set when the upload starts')
    assert.equal(created[0].headers['x-amz-meta-docker-content-digest'], object.digest)
    const copies = partRequests(fake.requests)
    assert.ok(copies.every((r) => r.headers['x-amz-copy-source'] === `${BUCKET}/v2/team/app/blobs/${object.digest}`), 'every part copied from the source key')
    const ranges = copies.map((r) => /^bytes=(\d+)-(\d+)$/.exec(String(r.headers['x-amz-copy-source-range']))!).map((m) => [Number(m[1]), Number(m[2])]).sort((a, b) => a[0] - b[0])
    assert.equal(ranges[0][0], 0)
    for (let i = 1; i < ranges.length; i++) assert.equal(ranges[i][0], ranges[i - 1][1] + 1, 'contiguous')
    assert.equal(ranges[ranges.length - 1][1], size - 1, 'to the last byte')
    assert.ok(ranges.length <= 900 && ranges.every(([a, b]) => b - a + 1 <= 5 * GiB), `${ranges.length} parts, none over 5 GiB`)
    assert.deepEqual(fake.completed, [{key: object.path, parts: ranges.map((_, i) => i + 1)}])
  })

  it('a copy in parts that fails is aborted, and the step fails (to be tried again whole)', async () => {
    const fake = fakeBucket()
    fake.failPart = (n) => n === 3
    const backend = await fakeBackend()
    const object = blobObject(`sha256:${'b'.repeat(64)}`, 6 * GiB)
    await assert.rejects(backend.copyObject(`v2/x/blobs/${object.digest}`, object.path, object))
    assert.equal(fake.requests.filter((r) => r.method === 'DELETE' && r.query.has('uploadId')).length, 1)
    assert.deepEqual(fake.completed, [])
  })

  it('an interrupted upload in parts resumes: the parts the store has are not sent again (nock)', async () => {
    const fake = fakeBucket()
    const size = 4 * 8 * MiB + 1000
    const file = await sparseFile(path.join(work, 'interrupted'), size)
    const object = blobObject(`sha256:${'c'.repeat(64)}`, size)
    fake.failPart = (n) => n === 3
    const first = await fakeBackend()
    await first.describeRemote()
    await assert.rejects(first.putObject(object.path, object, file), /500|InternalError|injected/)
    const pending = fake.savedState().uploads?.[object.path]
    assert.ok(pending, 'the upload id is in the deploy state')
    const sentFirst = new Set(partRequests(fake.requests).filter((r) => r.query.get('partNumber') !== '3').map((r) => Number(r.query.get('partNumber'))))
    assert.ok(sentFirst.size > 0)

    fake.failPart = () => false
    fake.requests.length = 0
    const second = await fakeBackend()
    await second.describeRemote()
    await second.putObject(object.path, object, file)
    const sentSecond = partRequests(fake.requests).map((r) => Number(r.query.get('partNumber'))).sort((a, b) => a - b)
    assert.deepEqual(sentSecond, [1, 2, 3, 4, 5].filter((n) => !sentFirst.has(n)), 'only the parts the store did not have')
    assert.equal(fake.requests.filter((r) => r.method === 'POST' && r.query.has('uploads')).length, 0, 'the same upload, not a new one')
    assert.deepEqual(fake.completed, [{key: object.path, parts: [1, 2, 3, 4, 5]}])
    assert.deepEqual(fake.savedState().uploads, {}, 'a complete upload leaves the state')
  })

  it('a 6 GiB sparse blob whose store has every part but the last sends the last part only (nock)', async () => {
    const fake = fakeBucket()
    const size = 6 * GiB + 123
    const partSize = partSizeFor(size)
    const count = Math.ceil(size / partSize)
    const file = await sparseFile(path.join(work, 'six-gib'), size)
    const object = blobObject(`sha256:${'d'.repeat(64)}`, size)
    // What a deploy interrupted at its last part leaves: the upload, its parts, the state naming it.
    fake.uploads.set('U-left', new Map(Array.from({length: count - 1}, (_, i) => [i + 1, partSize])))
    fake.state = JSON.stringify({unreferenced: {}, uploads: {[object.path]: {uploadId: 'U-left', digest: object.digest, size, partSize, started: new Date().toISOString()}}})
    const backend = await fakeBackend()
    await backend.describeRemote()
    await backend.putObject(object.path, object, file)
    const sent = partRequests(fake.requests)
    assert.deepEqual(sent.map((r) => [r.query.get('partNumber'), r.headers['content-length']]), [[String(count), String(size - (count - 1) * partSize)]])
    assert.equal(fake.requests.filter((r) => r.method === 'GET' && r.query.has('uploadId')).length, 2, 'the parts listed in pages')
    assert.deepEqual(fake.completed, [{key: object.path, parts: Array.from({length: count}, (_, i) => i + 1)}])
  })

  it('an upload left too long ago is aborted, not resumed; one of other bytes starts afresh', async () => {
    const fake = fakeBucket()
    const size = 9 * MiB
    const file = await sparseFile(path.join(work, 'stale'), size)
    const object = blobObject(`sha256:${'e'.repeat(64)}`, size)
    const other = blobObject(`sha256:${'f'.repeat(64)}`, size, 'team/other')
    const gone = blobObject(`sha256:${'7'.repeat(64)}`, size, 'team/gone')
    const old = new Date(Date.now() - 4 * DAY).toISOString()
    for (const id of ['U-stale', 'U-other', 'U-gone']) fake.uploads.set(id, new Map([[1, partSizeFor(size)]]))
    fake.state = JSON.stringify({unreferenced: {}, uploads: {
      [object.path]: {uploadId: 'U-stale', digest: object.digest, size, partSize: partSizeFor(size), started: old},
      [other.path]: {uploadId: 'U-other', digest: `sha256:${'0'.repeat(64)}`, size, partSize: partSizeFor(size), started: new Date().toISOString()},
      [gone.path]: {uploadId: 'U-gone', digest: gone.digest, size, partSize: partSizeFor(size), started: old},
    }})
    const backend = await fakeBackend()
    await backend.describeRemote()
    const aborted = () => fake.requests.filter((r) => r.method === 'DELETE').map((r) => r.query.get('uploadId'))
    assert.deepEqual(aborted(), [], 'reading the state changes nothing (a dry run touches nothing)')
    await backend.putObject(object.path, object, file)
    await backend.putObject(other.path, other, file)
    assert.deepEqual(aborted(), ['U-stale', 'U-other'], 'too old, or of other bytes: aborted, and sent afresh')
    assert.equal(partRequests(fake.requests).length, 4, 'both sent whole, two parts each')
    await backend.recordUnreferenced!(new Map())
    assert.deepEqual(aborted(), ['U-stale', 'U-other', 'U-gone'], 'an old upload no step resumed is aborted when the deploy records its state')
    assert.deepEqual(fake.savedState().uploads, {})
  })

  it('Netlify refuses a blob over its file size before reading a byte of it, and says to use R2 or S3', async () => {
    const backend = await netlifyBackend.create({site: 'some-site', auth: 'token', 'api-url': FAKE})
    const object = blobObject(`sha256:${'9'.repeat(64)}`, 6 * GiB)
    // The file does not exist: a refusal that read it would fail otherwise.
    await assert.rejects(backend.putObject(`_registry/blobs/${object.digest}`, object, path.join(work, 'no-such-file')), (error: Error & {hint?: string}) =>
      /is 6442450944 bytes, over the \d+ bytes this host takes per file/.test(error.message) && /--backend s3 or --backend r2/.test(error.hint ?? ''))
  })

  it('uploads a blob in parts to s3rver with its headers, bytes intact', async () => {
    const size = 2 * 8 * MiB + 4321
    const file = await sparseFile(path.join(work, 's3rver-blob'), size)
    const digest = `sha256:${createHash('sha256').update(Buffer.alloc(size)).digest('hex')}`
    const object = blobObject(digest, size)
    const backend: Backend = await createS3Backend('s3', {bucket: S3_BUCKET, 'key-prefix': 'parts'}, {region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true})
    await backend.describeRemote()
    await backend.putObject(`parts/${object.path}`, object, file)
    const response = await fetch(`${s3.endpoint}/${S3_BUCKET}/parts/${object.path}`)
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'application/octet-stream')
    assert.equal(response.headers.get('x-amz-meta-docker-content-digest'), digest)
    assert.equal(`sha256:${createHash('sha256').update(Buffer.from(await response.arrayBuffer())).digest('hex')}`, digest)
    const state = await (await fetch(`${s3.endpoint}/${S3_BUCKET}/parts/.reg-state.json`)).json() as {uploads: object}
    assert.deepEqual(state.uploads, {}, 'the upload left the deploy state when complete')
    await writeFile(file, '')
  })

  it('a whole deploy of several blobs in parts prints no warning (every request in flight listens to one abort signal)', async () => {
    const layouts: string[] = []
    for (const name of ['one', 'two', 'three', 'four']) {
      // Random bytes (base64) do not compress: each layer stays over the 8 MiB of one request.
      const layout = path.join(work, `parts-${name}`)
      await writeTinyOciLayout(layout, {'big.bin': randomBytes(20 * MiB).toString('base64')}, '1')
      layouts.push(`oci:${layout}:1=parts/${name}:1`)
    }
    const tree = path.join(work, 'parts-tree')
    assert.equal((await runReg(['build', ...layouts, '-o', tree])).code, 0)
    const deployed = await runRegProcess(['deploy', tree, '--backend', 's3', '--bucket', S3_BUCKET, '--key-prefix', 'whole/', '--endpoint', s3.endpoint, '--force-path-style'], {env: S3_CREDENTIALS})
    assert.equal(deployed.code, 0, deployed.stderr)
    assert.match(deployed.stdout, /did upload \d+ objects \(\d+\.\d MiB\)/)
    assert.equal(deployed.stderr, '')
  })
})

