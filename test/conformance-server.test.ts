// reg serve against what the distribution spec requires of a registry, one behaviour per test:
// manifest DELETE by digest, OCI-Subject on pushes, the referrers API (filtering, referrers pushed
// by digest, never a 404), chunk order on the closing PUT, and the read-only server's referrers.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {type RunningServer, startRegistryServer} from '../src/server/registry-server.js'
import {run} from './clients.js'
import {requireTool} from './static-hosts.js'
import {removeTempDirs, tempDir} from './support.js'

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex')
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
const EMPTY_INDEX = {schemaVersion: 2, mediaType: OCI_INDEX, manifests: []}

interface Pushed {
  digest: string
  size: number
  body: string
}

async function errorCode(res: Response): Promise<string> {
  return ((await res.json()) as {errors: Array<{code: string}>}).errors[0].code
}

/** A client of one server: monolithic blob pushes, manifest PUTs, plain requests. */
function client(server: RunningServer) {
  const request = (urlPath: string, init?: RequestInit) => fetch(server.url + urlPath, init)
  return {
    request,
    async blob(name: string, content: string): Promise<{digest: string; size: number}> {
      const digest = sha(content)
      const res = await request(`/v2/${name}/blobs/uploads/?digest=${digest}`, {method: 'POST', body: content})
      assert.equal(res.status, 201, `blob push into ${name}`)
      return {digest, size: Buffer.byteLength(content)}
    },
    async manifest(name: string, reference: string | undefined, manifest: Record<string, unknown>): Promise<Pushed & {res: Response}> {
      const body = JSON.stringify(manifest)
      const digest = sha(body)
      const res = await request(`/v2/${name}/manifests/${reference ?? digest}`, {method: 'PUT', body, headers: {'Content-Type': String(manifest.mediaType)}})
      assert.equal(res.status, 201, `manifest push to ${name}:${reference ?? digest}: ${res.status === 201 ? '' : await res.clone().text()}`)
      return {digest, size: Buffer.byteLength(body), body, res}
    },
  }
}

/** An image manifest of `name` with a config and a layer of its own (pushed first). */
async function pushImage(c: ReturnType<typeof client>, name: string, reference: string | undefined, seed: string, extra: Record<string, unknown> = {}, configMediaType = 'application/vnd.oci.image.config.v1+json'): Promise<Pushed & {res: Response}> {
  const config = await c.blob(name, JSON.stringify({architecture: 'amd64', os: 'linux', seed}))
  const layer = await c.blob(name, `layer of ${seed}`)
  return c.manifest(name, reference, {
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: {mediaType: configMediaType, ...config},
    layers: [{mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer}],
    ...extra,
  })
}

