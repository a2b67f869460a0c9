// reg serve --push against hostile pushers: a descriptor never resizes a stored blob, a layer is
// never read as a manifest, a repository serves only what it references, uploads belong to their
// repository and are checked and purged, and password checks neither stall the server nor tell
// known users from unknown ones.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdir, readFile, stat, truncate, utimes, writeFile} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {setTimeout as sleep} from 'node:timers/promises'
import {PasswordChecker} from '../src/server/push-auth.js'
import {readHtpasswd} from '../src/server/push.js'
import {requireTool} from './static-hosts.js'
import {removeTempDirs, type ServeProcess, startServe, tempDir} from './support.js'

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex')
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
const CONFIG = Buffer.from(JSON.stringify({architecture: 'amd64', os: 'linux', rootfs: {type: 'layers', diff_ids: []}}))
const LAYER = Buffer.from('a layer of some size, '.repeat(100))

const imageManifest = (layer: {digest: string; size: number}) => Buffer.from(JSON.stringify({
  schemaVersion: 2, mediaType: OCI_MANIFEST,
  config: {mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(CONFIG), size: CONFIG.length},
  layers: [{mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer}],
}))

async function errorCode(res: Response): Promise<string | undefined> {
  return ((await res.json()) as {errors?: Array<{code: string}>}).errors?.[0]?.code
}

function pushBlob(url: string, name: string, bytes: Buffer, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}/v2/${name}/blobs/uploads/?digest=${sha(bytes)}`, {method: 'POST', body: new Uint8Array(bytes), headers})
}

function putManifest(url: string, name: string, reference: string, body: Buffer, mediaType = OCI_MANIFEST, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}/v2/${name}/manifests/${reference}`, {method: 'PUT', body: new Uint8Array(body), headers: {'Content-Type': mediaType, ...headers}})
}

/** A PATCH sent with chunked transfer encoding (no Content-Length): the server can only count. */
function patchChunked(location: URL, contentRange: string, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(location, {method: 'PATCH', headers: {'Content-Type': 'application/octet-stream', 'Content-Range': contentRange}}, (res) => {
      res.resume()
      resolve(res.statusCode!)
    })
    req.on('error', reject)
    req.write(body.subarray(0, 3))
    req.end(body.subarray(3))
  })
}

