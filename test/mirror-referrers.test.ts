// `reg build docker://… --with-referrers`: a mirror keeps what is attached to its images. The source is
// distribution 2.8 (no referrers API): a cosign signature in the exact layout cosign writes (the
// installed skopeo/podman are Debian builds with sigstore signing disabled), and an OCI 1.1 SBOM
// pushed by digest with the referrers tag schema index that oras and regclient maintain on such
// registries. Read back by skopeo and the referrers API from reg serve and from real nginx.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {createHash, generateKeyPairSync, sign} from 'node:crypto'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import type {TreeIndex} from '../src/tree/model.js'
import {startDistribution, type RunningRegistry} from './distribution.js'
import {freePort, makeServable, requireTool, type RunningHost} from './static-hosts.js'
import {deployToRealHost, removeTempDirs, runReg, type ServeProcess, startServe, tempDir, writeTinyIndexLayout, writeTinyOciLayout} from './support.js'

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
const SPDX = 'application/spdx+json'
const digestOf = (bytes: Buffer) => 'sha256:' + createHash('sha256').update(bytes).digest('hex')
const tagOf = (digest: string) => digest.replace(':', '-')

async function pushBlob(registry: string, name: string, bytes: Buffer): Promise<{digest: string; size: number}> {
  const started = await fetch(`http://${registry}/v2/${name}/blobs/uploads/`, {method: 'POST'})
  assert.equal(started.status, 202)
  const location = new URL(started.headers.get('location')!, `http://${registry}`)
  location.searchParams.set('digest', digestOf(bytes))
  const put = await fetch(location, {method: 'PUT', body: new Uint8Array(bytes), headers: {'Content-Type': 'application/octet-stream'}})
  assert.equal(put.status, 201, await put.text())
  return {digest: digestOf(bytes), size: bytes.length}
}

async function pushManifest(registry: string, name: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
  const put = await fetch(`http://${registry}/v2/${name}/manifests/${reference}`, {method: 'PUT', body: new Uint8Array(bytes), headers: {'Content-Type': mediaType}})
  assert.equal(put.status, 201, await put.text())
  return digestOf(bytes)
}

/** What `cosign sign --key` pushes: a simple-signing payload layer, its ECDSA signature in an annotation, tagged `sha256-<hex>.sig`. */
async function pushCosignSignature(registry: string, name: string, subject: string): Promise<{digest: string; bytes: Buffer}> {
  const {privateKey} = generateKeyPairSync('ec', {namedCurve: 'P-256'})
  const payload = Buffer.from(JSON.stringify({critical: {identity: {'docker-reference': `${registry}/${name}`}, image: {'docker-manifest-digest': subject}, type: 'cosign container image signature'}, optional: null}))
  const signature = sign('sha256', payload, privateKey).toString('base64')
  const layer = await pushBlob(registry, name, payload)
  const config = await pushBlob(registry, name, Buffer.from(JSON.stringify({architecture: '', created: '0001-01-01T00:00:00Z', history: [{created: '0001-01-01T00:00:00Z'}], os: '', rootfs: {type: 'layers', diff_ids: [layer.digest]}, config: {}})))
  const bytes = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: {mediaType: 'application/vnd.oci.image.config.v1+json', ...config},
    layers: [{mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', ...layer, annotations: {'dev.cosignproject.cosign/signature': signature}}],
  }))
  return {digest: await pushManifest(registry, name, `${tagOf(subject)}.sig`, bytes, OCI_MANIFEST), bytes}
}

/** An OCI 1.1 SBOM of `subject`, pushed by digest only (no tag). */
async function pushSbom(registry: string, name: string, subject: {digest: string; size: number}): Promise<{digest: string; size: number}> {
  const empty = await pushBlob(registry, name, Buffer.from('{}'))
  const sbom = await pushBlob(registry, name, Buffer.from(JSON.stringify({spdxVersion: 'SPDX-2.3', name: 'tiny', SPDXID: 'SPDXRef-DOCUMENT'})))
  const bytes = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: SPDX,
    config: {mediaType: 'application/vnd.oci.empty.v1+json', ...empty},
    layers: [{mediaType: SPDX, ...sbom}],
    subject: {mediaType: OCI_MANIFEST, ...subject},
    annotations: {'org.opencontainers.image.created': '2026-01-01T00:00:00Z'},
  }))
  const digest = await pushManifest(registry, name, digestOf(bytes), bytes, OCI_MANIFEST)
  return {digest, size: bytes.length}
}