describe('reg serve and the distribution spec', () => {
  let work: string
  let server: RunningServer
  let c: ReturnType<typeof client>

  before(async () => {
    requireTool('skopeo')
    work = await tempDir()
    server = await startRegistryServer(path.join(work, 'tree'), {port: 0, push: {allowDelete: true}})
    c = client(server)
  })
  after(async () => {
    await server?.close()
    await removeTempDirs()
  })

  it('DELETE by digest removes the manifest from its repository (tags, untagged, pushed), only there; refuses one a kept index lists', async () => {
    const name = 'del/app'
    // pushed by digest only: untagged, and served by digest
    const untagged = await pushImage(c, name, undefined, 'untagged')
    await pushImage(c, name, undefined, 'untagged') // a second push keeps one entry
    const index = JSON.parse(await readFile(path.join(work, 'tree', 'registry.json'), 'utf8')) as {repositories: Record<string, {untagged?: string[]}>}
    assert.deepEqual(index.repositories[name].untagged, [untagged.digest])
    assert.equal((await c.request(`/v2/${name}/manifests/${untagged.digest}`)).status, 200)
    const deleted = await c.request(`/v2/${name}/manifests/${untagged.digest}`, {method: 'DELETE'})
    assert.equal(deleted.status, 202)
    for (const method of ['GET', 'HEAD']) assert.equal((await c.request(`/v2/${name}/manifests/${untagged.digest}`, {method})).status, 404, method)
    assert.equal(await errorCode(await c.request(`/v2/${name}/manifests/${untagged.digest}`)), 'MANIFEST_UNKNOWN')
    // tagged twice here and also in another repository: both tags go, the other repository keeps it
    const tagged = await pushImage(c, name, '1.0', 'tagged')
    await c.manifest(name, 'latest', JSON.parse(tagged.body) as Record<string, unknown>)
    await pushImage(c, 'del/keep', '1.0', 'tagged')
    assert.equal((await c.request(`/v2/${name}/manifests/${tagged.digest}`, {method: 'DELETE'})).status, 202)
    for (const reference of [tagged.digest, '1.0', 'latest']) assert.equal((await c.request(`/v2/${name}/manifests/${reference}`, {method: 'HEAD'})).status, 404, reference)
    assert.equal((await c.request(`/v2/del/keep/manifests/${tagged.digest}`, {method: 'HEAD'})).status, 200, 'another repository keeps it')
    assert.equal((await c.request('/v2/del/keep/manifests/1.0', {method: 'HEAD'})).status, 200)
    // pushed by tag, tag deleted: still served by digest until deleted by digest
    const retagged = await pushImage(c, name, '2.0', 'retagged')
    assert.equal((await c.request(`/v2/${name}/manifests/2.0`, {method: 'DELETE'})).status, 202)
    assert.equal((await c.request(`/v2/${name}/manifests/${retagged.digest}`, {method: 'HEAD'})).status, 200)
    assert.equal((await c.request(`/v2/${name}/manifests/${retagged.digest}`, {method: 'DELETE'})).status, 202)
    assert.equal((await c.request(`/v2/${name}/manifests/${retagged.digest}`, {method: 'HEAD'})).status, 404)
    // unknown in this repository
    const unknown = await c.request(`/v2/${name}/manifests/${sha('never pushed')}`, {method: 'DELETE'})
    assert.equal(unknown.status, 404)
    assert.equal(await errorCode(unknown), 'MANIFEST_UNKNOWN')
    // a child of a kept index: refused until the index goes
    const child = await pushImage(c, name, undefined, 'child')
    const parent = await c.manifest(name, 'multi', {schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{mediaType: OCI_MANIFEST, digest: child.digest, size: child.size, platform: {os: 'linux', architecture: 'amd64'}}]})
    const refused = await c.request(`/v2/${name}/manifests/${child.digest}`, {method: 'DELETE'})
    assert.equal(refused.status, 409)
    assert.equal(await errorCode(refused), 'DENIED')
    assert.equal((await c.request(`/v2/${name}/manifests/${child.digest}`, {method: 'HEAD'})).status, 200, 'nothing was deleted')
    assert.equal((await c.request(`/v2/${name}/manifests/${parent.digest}`, {method: 'DELETE'})).status, 202)
    assert.equal((await c.request(`/v2/${name}/manifests/${child.digest}`, {method: 'DELETE'})).status, 202)
    // nothing left: the repository leaves the catalog
    const catalog = (await (await c.request('/v2/_catalog')).json()) as {repositories: string[]}
    assert.deepEqual(catalog.repositories, ['del/keep'])
    // deletion off: 405 for every DELETE
    const readOnly = await startRegistryServer(path.join(work, 'no-delete'), {port: 0, push: true})
    try {
      const ro = client(readOnly)
      const kept = await pushImage(ro, name, '1.0', 'kept')
      for (const reference of [kept.digest, '1.0']) {
        const res = await ro.request(`/v2/${name}/manifests/${reference}`, {method: 'DELETE'})
        assert.equal(res.status, 405, reference)
        assert.equal(await errorCode(res), 'UNSUPPORTED')
      }
      assert.equal((await ro.request(`/v2/${name}/manifests/${kept.digest}`, {method: 'HEAD'})).status, 200)
    } finally {
      await readOnly.close()
    }
  })

  it('skopeo delete by digest: skopeo inspect of that digest then fails', async () => {
    const pushed = await pushImage(c, 'del/skopeo', undefined, 'skopeo')
    const hostPort = server.url.replace('http://', '')
    await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${hostPort}/del/skopeo@${pushed.digest}`])
    await run('skopeo', ['delete', '--tls-verify=false', `docker://${hostPort}/del/skopeo@${pushed.digest}`])
    await assert.rejects(run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${hostPort}/del/skopeo@${pushed.digest}`]), /manifest unknown|not found|404/i)
  })

  it('a manifest PUT with a subject answers OCI-Subject, by tag and by digest', async () => {
    const subject = await pushImage(c, 'subj/app', '1.0', 'subject')
    const descriptor = {mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.size}
    const byDigest = await pushImage(c, 'subj/app', undefined, 'sig', {subject: descriptor, artifactType: 'application/vnd.example.sig'})
    assert.equal(byDigest.res.headers.get('oci-subject'), subject.digest)
    const byTag = await pushImage(c, 'subj/app', 'sbom', 'sbom', {subject: descriptor})
    assert.equal(byTag.res.headers.get('oci-subject'), subject.digest)
    const index = await c.manifest('subj/app', undefined, {schemaVersion: 2, mediaType: OCI_INDEX, manifests: [], subject: descriptor})
    assert.equal(index.res.headers.get('oci-subject'), subject.digest, 'an index with a subject too')
    assert.equal(subject.res.headers.get('oci-subject'), null, 'none without a subject')
  })

  it('the referrers API: referrers pushed by digest listed with artifactType and annotations, ?artifactType= filters, never a 404', async () => {
    const name = 'refs/app'
    const subject = await pushImage(c, name, '1.0', 'subject of referrers')
    const descriptor = {mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.size}
    const sbom = await pushImage(c, name, undefined, 'sbom', {subject: descriptor, artifactType: 'application/vnd.example.sbom', annotations: {'org.example.kind': 'sbom'}})
    // no artifactType: the config's media type stands for it
    const signature = await pushImage(c, name, undefined, 'signature', {subject: descriptor, annotations: {'org.example.kind': 'signature'}}, 'application/vnd.example.signature.config')
    const listed = await c.request(`/v2/${name}/referrers/${subject.digest}`)
    assert.equal(listed.status, 200)
    assert.equal(listed.headers.get('content-type'), OCI_INDEX)
    assert.equal(listed.headers.get('oci-filters-applied'), null)
    const all = (await listed.json()) as {schemaVersion: number; mediaType: string; manifests: Array<Record<string, unknown>>}
    assert.equal(all.mediaType, OCI_INDEX)
    assert.deepEqual(all.manifests.sort((a, b) => String(a.digest).localeCompare(String(b.digest))), [
      {mediaType: OCI_MANIFEST, digest: sbom.digest, size: sbom.size, artifactType: 'application/vnd.example.sbom', annotations: {'org.example.kind': 'sbom'}},
      {mediaType: OCI_MANIFEST, digest: signature.digest, size: signature.size, artifactType: 'application/vnd.example.signature.config', annotations: {'org.example.kind': 'signature'}},
    ].sort((a, b) => a.digest.localeCompare(b.digest)))
    const filtered = await c.request(`/v2/${name}/referrers/${subject.digest}?artifactType=${encodeURIComponent('application/vnd.example.sbom')}`)
    assert.equal(filtered.status, 200)
    assert.equal(filtered.headers.get('content-type'), OCI_INDEX)
    assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType')
    assert.deepEqual(((await filtered.json()) as {manifests: Array<{digest: string}>}).manifests.map((m) => m.digest), [sbom.digest])
    const none = await c.request(`/v2/${name}/referrers/${subject.digest}?artifactType=application/vnd.example.none`)
    assert.equal(none.headers.get('oci-filters-applied'), 'artifactType')
    assert.deepEqual(await none.json(), EMPTY_INDEX)
    // no referrers, unknown subject, unknown repository: an empty index, never a 404
    for (const urlPath of [`/v2/${name}/referrers/${sbom.digest}`, `/v2/${name}/referrers/${sha('no such subject')}`, `/v2/refs/unknown/referrers/${subject.digest}`, `/v2/${name}/referrers/${sha('x')}?artifactType=a/b`]) {
      const res = await c.request(urlPath)
      assert.equal(res.status, 200, urlPath)
      assert.equal(res.headers.get('content-type'), OCI_INDEX, urlPath)
      assert.deepEqual(await res.json(), EMPTY_INDEX, urlPath)
    }
    assert.equal((await c.request(`/v2/${name}/referrers/${sha('x')}`, {method: 'HEAD'})).status, 200)
    // a malformed digest is the client's error
    for (const digest of ['sha256:abc', 'not-a-digest', 'sha256:' + 'A'.repeat(64), '']) {
      const res = await c.request(`/v2/${name}/referrers/${digest}`)
      assert.equal(res.status, 400, digest)
      assert.equal(await errorCode(res), 'DIGEST_INVALID', digest)
    }
    // deleting a referrer takes it off the list
    assert.equal((await c.request(`/v2/${name}/manifests/${sbom.digest}`, {method: 'DELETE'})).status, 202)
    const after = (await (await c.request(`/v2/${name}/referrers/${subject.digest}`)).json()) as {manifests: Array<{digest: string}>}
    assert.deepEqual(after.manifests.map((m) => m.digest), [signature.digest])
  })

  it('a referrer whose subject is not in the repository is listed under that subject', async () => {
    const name = 'orphan/app'
    const missing = {mediaType: OCI_MANIFEST, digest: sha('a subject never pushed'), size: 123}
    const referrer = await pushImage(c, name, undefined, 'orphan signature', {subject: missing, artifactType: 'application/vnd.example.sig'})
    assert.equal(referrer.res.headers.get('oci-subject'), missing.digest)
    const listed = await c.request(`/v2/${name}/referrers/${missing.digest}`)
    assert.equal(listed.status, 200)
    assert.deepEqual(((await listed.json()) as {manifests: Array<{digest: string}>}).manifests.map((m) => m.digest), [referrer.digest])
  })

  it('a closing PUT whose final chunk does not start where the upload ends is 416, and the upload stays usable', async () => {
    const name = 'chunks/app'
    const started = await c.request(`/v2/${name}/blobs/uploads/`, {method: 'POST'})
    assert.equal(started.status, 202)
    const location = started.headers.get('location')!
    const first = await c.request(location, {method: 'PATCH', body: '0123456789', headers: {'Content-Range': '0-9', 'Content-Type': 'application/octet-stream'}})
    assert.equal(first.status, 202)
    const whole = '0123456789abcdefghij'
    const outOfOrder = await c.request(`${location}?digest=${sha(whole)}`, {method: 'PUT', body: 'abcdefghij', headers: {'Content-Range': '11-20', 'Content-Type': 'application/octet-stream'}})
    assert.equal(outOfOrder.status, 416)
    assert.equal(outOfOrder.headers.get('range'), '0-9', 'what the upload holds')
    assert.equal((await c.request(`/v2/${name}/blobs/${sha(whole)}`, {method: 'HEAD'})).status, 404)
    const closed = await c.request(`${location}?digest=${sha(whole)}`, {method: 'PUT', body: 'abcdefghij', headers: {'Content-Range': '10-19', 'Content-Type': 'application/octet-stream'}})
    assert.equal(closed.status, 201)
    assert.equal(await (await c.request(`/v2/${name}/blobs/${sha(whole)}`)).text(), whole)
  })

  it('read-only reg serve: the referrers of a digest with no referrers are an empty index', async () => {
    const dir = path.join(work, 'seeded')
    const pushing = await startRegistryServer(dir, {port: 0, push: true})
    const image = await pushImage(client(pushing), 'ro/app', '1.0', 'read-only')
    await pushing.close()
    const readOnly = await startRegistryServer(dir, {port: 0})
    try {
      const ro = client(readOnly)
      for (const digest of [image.digest, sha('not in the tree')]) {
        for (const method of ['GET', 'HEAD']) {
          const res = await ro.request(`/v2/ro/app/referrers/${digest}`, {method})
          assert.equal(res.status, 200, `${method} ${digest}`)
          assert.equal(res.headers.get('content-type'), OCI_INDEX)
          if (method === 'GET') assert.deepEqual(await res.json(), EMPTY_INDEX)
        }
      }
    } finally {
      await readOnly.close()
    }
  })
})