describe('reg serve --push: hostile pushes', () => {
  let work: string
  let tree: string
  let server: ServeProcess

  before(async () => {
    work = await tempDir()
    tree = path.join(work, 'tree')
    server = await startServe(tree, ['--push'])
  })
  after(async () => {
    await server?.stop()
    await removeTempDirs()
  })

  it('a manifest cannot change the size of a stored blob', async () => {
    assert.equal((await pushBlob(server.url, 'size/app', CONFIG)).status, 201)
    assert.equal((await pushBlob(server.url, 'size/app', LAYER)).status, 201)
    const lying = await putManifest(server.url, 'size/app', '1', imageManifest({digest: sha(LAYER), size: 1}))
    assert.equal(lying.status, 400)
    const body = (await lying.json()) as {errors: Array<{code: string; message: string}>}
    assert.equal(body.errors[0].code, 'SIZE_INVALID')
    assert.match(body.errors[0].message, new RegExp(`${sha(LAYER)} is ${LAYER.length} bytes, the manifest says 1`))
    const head = await fetch(`${server.url}/v2/size/app/blobs/${sha(LAYER)}`, {method: 'HEAD'})
    assert.equal(head.headers.get('content-length'), String(LAYER.length))
    assert.equal((await fetch(`${server.url}/v2/size/app/tags/list`)).status, 404, 'nothing was tagged')
    const index = JSON.parse(await readFile(path.join(tree, 'registry.json'), 'utf8')) as {blobs: Record<string, {size: number}>}
    assert.equal(index.blobs[sha(LAYER)], undefined)
    // An index cannot resize the manifests it lists either.
    const manifest = imageManifest({digest: sha(LAYER), size: LAYER.length})
    assert.equal((await putManifest(server.url, 'size/app', sha(manifest), manifest)).status, 201)
    const index2 = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{mediaType: OCI_MANIFEST, digest: sha(manifest), size: manifest.length + 7}]}))
    const lyingIndex = await putManifest(server.url, 'size/app', '2', index2, OCI_INDEX)
    assert.equal(lyingIndex.status, 400)
    assert.equal(await errorCode(lyingIndex), 'SIZE_INVALID')
    // The truth is accepted.
    assert.equal((await putManifest(server.url, 'size/app', '1', manifest)).status, 201)
  })

  it('a stored layer asked for as a manifest is unknown and never read; manifests are still served as blobs', async () => {
    // 256 MiB of zeros, placed straight into the store (sparse): the store has it, no repository names it.
    const size = 256 * 1024 * 1024
    const hash = createHash('sha256')
    const mib = Buffer.alloc(1024 * 1024)
    for (let i = 0; i < size / mib.length; i++) hash.update(mib)
    const digest = `sha256:${hash.digest('hex')}`
    const file = path.join(tree, 'blobs', 'sha256', digest.slice(7))
    await writeFile(file, '')
    await truncate(file, size)
    const before = (await server.memory()).rss
    const answers = await Promise.all(Array.from({length: 6}, (_, i) => fetch(`${server.url}/v2/any${i}/manifests/${digest}`, {method: i % 2 ? 'HEAD' : 'GET'})))
    for (const [i, res] of answers.entries()) {
      assert.equal(res.status, 404)
      if (i % 2 === 0) assert.equal(await errorCode(res), 'MANIFEST_UNKNOWN')
    }
    const grown = ((await server.memory()).rss) - before
    assert.ok(grown < 50 * 1024 * 1024, `the server grew by ${grown} bytes answering 6 requests`)
    // A blob pushed into a repository is still not a manifest of it.
    assert.equal((await pushBlob(server.url, 'layers/app', LAYER)).status, 201)
    const asManifest = await fetch(`${server.url}/v2/layers/app/manifests/${sha(LAYER)}`)
    assert.equal(asManifest.status, 404)
    assert.equal(await errorCode(asManifest), 'MANIFEST_UNKNOWN')
    // A manifest pushed by digest: served as a manifest and as a blob of its repository, nowhere else.
    assert.equal((await pushBlob(server.url, 'layers/app', CONFIG)).status, 201)
    const manifest = imageManifest({digest: sha(LAYER), size: LAYER.length})
    assert.equal((await putManifest(server.url, 'layers/app', sha(manifest), manifest)).status, 201)
    const byDigest = await fetch(`${server.url}/v2/layers/app/manifests/${sha(manifest)}`)
    assert.equal(byDigest.status, 200)
    assert.equal(byDigest.headers.get('content-type'), OCI_MANIFEST)
    assert.deepEqual(Buffer.from(await byDigest.arrayBuffer()), manifest)
    const asBlob = await fetch(`${server.url}/v2/layers/app/blobs/${sha(manifest)}`)
    assert.equal(asBlob.status, 200)
    assert.deepEqual(Buffer.from(await asBlob.arrayBuffer()), manifest)
    assert.equal((await fetch(`${server.url}/v2/layers/other/manifests/${sha(manifest)}`)).status, 404)
  })

  it('a repository serves only the blobs it references; a mount needs a source repository that references the blob', async () => {
    const blob = Buffer.from('pushed into mount/one only')
    assert.equal((await pushBlob(server.url, 'mount/one', blob)).status, 201)
    assert.equal((await fetch(`${server.url}/v2/mount/one/blobs/${sha(blob)}`, {method: 'HEAD'})).status, 200)
    const elsewhere = await fetch(`${server.url}/v2/mount/two/blobs/${sha(blob)}`)
    assert.equal(elsewhere.status, 404)
    assert.equal(await errorCode(elsewhere), 'BLOB_UNKNOWN')
    assert.equal((await fetch(`${server.url}/v2/mount/two/blobs/${sha(blob)}`, {method: 'HEAD'})).status, 404)
    // Mounting from a repository that does not reference it opens an upload instead (as distribution does).
    const refused = await fetch(`${server.url}/v2/mount/two/blobs/uploads/?mount=${sha(blob)}&from=mount/three`, {method: 'POST'})
    assert.equal(refused.status, 202)
    assert.equal((await fetch(`${server.url}/v2/mount/two/blobs/${sha(blob)}`, {method: 'HEAD'})).status, 404)
    const mounted = await fetch(`${server.url}/v2/mount/two/blobs/uploads/?mount=${sha(blob)}&from=mount/one`, {method: 'POST'})
    assert.equal(mounted.status, 201)
    assert.equal((await fetch(`${server.url}/v2/mount/two/blobs/${sha(blob)}`, {method: 'HEAD'})).status, 200)
    // A manifest cannot reach into content its repository has not got.
    assert.equal((await pushBlob(server.url, 'mount/four', CONFIG)).status, 201)
    const reaching = await putManifest(server.url, 'mount/four', '1', imageManifest({digest: sha(blob), size: blob.length}))
    assert.equal(reaching.status, 400)
    assert.equal(await errorCode(reaching), 'MANIFEST_BLOB_UNKNOWN')
    // Tagged, the blob is served from the tree's index under the tag's repository.
    assert.equal((await pushBlob(server.url, 'mount/one', CONFIG)).status, 201)
    assert.equal((await putManifest(server.url, 'mount/one', '1', imageManifest({digest: sha(blob), size: blob.length}))).status, 201)
    assert.equal((await fetch(`${server.url}/v2/mount/one/blobs/${sha(CONFIG)}`, {method: 'HEAD'})).status, 200)
  })

  it('an upload belongs to the repository it was started in, and its Content-Range is checked', async () => {
    const started = await fetch(`${server.url}/v2/upload/a/blobs/uploads/`, {method: 'POST'})
    assert.equal(started.status, 202)
    const location = new URL(started.headers.get('location')!, server.url)
    const id = location.pathname.split('/').pop()!
    const foreign = `${server.url}/v2/upload/b/blobs/uploads/${id}`
    for (const method of ['PATCH', 'PUT', 'GET', 'DELETE']) {
      const res = await fetch(method === 'PUT' ? `${foreign}?digest=${sha('x')}` : foreign, {method, body: method === 'PATCH' || method === 'PUT' ? 'x' : undefined})
      assert.equal(res.status, 404, method)
      assert.equal(await errorCode(res), 'BLOB_UPLOAD_UNKNOWN', method)
    }
    const status = await fetch(location)
    assert.equal(status.status, 204, 'the upload is intact in its own repository')
    assert.equal(status.headers.get('range'), '0-0')
    const chunk = Buffer.from('0123456789')
    const garbage = await fetch(location, {method: 'PATCH', body: chunk, headers: {'Content-Range': 'bytes=everything'}})
    assert.equal(garbage.status, 400)
    assert.equal(await errorCode(garbage), 'BLOB_UPLOAD_INVALID')
    assert.equal((await fetch(location, {method: 'PATCH', body: chunk.subarray(0, 5), headers: {'Content-Range': '0-9'}})).status, 416, 'Content-Length is not the range')
    assert.equal((await fetch(location, {method: 'PATCH', body: chunk, headers: {'Content-Range': '3-12'}})).status, 416, 'not where the upload ends')
    assert.equal((await fetch(location, {method: 'PATCH', body: chunk, headers: {'Content-Range': '9-0'}})).status, 416, 'backwards')
    assert.equal(await patchChunked(location, '0-9', Buffer.concat([chunk, chunk])), 416, 'more bytes than the range')
    assert.equal(await patchChunked(location, '0-9', chunk.subarray(0, 6)), 416, 'fewer bytes than the range')
    assert.equal((await fetch(location)).headers.get('range'), '0-0', 'nothing of the refused chunks was kept')
    assert.equal(await patchChunked(location, '0-9', chunk), 202)
    const finished = await fetch(`${location.href}?digest=${sha(Buffer.concat([chunk, Buffer.from('!')]))}`, {method: 'PUT', body: '!', headers: {'Content-Range': '10-10'}})
    assert.equal(finished.status, 201)
  })

  it('repository names and tags that are Object.prototype keys are names like any other', async () => {
    for (const name of ['constructor', 'hasownproperty/x', 'tostring']) {
      const blob = Buffer.from(`a blob of ${name}`)
      const res = await pushBlob(server.url, name, blob)
      assert.equal(res.status, 201, name)
      assert.equal((await fetch(`${server.url}/v2/${name}/blobs/${sha(blob)}`, {method: 'HEAD'})).status, 200, name)
      assert.equal((await fetch(`${server.url}/v2/${name}/blobs/uploads/?mount=${sha(blob)}&from=${name}`, {method: 'POST'})).status, 201, name)
    }
    assert.equal((await pushBlob(server.url, 'constructor', CONFIG)).status, 201)
    assert.equal((await pushBlob(server.url, 'constructor', LAYER)).status, 201)
    const manifest = imageManifest({digest: sha(LAYER), size: LAYER.length})
    assert.equal((await putManifest(server.url, 'constructor', sha(manifest), manifest)).status, 201)
    assert.equal((await fetch(`${server.url}/v2/constructor/manifests/${sha(manifest)}`)).status, 200)
    assert.equal((await fetch(`${server.url}/v2/__proto__/manifests/${sha(manifest)}`)).status, 404)
    assert.equal((await fetch(`${server.url}/v2/constructor/blobs/uploads/__proto__`)).status, 404)
    // Tags of those names are published into the tree and served like any other.
    for (const tag of ['__proto__', 'constructor', 'hasOwnProperty', 'toString']) {
      assert.equal((await putManifest(server.url, 'constructor', tag, manifest)).status, 201, tag)
      const res = await fetch(`${server.url}/v2/constructor/manifests/${tag}`, {method: 'HEAD'})
      assert.equal(res.status, 200, tag)
      assert.equal(res.headers.get('docker-content-digest'), sha(manifest))
    }
    const listed = await (await fetch(`${server.url}/v2/constructor/tags/list`)).json() as {tags: string[]}
    assert.deepEqual(listed.tags, ['__proto__', 'constructor', 'hasOwnProperty', 'toString'])
    assert.equal((await fetch(`${server.url}/v2/constructor/manifests/valueOf`, {method: 'HEAD'})).status, 404)
  })

  it('unfinished uploads are purged after --upload-ttl, at start and while serving; what was pushed stays', async () => {
    const purged = path.join(work, 'purged')
    const uploads = `${purged}.reg-uploads`
    await mkdir(uploads, {recursive: true})
    const stale = '00000000-0000-4000-8000-000000000000'
    await writeFile(path.join(uploads, stale), 'abandoned yesterday')
    await writeFile(path.join(uploads, `${stale}.repository`), 'old/app')
    const yesterday = new Date(Date.now() - 24 * 3600 * 1000)
    for (const name of [stale, `${stale}.repository`]) await utimes(path.join(uploads, name), yesterday, yesterday)
    let serving: ServeProcess | undefined
    try {
      serving = await startServe(purged, ['--push', '--upload-ttl', '2s'])
      const blob = Buffer.from('pushed, and kept')
      assert.equal((await pushBlob(serving.url, 'kept/app', blob)).status, 201)
      const started = await fetch(`${serving.url}/v2/kept/app/blobs/uploads/`, {method: 'POST'})
      const location = new URL(started.headers.get('location')!, serving.url)
      assert.equal((await fetch(location, {method: 'PATCH', body: 'half'})).status, 202)
      let answer = 0
      for (let i = 0; i < 200 && answer !== 404; i++) {
        await sleep(100)
        answer = (await fetch(location)).status
      }
      assert.equal(answer, 404, 'the idle upload was purged')
      await assert.rejects(stat(path.join(uploads, stale)), /ENOENT/, 'the stale upload was purged at start')
      await assert.rejects(stat(path.join(uploads, `${stale}.repository`)), /ENOENT/)
      assert.equal((await fetch(`${serving.url}/v2/kept/app/blobs/${sha(blob)}`, {method: 'HEAD'})).status, 200)
    } finally {
      await serving?.stop()
    }
    await assert.rejects(startServe(path.join(work, 'zero-ttl'), ['--push', '--upload-ttl', '0']), /--upload-ttl must be at least 1s/)
  })
})

