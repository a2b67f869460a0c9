// `reg serve` answers exactly the URL space and headers of every object of a tree, as a static host serves them.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {startRegistryServer, type RunningServer} from '../src/server/registry-server.js'
import type {TreeIndex} from '../src/tree/model.js'
import {EXAMPLE_LAYOUT, removeTempDirs, runReg, tempDir, writeTinyOciLayout} from './support.js'
import {RegistryTree} from '../src/tree/registry-tree.js'

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex')

describe('reg serve', () => {
  let tree: string
  let server: RunningServer
  let index: TreeIndex
  let work: string

  before(async () => {
    work = await tempDir()
    tree = path.join(work, 'tree')
    const second = path.join(work, 'second')
    await writeTinyOciLayout(second, {'b.txt': 'second image\n'}, 'b')
    const built = await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, `oci:${second}=team/app:2.0`, `oci:${EXAMPLE_LAYOUT}=team/app:1.0`, `oci:${EXAMPLE_LAYOUT}=team/app:1.1`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    index = (await RegistryTree.load(tree)).index
    server = await startRegistryServer(tree, {port: 0})
  })
  after(async () => {
    await server?.close()
    await removeTempDirs()
  })

  const get = (p: string, init: RequestInit = {}) => fetch(server.url + p, {redirect: 'manual', ...init})

  it('serves every object of the tree with its headers, on GET and HEAD', async () => {
    assert.ok(index.objects.length >= 10)
    for (const object of index.objects) {
      for (const method of ['GET', 'HEAD']) {
        const res = await get('/' + object.path, {method})
        assert.equal(res.status, 200, `${method} ${object.path}`)
        for (const [name, value] of Object.entries(object.headers)) assert.equal(res.headers.get(name), value, `${method} ${object.path} ${name}`)
        assert.equal(res.headers.get('content-length'), String(object.size), `${method} ${object.path} Content-Length`)
        const body = Buffer.from(await res.arrayBuffer())
        if (method === 'GET') assert.equal(sha(body), object.digest, `${object.path} body`)
        else assert.equal(body.length, 0)
      }
    }
  })

  it('sends the headers of each object class', async () => {
    const manifestDigest = index.repositories['team/app'].tags['1.0']
    const tag = await get('/v2/team/app/manifests/1.0')
    assert.equal(tag.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json')
    assert.equal(tag.headers.get('docker-content-digest'), manifestDigest)
    assert.equal(tag.headers.get('cache-control'), 'public, max-age=60')
    assert.equal(tag.headers.get('docker-distribution-api-version'), 'registry/2.0')
    const byDigest = await get(`/v2/team/app/manifests/${manifestDigest}`)
    assert.equal(byDigest.headers.get('cache-control'), 'public, max-age=31536000, immutable')
    assert.deepEqual(Buffer.from(await byDigest.arrayBuffer()), Buffer.from(await tag.arrayBuffer()), 'tag and digest serve the same bytes')
    const blob = index.manifests[manifestDigest].blobs[1]
    const blobRes = await get(`/v2/team/app/blobs/${blob}`)
    assert.equal(blobRes.headers.get('content-type'), 'application/octet-stream')
    assert.equal(blobRes.headers.get('docker-content-digest'), blob)
    assert.equal(blobRes.headers.get('cache-control'), 'public, max-age=31536000, immutable')
    const root = await get('/v2/')
    assert.equal(root.status, 200)
    assert.equal(root.headers.get('content-type'), 'application/json')
    assert.deepEqual(await root.json(), {})
    const noSlash = await get('/v2')
    assert.equal(noSlash.status, 301)
    assert.equal(noSlash.headers.get('location'), '/v2/')
    assert.deepEqual(await (await get('/v2/team/app/tags/list')).json(), {name: 'team/app', tags: ['1.0', '1.1', '2.0']})
    assert.deepEqual(await (await get('/v2/_catalog')).json(), {repositories: ['examples/hello', 'team/app']})
  })

  it('answers Range requests on blobs', async () => {
    const blob = index.manifests[index.repositories['team/app'].tags['1.0']].blobs[1]
    const whole = await readFile(path.join(tree, 'blobs', 'sha256', blob.slice(7)))
    const first = await get(`/v2/team/app/blobs/${blob}`, {headers: {Range: 'bytes=0-9'}})
    assert.equal(first.status, 206)
    assert.equal(first.headers.get('content-range'), `bytes 0-9/${whole.length}`)
    assert.deepEqual(Buffer.from(await first.arrayBuffer()), whole.subarray(0, 10))
    const rest = await get(`/v2/team/app/blobs/${blob}`, {headers: {Range: 'bytes=10-'}})
    assert.deepEqual(Buffer.from(await rest.arrayBuffer()), whole.subarray(10))
    const suffix = await get(`/v2/team/app/blobs/${blob}`, {headers: {Range: 'bytes=-5'}})
    assert.deepEqual(Buffer.from(await suffix.arrayBuffer()), whole.subarray(whole.length - 5))
    const beyond = await get(`/v2/team/app/blobs/${blob}`, {headers: {Range: `bytes=${whole.length}-`}})
    assert.equal(beyond.status, 416)
    assert.equal(beyond.headers.get('content-range'), `bytes */${whole.length}`)
  })

  it('answers spec JSON errors with 404, and never serves the tree internals', async () => {
    const cases: Array<[string, string]> = [
      ['/v2/team/app/manifests/nope', 'MANIFEST_UNKNOWN'],
      ['/v2/team/app/manifests/sha256:' + '0'.repeat(64), 'MANIFEST_UNKNOWN'],
      ['/v2/team/app/blobs/sha256:' + '0'.repeat(64), 'BLOB_UNKNOWN'],
      ['/v2/no/such/tags/list', 'NAME_UNKNOWN'],
      ['/v2/team/app', 'NAME_UNKNOWN'],
      ['/v2/team/', 'NAME_UNKNOWN'],
      ['/registry.json', 'NAME_UNKNOWN'],
      ['/index.json', 'NAME_UNKNOWN'],
      ['/blobs/sha256/' + index.repositories['team/app'].tags['1.0'].slice(7), 'NAME_UNKNOWN'],
      ['/v2/../registry.json', 'NAME_UNKNOWN'],
    ]
    for (const [url, code] of cases) {
      const res = await get(url)
      assert.equal(res.status, 404, url)
      assert.equal(res.headers.get('content-type'), 'application/json', url)
      assert.equal(res.headers.get('cache-control'), 'no-store', url)
      const body = await res.json() as {errors: Array<{code: string}>}
      assert.equal(body.errors[0].code, code, url)
    }
  })

  it('refuses methods other than GET and HEAD with 405', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const res = await get('/v2/team/app/manifests/1.0', {method, body: method === 'DELETE' ? undefined : '{}'})
      assert.equal(res.status, 405, method)
      assert.equal(res.headers.get('allow'), 'GET, HEAD')
      assert.equal(((await res.json()) as {errors: Array<{code: string}>}).errors[0].code, 'UNSUPPORTED')
    }
  })

  it('pages tags/list with n and last', async () => {
    const page = await get('/v2/team/app/tags/list?n=2')
    assert.deepEqual(await page.json(), {name: 'team/app', tags: ['1.0', '1.1']})
    assert.equal(page.headers.get('link'), '</v2/team/app/tags/list?n=2&last=1.1>; rel="next"')
    const next = await get('/v2/team/app/tags/list?n=2&last=1.1')
    assert.deepEqual(await next.json(), {name: 'team/app', tags: ['2.0']})
    assert.equal(next.headers.get('link'), null)
  })

  it('answers the referrers API with an (empty) OCI index for a known manifest', async () => {
    const res = await get(`/v2/team/app/referrers/${index.repositories['team/app'].tags['1.0']}`)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json')
    assert.deepEqual(await res.json(), {schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: []})
  })

  it('picks up a rebuilt tree without a restart', async () => {
    const third = path.join(work, 'third')
    await writeTinyOciLayout(third, {'c.txt': 'third\n'}, 'c')
    const built = await runReg(['build', `oci:${third}=team/new:1`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    assert.equal((await get('/v2/team/new/manifests/1')).status, 200)
    assert.equal((await get('/v2/team/app/manifests/2.0')).status, 200, 'earlier images stay')
  })
})
