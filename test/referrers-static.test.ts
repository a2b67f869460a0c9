// Referrers on static hosts: the referrers document of a subject is also the tag `sha256-<hex>`
// (the referrers tag schema) and a manifest by its own digest, on reg serve and every backend, so
// clients that do not use the referrers API find signatures and SBOMs. (Real nginx and apache2.)
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {execFile} from 'node:child_process'
import {readFile, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'
import {after, before, describe, it} from 'node:test'
import {headerFileConfig} from '../src/publish/header-file-host.js'
import {createPublishPlan, phaseOf} from '../src/publish/plan.js'
import {startRegistryServer, type RunningServer} from '../src/server/registry-server.js'
import type {TreeIndex} from '../src/tree/model.js'
import {RegistryTree} from '../src/tree/registry-tree.js'
import {assertConformsToServe, conformanceUrls} from './conformance.js'
import {type HeaderMatching, startHeaderFileHost} from './header-file-server.js'
import {type FakeNetlify, startFakeNetlify} from './netlify-api.js'
import {makeServable, requireTool, type RunningHost} from './static-hosts.js'
import {deployToRealHost, removeTempDirs, runReg, tempDir, writeTinyOciLayout} from './support.js'

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
const SBOM_TYPE = 'application/spdx+json'
const SBOM_ANNOTATIONS = {'org.opencontainers.image.created': '2026-01-01T00:00:00Z', 'org.example.sbom.format': 'spdx-2.3'}
const sha256 = (bytes: Buffer) => 'sha256:' + createHash('sha256').update(bytes).digest('hex')

interface ReferrerLayout {
  subject: string
  sbom: string
}

/** An OCI layout with an image (tag 1.0) and an SBOM whose subject is the image, tagged `sbomTag`. */
async function writeImageWithSbom(layout: string, sbomTag: (subject: string) => string): Promise<ReferrerLayout> {
  const image = await writeTinyOciLayout(layout, {'app.txt': 'app\n'}, '1.0')
  const put = async (bytes: Buffer) => {
    await writeFile(path.join(layout, 'blobs/sha256', sha256(bytes).slice(7)), bytes)
    return {digest: sha256(bytes), size: bytes.length}
  }
  const subjectSize = (await stat(path.join(layout, 'blobs/sha256', image.manifestDigest.slice(7)))).size
  const empty = await put(Buffer.from('{}'))
  const document = await put(Buffer.from(JSON.stringify({spdxVersion: 'SPDX-2.3', name: 'app'})))
  const sbom = await put(Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: SBOM_TYPE,
    config: {mediaType: 'application/vnd.oci.empty.v1+json', ...empty},
    layers: [{mediaType: SBOM_TYPE, ...document}],
    subject: {mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.manifestDigest, size: subjectSize},
    annotations: SBOM_ANNOTATIONS,
  })))
  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as {manifests: unknown[]}
  index.manifests.push({mediaType: 'application/vnd.oci.image.manifest.v1+json', ...sbom, annotations: {'org.opencontainers.image.ref.name': sbomTag(image.manifestDigest)}})
  await writeFile(path.join(layout, 'index.json'), JSON.stringify(index))
  return {subject: image.manifestDigest, sbom: sbom.digest}
}

const fallbackTag = (subject: string) => `sha256-${subject.slice(7)}`