describe('reg serve --push --push-auth: password checks', () => {
  let work: string
  before(async () => {
    requireTool('htpasswd')
    work = await tempDir()
  })
  after(removeTempDirs)

  const htpasswd = async (file: string, cost: number, user: string, password: string) => {
    await writeFile(file, execFileSync('htpasswd', ['-nbB', '-C', String(cost), user, password], {encoding: 'utf8'}))
    return file
  }
  const basic = (user: string, password: string) => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64')

  it('an htpasswd file is read bounded: a huge one is refused, not read whole', async () => {
    const file = path.join(work, 'huge.htpasswd')
    // Comment lines only: read whole, it would parse (as no users at all).
    await writeFile(file, '#'.repeat(1023).concat('\n').repeat(5 * 1024))
    await assert.rejects(readHtpasswd(file), (error: Error) => error.message === `--push-auth ${file} is larger than 4194304 bytes`)
    await assert.rejects(readHtpasswd(path.join(work, 'missing.htpasswd'), '--read-auth'), (error: Error) => error.message === `--read-auth ${path.join(work, 'missing.htpasswd')}: no such file`)
  })

  it('wrong passwords being checked never hold up anonymous reads', async () => {
    const server = await startServe(path.join(work, 'slow'), ['--push', '--push-auth', await htpasswd(path.join(work, 'slow.htpasswd'), 12, 'pusher', 'right')])
    try {
      let pending = 4
      const writes = Array.from({length: pending}, (_, i) => fetch(`${server.url}/v2/team/app/blobs/uploads/`, {method: 'POST', headers: {Authorization: basic('pusher', `wrong-${i}`)}}).then((res) => {
        pending--
        return res.status
      }))
      // Reads one after the other, each answered before the next is sent, while the checks run.
      let reads = 0
      while (pending > 0 && reads < 50) {
        assert.equal((await fetch(`${server.url}/v2/team/app/tags/list`)).status, 404)
        reads++
      }
      const answered = await Promise.all(writes)
      assert.equal(reads, 50, `only ${reads} reads were answered while ${answered.length} password checks ran`)
      assert.deepEqual(answered, [401, 401, 401, 401])
    } finally {
      await server.stop()
    }
  })

  it('an unknown user costs one bcrypt comparison, like a known one; a right password is checked once', async () => {
    const [user, hash] = execFileSync('htpasswd', ['-nbB', '-C', '5', 'known', 'right'], {encoding: 'utf8'}).trim().split(':')
    const checker = new PasswordChecker(new Map([[user, hash]]))
    try {
      assert.equal(await checker.check('nobody', 'whatever', 'a'), 'denied')
      assert.equal(checker.verifications, 1, 'the unknown user was compared against a hash')
      assert.equal(await checker.check('known', 'wrong', 'a'), 'denied')
      assert.equal(checker.verifications, 2)
      assert.deepEqual(await Promise.all([checker.check('known', 'right', 'a'), checker.check('known', 'right', 'b')]), ['ok', 'ok'])
      assert.equal(await checker.check('known', 'right', 'c'), 'ok')
      assert.equal(checker.verifications, 3, 'parallel and repeated checks of the same credentials share one comparison')
      // Names that are Object.prototype keys are unknown users, compared like any other.
      assert.equal(await checker.check('constructor', 'x', 'a'), 'denied')
      assert.equal(await checker.check('__proto__', 'x', 'a'), 'denied')
      assert.equal(checker.verifications, 5)
    } finally {
      await checker.close()
    }
  })

  it('repeated failures from one address get 429; upload status and cancellation need credentials', async () => {
    const server = await startServe(path.join(work, 'guarded'), ['--push', '--push-auth', await htpasswd(path.join(work, 'fast.htpasswd'), 4, 'pusher', 'right')])
    try {
      const uploads = `${server.url}/v2/team/app/blobs/uploads/`
      const started = await fetch(uploads, {method: 'POST', headers: {Authorization: basic('pusher', 'right')}})
      assert.equal(started.status, 202)
      const location = new URL(started.headers.get('location')!, server.url)
      assert.equal((await fetch(location)).status, 401, 'upload status without credentials')
      assert.equal((await fetch(location, {method: 'DELETE'})).status, 401, 'cancel without credentials')
      assert.equal((await fetch(location, {headers: {Authorization: basic('pusher', 'right')}})).status, 204)
      const statuses: number[] = []
      for (let i = 0; i < 12; i++) statuses.push((await fetch(uploads, {method: 'POST', headers: {Authorization: basic(i % 2 ? 'pusher' : 'nobody', `guess-${i}`)}})).status)
      assert.deepEqual(statuses, [...Array(10).fill(401), 429, 429])
      const throttled = await fetch(uploads, {method: 'POST', headers: {Authorization: basic('pusher', 'not-checked-now')}})
      assert.equal(throttled.status, 429)
      assert.equal(await errorCode(throttled), 'TOOMANYREQUESTS')
      assert.ok(throttled.headers.get('retry-after'))
      // A password proven before stays good (it teaches a guesser nothing); reads stay anonymous.
      assert.equal((await fetch(location, {method: 'DELETE', headers: {Authorization: basic('pusher', 'right')}})).status, 204)
      assert.equal((await fetch(`${server.url}/v2/team/app/tags/list`)).status, 404)
    } finally {
      await server.stop()
    }
  })
})