/** The referrers tag schema (`sha256-<hex>`, an index) that clients maintain on registries without the referrers API. */
async function pushReferrersTag(registry: string, name: string, subject: string, listed: Array<{digest: string; size: number}>): Promise<void> {
  const index = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: OCI_INDEX, manifests: listed.map((d) => ({mediaType: OCI_MANIFEST, ...d, artifactType: SPDX, annotations: {'org.opencontainers.image.created': '2026-01-01T00:00:00Z'}}))}))
  await pushManifest(registry, name, tagOf(subject), index, OCI_INDEX)
}

function skopeo(...args: string[]): string {
  return execFileSync(requireTool('skopeo'), args, {encoding: 'utf8'})
}

const manifestOf = async (registry: string, name: string, reference: string) => {
  const res = await fetch(`http://${registry}/v2/${name}/manifests/${reference}`, {headers: {Accept: `${OCI_MANIFEST}, ${OCI_INDEX}`}})
  assert.equal(res.status, 200)
  return {digest: res.headers.get('docker-content-digest')!, size: Number(res.headers.get('content-length'))}
}

describe('reg build docker://… --with-referrers (real distribution 2.8, skopeo, nginx)', () => {
  let work: string
  let source: RunningRegistry
  let image: {digest: string; size: number}
  let signature: {digest: string; bytes: Buffer}
  let sbom: {digest: string; size: number}
  let multi: {index: string; child: string; signature: string}
  let tree: string
  let index: TreeIndex
  let serve: ServeProcess | undefined
  let nginx: RunningHost | undefined

  before(async () => {
    work = await tempDir('reg-mirror-referrers-')
    await makeServable(work)
    source = await startDistribution(path.join(work, 'source'), await freePort())
    const registry = source.hostPort
    const layout = path.join(work, 'layout')
    await writeTinyOciLayout(layout, {'hello.txt': 'signed\n'}, 'v1')
    skopeo('copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${registry}/team/app:1.0`)
    image = await manifestOf(registry, 'team/app', '1.0')
    signature = await pushCosignSignature(registry, 'team/app', image.digest)
    sbom = await pushSbom(registry, 'team/app', image)
    await pushReferrersTag(registry, 'team/app', image.digest, [sbom])
    // A multi-platform image whose arm64 child (not the index) is signed.
    const multiLayout = path.join(work, 'multi')
    const written = await writeTinyIndexLayout(multiLayout, ['linux/amd64', 'linux/arm64'], 'v1')
    skopeo('copy', '--all', '--dest-tls-verify=false', `oci:${multiLayout}:v1`, `docker://${registry}/team/multi:1.0`)
    const child = written.images[1].manifestDigest
    multi = {index: (await manifestOf(registry, 'team/multi', '1.0')).digest, child, signature: (await pushCosignSignature(registry, 'team/multi', child)).digest}
    tree = path.join(work, 'tree')
    const built = await runReg(['build', `docker://${registry}/team/app:1.0`, `docker://${registry}/team/multi:1.0`, '--plain-http', '--with-referrers', '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    index = JSON.parse(await readFile(path.join(tree, 'registry.json'), 'utf8')) as TreeIndex
    serve = await startServe(tree, [])
    nginx = await deployToRealHost(tree, 'nginx', path.join(work, 'public'))
  })
  after(async () => {
    await nginx?.stop()
    await serve?.stop()
    await source?.stop()
    await removeTempDirs()
  })

  it('keeps the cosign signature as its tag sha256-<hex>.sig and the OCI 1.1 SBOM as an untagged manifest', () => {
    const app = index.repositories['team/app']
    assert.deepEqual(Object.keys(app.tags).sort(), ['1.0', `${tagOf(image.digest)}.sig`])
    assert.equal(app.tags[`${tagOf(image.digest)}.sig`], signature.digest)
    assert.deepEqual(app.untagged, [sbom.digest])
    assert.equal(index.manifests[sbom.digest].subject, image.digest)
    assert.equal(index.manifests[sbom.digest].artifactType, SPDX)
  })

  it('keeps the signature of a child of an index', () => {
    const repository = index.repositories['team/multi']
    assert.equal(repository.tags['1.0'], multi.index)
    assert.equal(repository.tags[`${tagOf(multi.child)}.sig`], multi.signature)
  })

  for (const host of ['reg serve', 'nginx'] as const) {
    it(`${host} serves the signature byte for byte to skopeo, and lists the SBOM among the image's referrers`, async () => {
      const base = host === 'nginx' ? nginx! : serve!
      const raw = skopeo('inspect', '--raw', '--tls-verify=false', `docker://${base.hostPort}/team/app:${tagOf(image.digest)}.sig`)
      assert.equal(digestOf(Buffer.from(raw)), signature.digest)
      assert.equal(raw, signature.bytes.toString('utf8'))
      const res = await fetch(`${base.url}/v2/team/app/referrers/${image.digest}`)
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('content-type'), OCI_INDEX)
      const listed = (await res.json()) as {manifests: Array<{mediaType: string; digest: string; size: number; artifactType?: string; annotations?: Record<string, string>}>}
      assert.deepEqual(listed.manifests, [{mediaType: OCI_MANIFEST, digest: sbom.digest, size: sbom.size, artifactType: SPDX, annotations: {'org.opencontainers.image.created': '2026-01-01T00:00:00Z'}}])
      const child = skopeo('inspect', '--raw', '--tls-verify=false', `docker://${base.hostPort}/team/multi:${tagOf(multi.child)}.sig`)
      assert.equal(digestOf(Buffer.from(child)), multi.signature)
    })
  }

  it('finds referrers through the referrers API: a mirror of the mirror (reg serve has the API and no sha256-<hex> tag)', async () => {
    const again = path.join(work, 'again')
    const built = await runReg(['build', `docker://${serve!.hostPort}/team/app:1.0`, '--plain-http', '--with-referrers', '-o', again])
    assert.equal(built.code, 0, built.stderr)
    const againIndex = JSON.parse(await readFile(path.join(again, 'registry.json'), 'utf8')) as TreeIndex
    const {tagged: _tagged, ...again_} = againIndex.repositories['team/app']
    assert.deepEqual(again_, {tags: index.repositories['team/app'].tags, untagged: [sbom.digest]})
  })

  it('copies nothing attached without --with-referrers', async () => {
    const plain = path.join(work, 'plain')
    const built = await runReg(['build', `docker://${source.hostPort}/team/app:1.0`, '--plain-http', '-o', plain])
    assert.equal(built.code, 0, built.stderr)
    const plainIndex = JSON.parse(await readFile(path.join(plain, 'registry.json'), 'utf8')) as TreeIndex
    assert.deepEqual(Object.keys(plainIndex.repositories['team/app'].tags), ['1.0'])
    assert.equal(plainIndex.repositories['team/app'].untagged, undefined)
    assert.deepEqual(Object.keys(plainIndex.manifests), [image.digest])
  })

  it('takes withReferrers from the config file', async () => {
    const configured = path.join(work, 'configured')
    await writeFile(path.join(work, 'reg.config.json'), JSON.stringify({withReferrers: true, sources: [`docker://${source.hostPort}/team/app:1.0`], out: 'configured'}))
    const built = await runReg(['build', '--plain-http'], {cwd: work})
    assert.equal(built.code, 0, built.stderr)
    const configuredIndex = JSON.parse(await readFile(path.join(configured, 'registry.json'), 'utf8')) as TreeIndex
    assert.deepEqual(configuredIndex.repositories['team/app'].untagged, [sbom.digest])
  })

  it('refuses a referrers list naming a manifest whose subject is another', async () => {
    const registry = source.hostPort
    const layout = path.join(work, 'other')
    await writeTinyOciLayout(layout, {'other.txt': 'other\n'}, 'v1')
    skopeo('copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${registry}/team/app:other`)
    const other = await manifestOf(registry, 'team/app', 'other')
    // The SBOM of team/app:1.0, listed as if it were attached to team/app:other.
    await pushReferrersTag(registry, 'team/app', other.digest, [sbom])
    const built = await runReg(['build', `docker://${registry}/team/app:other`, '--plain-http', '--with-referrers', '-o', path.join(work, 'refused')])
    assert.notEqual(built.code, 0)
    assert.match(built.stderr, new RegExp(`listed as a referrer of ${other.digest}, but its subject is ${image.digest}`))
  })
})