/** The headers of the fallback tag and of the document by digest, and the document's entries. */
async function assertFallbackServed(base: string, name: string, layout: ReferrerLayout, expected: Buffer, options: {digestHeaderByDigest?: boolean} = {}): Promise<void> {
  const referrers = await fetch(`${base}/v2/${name}/referrers/${layout.subject}`)
  assert.equal(referrers.status, 200)
  assert.equal(referrers.headers.get('content-type'), OCI_INDEX)
  const body = Buffer.from(await referrers.arrayBuffer())
  assert.deepEqual(body, expected)
  assert.deepEqual((JSON.parse(body.toString()) as {manifests: unknown[]}).manifests, [
    {mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: layout.sbom, size: (JSON.parse(body.toString()) as {manifests: Array<{size: number}>}).manifests[0].size, artifactType: SBOM_TYPE, annotations: SBOM_ANNOTATIONS},
  ])
  for (const method of ['GET', 'HEAD']) {
    const tag = await fetch(`${base}/v2/${name}/manifests/${fallbackTag(layout.subject)}`, {method})
    assert.equal(tag.status, 200, `${method} the fallback tag`)
    assert.equal(tag.headers.get('content-type'), OCI_INDEX)
    assert.equal(tag.headers.get('docker-content-digest'), sha256(expected))
    assert.match(tag.headers.get('cache-control') ?? '', /^public, max-age=\d+$/)
    if (method === 'GET') assert.deepEqual(Buffer.from(await tag.arrayBuffer()), expected)
    const byDigest = await fetch(`${base}/v2/${name}/manifests/${sha256(expected)}`, {method})
    assert.equal(byDigest.status, 200, `${method} the document by digest`)
    assert.equal(byDigest.headers.get('content-type'), OCI_INDEX)
    // Header-file hosts send no Docker-Content-Digest for any manifest by digest (their rules cannot compute it from the path).
    if (options.digestHeaderByDigest !== false) assert.equal(byDigest.headers.get('docker-content-digest'), sha256(expected))
    assert.equal(byDigest.headers.get('cache-control'), 'public, max-age=31536000, immutable')
    if (method === 'GET') assert.deepEqual(Buffer.from(await byDigest.arrayBuffer()), expected)
  }
}

