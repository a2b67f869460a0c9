// reg serve --proxy: the distribution registry with token auth is the upstream (behind a proxy that
// counts its requests); skopeo and ctr pull every core fixture through reg, which stores what it
// streams; later pulls come from the tree, tags are checked again after the TTL, proxied images are
// published into the tree like pushed ones and deploy like any other.
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {readdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {after, before, describe, it} from 'node:test'
import type {TreeIndex} from '../src/tree/model.js'
import {type Containerd, run, skopeoCopyDigest, skopeoInspectDigest, startContainerd} from './clients.js'
import {type RunningRegistry, startTokenDistribution} from './distribution.js'
import {buildCoreFixtures, type CoreFixtures, pushCoreFixtures} from './fixtures.js'
import {type CountingProxy, startCountingProxy} from './s3rver.js'
import {freePort, requireTool} from './static-hosts.js'
import {removeTempDirs, runReg, type ServeProcess, startServe, tempDir, writeTinyOciLayout} from './support.js'

const USER = 'proxy'
const PASSWORD = 'upstream-pass'
const CREDS = `${USER}:${PASSWORD}`
/** reg finds upstream credentials as the docker:// source does */
const UPSTREAM_ENV = {REG_USERNAME: USER, REG_PASSWORD: PASSWORD}

const blobRequests = (upstream: CountingProxy) => upstream.requests.filter((r) => r.url.includes('/blobs/'))

/** The tags of a tree once its index names `expected` (ref → digest): publishing runs after the pull, so wait (bounded). */
async function waitForTags(tree: string, expected: Record<string, string>): Promise<Record<string, string>> {
  let tags: Record<string, string> = {}
  for (let i = 0; i < 300; i++) {
    const index = JSON.parse(await readFile(path.join(tree, 'registry.json'), 'utf8')) as TreeIndex
    tags = Object.fromEntries(Object.entries(index.repositories).flatMap(([name, r]) => Object.entries(r.tags).map(([tag, digest]) => [`${name}:${tag}`, digest])))
    if (Object.entries(expected).every(([ref, digest]) => tags[ref] === digest)) return tags
    await sleep(100)
  }
  assert.deepEqual(tags, expected, 'the tree never named these tags')
  return tags
}

describe('reg serve --proxy (upstream: distribution with token auth)', () => {
  let work: string
  let fixtures: CoreFixtures
  let registry: RunningRegistry
  let containerd: Containerd
  const stops: Array<() => Promise<void>> = []

  /** A counting proxy in front of the upstream, and reg serve --proxy up=… over a tree of its own. */
  async function proxyServer(name: string, flags: string[] = []): Promise<{upstream: CountingProxy; server: ServeProcess; tree: string}> {
    const upstream = await startCountingProxy(`http://${registry.hostPort}`, await freePort())
    const tree = path.join(work, name)
    const server = await startServe(tree, ['--proxy', `up=${upstream.endpoint}`, ...flags], UPSTREAM_ENV)
    stops.push(() => server.stop(), () => upstream.stop())
    return {upstream, server, tree}
  }

  before(async () => {
    for (const tool of ['skopeo', 'ctr', 'docker-registry']) requireTool(tool)
    work = await tempDir()
    fixtures = await buildCoreFixtures(work)
    ;({registry} = await startTokenDistribution(path.join(work, 'upstream'), {[USER]: PASSWORD}))
    stops.push(() => registry.stop())
    await pushCoreFixtures(fixtures, registry.hostPort, CREDS)
    containerd = await startContainerd(path.join(work, 'containerd'))
    stops.push(() => containerd.stop())
  })
  after(async () => {
    for (const stop of stops.reverse()) await stop()
    await removeTempDirs()
  })

  describe('pulls through the proxy', () => {
    let skopeoSide: Awaited<ReturnType<typeof proxyServer>>
    let ctrSide: Awaited<ReturnType<typeof proxyServer>>
    const refs = () => fixtures.images.map((i) => `up/${i.name}:${i.tag}`)
    const expected = () => Object.fromEntries(fixtures.images.map((i) => [`up/${i.name}:${i.tag}`, i.digest]))

    before(async () => {
      skopeoSide = await proxyServer('via-skopeo')
      ctrSide = await proxyServer('via-ctr')
    })

    it('skopeo (all platforms) and ctr (one platform, then all) pull every core fixture, digests identical to the source', async () => {
      for (const image of fixtures.images) {
        const ref = `up/${image.name}:${image.tag}`
        assert.equal(await skopeoCopyDigest(skopeoSide.server.hostPort, ref, path.join(work, 'copies', ref.replaceAll(/[/:]/g, '_'))), image.digest, ref)
        assert.equal(await containerd.pull(`${ctrSide.server.hostPort}/${ref}`), image.digest, `ctr ${ref}`)
        if (image.multiArch) assert.equal(await containerd.pull(`${ctrSide.server.hostPort}/${ref}`, {allPlatforms: true}), image.digest, `ctr --all-platforms ${ref}`)
      }
      assert.ok(blobRequests(skopeoSide.upstream).length > 0, 'the first pulls came from the upstream')
    })

    it('the proxied images are published into the tree (reg ls), all platforms included', async () => {
      for (const side of [skopeoSide, ctrSide]) {
        await waitForTags(side.tree, expected())
        const ls = await runReg(['ls', side.tree, '--json'])
        assert.equal(ls.code, 0, ls.stderr)
        const listed = (JSON.parse(ls.stdout) as {images: Array<{repository: string; tag: string; platforms: string[]}>}).images
        assert.deepEqual(listed.map((i) => `${i.repository}:${i.tag}`).sort(), refs().sort())
        assert.equal(listed.find((i) => i.repository === 'up/team/multi')?.platforms.length, 3)
      }
    })

    it('a second pull of every image makes zero upstream blob requests (and no manifest request within the TTL)', async () => {
      for (const side of [skopeoSide, ctrSide]) side.upstream.reset()
      for (const image of fixtures.images) {
        const ref = `up/${image.name}:${image.tag}`
        assert.equal(await skopeoCopyDigest(skopeoSide.server.hostPort, ref, path.join(work, 'again', ref.replaceAll(/[/:]/g, '_'))), image.digest)
        assert.equal(await containerd.pull(`${ctrSide.server.hostPort}/${ref}`, {allPlatforms: image.multiArch}), image.digest)
      }
      for (const side of [skopeoSide, ctrSide]) {
        assert.deepEqual(side.upstream.requests.map((r) => `${r.method} ${r.url}`), [], 'the tree answered everything')
      }
    })

    it('reg deploy --backend dir publishes the proxied images; reg build reads them from the tree', async () => {
      const out = path.join(work, 'deployed')
      const deployed = await runReg(['deploy', skopeoSide.tree, '--backend', 'dir', '--dest', out])
      assert.equal(deployed.code, 0, deployed.stderr)
      for (const image of fixtures.images) {
        const manifest = await readFile(path.join(out, 'v2', 'up', image.name, 'manifests', image.tag))
        assert.equal(`sha256:${createHash('sha256').update(manifest).digest('hex')}`, image.digest)
      }
      // The tree is also an OCI layout: a build reads the proxied images from it like any other source.
      const rebuilt = await runReg(['build', `oci:${skopeoSide.tree}`, '-o', path.join(work, 'rebuilt')])
      assert.equal(rebuilt.code, 0, rebuilt.stderr)
      assert.deepEqual(await waitForTags(path.join(work, 'rebuilt'), expected()), expected())
    })

    it('an unknown tag or blob is the spec 404; pushing into the proxied namespace is refused', async () => {
      const url = skopeoSide.server.url
      const tag = await fetch(`${url}/v2/up/team/app/manifests/nope`)
      assert.equal(tag.status, 404)
      assert.equal(((await tag.json()) as {errors: Array<{code: string}>}).errors[0].code, 'MANIFEST_UNKNOWN')
      const blob = await fetch(`${url}/v2/up/team/app/blobs/sha256:${'0'.repeat(64)}`)
      assert.equal(blob.status, 404)
      assert.equal(((await blob.json()) as {errors: Array<{code: string}>}).errors[0].code, 'BLOB_UNKNOWN')
      const repository = await fetch(`${url}/v2/up/no/such/manifests/1`)
      assert.equal(repository.status, 404)
      const push = await fetch(`${url}/v2/up/team/app/blobs/uploads/`, {method: 'POST'})
      assert.equal(push.status, 405)
      const tags = (await (await fetch(`${url}/v2/up/team/app/tags/list`)).json()) as {name: string; tags: string[]}
      assert.deepEqual(tags, {name: 'up/team/app', tags: ['1.0', '1.1']}, 'tags lists come from the upstream, renamed')
    })
  })

  it('tags are checked upstream again only after --proxy-ttl: a retagged upstream is seen then; an unreachable one leaves the stored copy', async () => {
    const retag = (from: string) => run('skopeo', ['copy', '-q', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false', '--src-creds', CREDS, '--dest-creds', CREDS,
      `docker://${registry.hostPort}/team/app:${from}`, `docker://${registry.hostPort}/team/app:moving`])
    const [v10, v11] = fixtures.images.filter((i) => i.name === 'team/app')
    await retag(v10.tag)
    const long = await proxyServer('ttl-default')
    const short = await proxyServer('ttl-1s', ['--proxy-ttl', '1s'])
    for (const side of [long, short]) assert.equal(await skopeoInspectDigest(side.server.hostPort, 'up/team/app:moving'), v10.digest)
    await retag(v11.tag)
    long.upstream.reset()
    assert.equal(await skopeoInspectDigest(long.server.hostPort, 'up/team/app:moving'), v10.digest, 'within the default 5 minutes the stored tag is served')
    assert.ok(!long.upstream.requests.some((r) => r.url.includes('/manifests/')), long.upstream.requests.map((r) => r.url).join(', '))
    await sleep(1500) // past the 1 s TTL
    short.upstream.reset()
    assert.equal(await skopeoCopyDigest(short.server.hostPort, 'up/team/app:moving', path.join(work, 'moved')), v11.digest, 'after the TTL the upstream is asked and the new digest served')
    assert.ok(short.upstream.requests.some((r) => r.method === 'HEAD' && r.url === '/v2/team/app/manifests/moving'), 'revalidated with a HEAD of the tag')
    await waitForTags(short.tree, {'up/team/app:moving': v11.digest}) // the tree follows the upstream
    // The upstream goes away: past the TTL the stored copy is served; what was never stored cannot be.
    await short.upstream.stop()
    await sleep(1500)
    assert.equal(await skopeoCopyDigest(short.server.hostPort, 'up/team/app:moving', path.join(work, 'offline')), v11.digest)
    assert.match(short.server.stderr(), /serving the stored up\/team\/app:moving/)
    const unknown = await fetch(`${short.server.url}/v2/up/team/multi/manifests/multi`)
    assert.equal(unknown.status, 502)
  })

  it('two clients pulling the same blobs at once both succeed, one upstream request per blob, one copy', async () => {
    const side = await proxyServer('race')
    const multi = fixtures.images.find((i) => i.multiArch)!
    const ref = `up/${multi.name}:${multi.tag}`
    const digests = await Promise.all(['a', 'b'].map((n) => skopeoCopyDigest(side.server.hostPort, ref, path.join(work, `race-${n}`))))
    assert.deepEqual(digests, [multi.digest, multi.digest])
    await waitForTags(side.tree, {[ref]: multi.digest})
    // (a request answered 401 is repeated with a token: count the answered ones)
    const gets = blobRequests(side.upstream).filter((r) => r.method === 'GET' && r.status === 200).map((r) => r.url.split('/').pop())
    assert.equal(gets.length, new Set(gets).size, `each blob fetched once: ${gets.join(', ')}`)
    const stored = await readdir(path.join(side.tree, 'blobs', 'sha256'))
    assert.deepEqual(stored.filter((f) => f.startsWith('.tmp-')), [], 'no temporary file left')
  })

  it('a blob whose upstream bytes do not match its digest never enters the store, and no client gets it whole', async () => {
    // Incompressible, so that the layer (~3 MiB) streams in many chunks.
    const layout = await writeTinyOciLayout(path.join(work, 'corrupt-src'), {'c.txt': randomBytes(3 << 20).toString('base64')}, '1')
    await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', '--dest-creds', CREDS, `oci:${path.join(work, 'corrupt-src')}:1`, `docker://${registry.hostPort}/team/corrupt:1`])
    const manifest = JSON.parse(await readFile(path.join(work, 'corrupt-src', 'blobs', 'sha256', layout.manifestDigest.slice(7)), 'utf8')) as {layers: Array<{digest: string; size: number}>}
    const layer = manifest.layers[0]
    // Flip the last byte of the layer in the upstream's own storage: it then serves wrong bytes of the right length.
    const data = path.join(work, 'upstream', 'registry', 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', layer.digest.slice(7, 9), layer.digest.slice(7), 'data')
    const bytes = await readFile(data)
    bytes[bytes.length - 1] ^= 0xff
    await writeFile(data, bytes)
    const side = await proxyServer('corrupt')
    // Streaming starts before the digest can be known: the connection is cut (with or without the headers sent).
    const received = await fetch(`${side.server.url}/v2/up/team/corrupt/blobs/${layer.digest}`).then((res) => res.arrayBuffer()).then((b) => b.byteLength, () => -1)
    assert.ok(received < layer.size, `the client never receives the whole wrong blob (got ${received} of ${layer.size})`)
    await assert.rejects(run('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${side.server.hostPort}/up/team/corrupt:1`, `dir:${path.join(work, 'corrupt-copy')}`]))
    let stored = await readdir(path.join(side.tree, 'blobs', 'sha256'))
    // (a download no client waits for, publishing the tag, may still be failing)
    for (let i = 0; i < 50 && stored.some((f) => f.startsWith('.tmp-')); i++) {
      await sleep(100)
      stored = await readdir(path.join(side.tree, 'blobs', 'sha256'))
    }
    assert.ok(!stored.includes(layer.digest.slice(7)), 'the wrong bytes are not in the store')
    assert.deepEqual(stored.filter((f) => f.startsWith('.tmp-')), [], 'nor a temporary file')
    assert.equal((await fetch(`${side.server.url}/v2/up/team/corrupt/blobs/${layer.digest}`, {method: 'HEAD'})).status, 200, 'HEAD asks the upstream, which has it')
  })
})