/** Asynchronous: reg serve answers from this process. */
async function skopeoRaw(hostPort: string, ref: string): Promise<Buffer> {
  const {stdout} = await promisify(execFile)('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${hostPort}/${ref}`], {encoding: 'buffer', timeout: 60_000})
  return stdout
}

describe('referrers on static hosts: the sha256-<hex> tag of the referrers tag schema', () => {
  let work: string
  let tree: string
  let layout: ReferrerLayout
  let index: TreeIndex
  let documentBytes: Buffer
  let reference: RunningServer
  let fake: FakeNetlify | undefined

  before(async () => {
    requireTool('skopeo')
    work = await tempDir()
    await makeServable(work)
    layout = await writeImageWithSbom(path.join(work, 'layout'), () => 'sbom')
    tree = path.join(work, 'tree')
    const built = await runReg(['build', `oci:${path.join(work, 'layout')}=team/app`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    index = (await RegistryTree.load(tree)).index
    const document = index.objects.find((o) => o.path === `v2/team/app/referrers/${layout.subject}`)
    assert.ok(document, 'the referrers document of the image')
    documentBytes = await readFile(path.join(tree, 'blobs/sha256', document.digest.slice(7)))
    reference = await startRegistryServer(tree, {port: 0})
  })
  after(async () => {
    await reference?.close()
    await fake?.stop()
    await removeTempDirs()
  })

  it('the tree has the tag and the document by digest; they are not in the tags list nor in reg ls', async () => {
    const tag = index.objects.find((o) => o.path === `v2/team/app/manifests/${fallbackTag(layout.subject)}`)
    assert.ok(tag, 'the fallback tag')
    assert.equal(tag.class, 'tag-manifest')
    assert.equal(tag.digest, sha256(documentBytes))
    assert.deepEqual(tag.headers['Content-Type'], OCI_INDEX)
    const byDigest = index.objects.find((o) => o.path === `v2/team/app/manifests/${sha256(documentBytes)}`)
    assert.equal(byDigest?.class, 'digest-manifest')
    assert.equal(byDigest?.headers['Docker-Content-Digest'], sha256(documentBytes))
    assert.deepEqual(Object.keys(index.repositories['team/app'].tags).sort(), ['1.0', 'sbom'])
    const list = await (await fetch(`${reference.url}/v2/team/app/tags/list`)).json() as {tags: string[]}
    assert.deepEqual(list.tags, ['1.0', 'sbom'])
    const ls = await runReg(['ls', tree, '--json'])
    assert.equal(ls.code, 0, ls.stderr)
    assert.ok(!ls.stdout.includes(fallbackTag(layout.subject)), 'reg ls does not list the fallback tag')
  })

  it('reg serve answers the referrers URL, the tag and the digest, and skopeo reads the tag', async () => {
    await assertFallbackServed(reference.url, 'team/app', layout, documentBytes)
    assert.deepEqual(await skopeoRaw(new URL(reference.url).host, `team/app:${fallbackTag(layout.subject)}`), documentBytes)
  })

  it('is published after the manifests it lists: the document with the indexes, the tag with the tags', async () => {
    const registry = await RegistryTree.load(tree)
    const plan = await createPublishPlan(registry, {objects: new Map()}, {name: 's3', location: 'memory', capabilities: {serverSideCopy: false, caseSensitiveTags: true}})
    const phaseOfPath = (p: string) => plan.steps.find((s) => 'object' in s && s.object.path === p)?.phase
    assert.equal(phaseOfPath(`v2/team/app/manifests/${layout.sbom}`), 'manifests')
    assert.equal(phaseOfPath(`v2/team/app/manifests/${sha256(documentBytes)}`), 'indexes')
    assert.equal(phaseOfPath(`v2/team/app/referrers/${layout.subject}`), 'referrers')
    assert.equal(phaseOfPath(`v2/team/app/manifests/${fallbackTag(layout.subject)}`), 'tags')
    const order = plan.steps.map((s) => s.phase)
    assert.deepEqual(order, [...order].sort((a, b) => ['blobs', 'manifests', 'indexes', 'referrers', 'tags', 'prune'].indexOf(a) - ['blobs', 'manifests', 'indexes', 'referrers', 'tags', 'prune'].indexOf(b)))
    assert.equal(phaseOf(registry.objectsByPath.get(`v2/team/app/manifests/${fallbackTag(layout.subject)}`)!), 'tags')
  })

  for (const backend of ['nginx', 'apache'] as const) {
    it(`--backend ${backend} (real ${backend}): the same answers as reg serve, and skopeo reads the tag`, async () => {
      let host: RunningHost | undefined
      try {
        host = await deployToRealHost(tree, backend, path.join(work, backend))
        await assertFallbackServed(host.url, 'team/app', layout, documentBytes)
        await assertConformsToServe(host.url, reference.url, conformanceUrls(index))
        assert.deepEqual(await skopeoRaw(host.hostPort, `team/app:${fallbackTag(layout.subject)}`), documentBytes)
      } finally {
        await host?.stop()
      }
    })
  }

  it('--backend dir: the tag and the document by digest are files with the document\'s bytes', async () => {
    const out = path.join(work, 'dir')
    const deployed = await runReg(['deploy', tree, '--backend', 'dir', '--dest', out])
    assert.equal(deployed.code, 0, deployed.stderr)
    for (const file of [`v2/team/app/referrers/${layout.subject}`, `v2/team/app/manifests/${fallbackTag(layout.subject)}`, `v2/team/app/manifests/${sha256(documentBytes)}`]) {
      assert.deepEqual(await readFile(path.join(out, file)), documentBytes, file)
    }
  })

  it('--backend netlify: the _headers rules give the tag its digest and media type', async () => {
    const tagPath = `/v2/team/app/manifests/${fallbackTag(layout.subject)}`
    const headers = headerFileConfig(index).find((f) => f.path === '_headers')?.content ?? ''
    assert.ok(headers.includes(`${tagPath}\n`), 'a rule for the fallback tag')
    fake = await startFakeNetlify()
    const deployed = await runReg(['deploy', tree, '--backend', 'netlify', '--site', fake.siteName, '--api-url', fake.apiUrl], {env: {NETLIFY_AUTH_TOKEN: fake.token}})
    assert.equal(deployed.code, 0, deployed.stderr)
    for (const matching of ['request-path', 'rewritten-path'] as HeaderMatching[]) {
      const host = await startHeaderFileHost(fake.publishedFiles(), matching)
      try {
        await assertFallbackServed(host.url, 'team/app', layout, documentBytes, {digestHeaderByDigest: false})
      } finally {
        await host.stop()
      }
    }
  })

  it('a tag of that name the repository really has wins over the derived one', async () => {
    const own = path.join(work, 'own-layout')
    const ownLayout = await writeImageWithSbom(own, fallbackTag)
    const ownTree = path.join(work, 'own-tree')
    const built = await runReg(['build', `oci:${own}=team/app`, '-o', ownTree])
    assert.equal(built.code, 0, built.stderr)
    const ownIndex = (await RegistryTree.load(ownTree)).index
    const tags = ownIndex.objects.filter((o) => o.path === `v2/team/app/manifests/${fallbackTag(ownLayout.subject)}`)
    assert.equal(tags.length, 1)
    assert.equal(tags[0].digest, ownLayout.sbom, 'the tag serves the manifest it was given')
    assert.ok(ownIndex.objects.some((o) => o.path === `v2/team/app/referrers/${ownLayout.subject}`), 'the referrers URL still answers')
  })
})
