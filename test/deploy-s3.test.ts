// The S3 backend against two S3 implementations (s3rver and fauxqs), each served to clients as a
// virtual-host endpoint (Host: reg-test.s3.amazonaws.com): headers per object class on GET and
// HEAD, deduplication by server-side copy, a no-change re-deploy in a few requests, resuming after
// injected faults, the publish order seen by a client polling during a deploy, pulls by skopeo,
// and the bucket's CORS configuration (s3rver: fauxqs has no bucket CORS API).
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import type {TreeIndex} from '../src/tree/model.js'
import {buildCoreFixtures, type CoreFixtures} from './fixtures.js'
import {type CountingProxy, type RunningS3, S3_BUCKET, S3_CREDENTIALS, startCountingProxy, startFauxqs, startS3rver} from './s3rver.js'
import {skopeoCopyDigest, skopeoInspectDigest} from './clients.js'
import {freePort} from './static-hosts.js'
import {removeTempDirs, runReg, tempDir} from './support.js'
import {RegistryTree} from '../src/tree/registry-tree.js'

const sha256 = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex')

/**
 * The implementations every test of the first block runs against. fauxqs answers the bucket CORS
 * calls as if they were others (its GET ?cors lists objects): its deploys run with --cors off.
 */
const IMPLEMENTATIONS: Array<{name: string; start: (work: string) => Promise<RunningS3>; bucketCors: boolean}> = [
  {name: 's3rver', start: async (work) => startS3rver(path.join(work, 's3rver'), await freePort()), bucketCors: true},
  {name: 'fauxqs', start: async () => startFauxqs(await freePort()), bucketCors: false},
]

/** A request of the bucket's CORS configuration (`?cors`), as the SDK sends it path-style. */
const isCorsRequest = (url: string) => /[?&]cors(=[^&]*)?(&|$)/.test(url)

for (const implementation of IMPLEMENTATIONS) describe(`reg deploy --backend s3 (${implementation.name})`, () => {
  let work: string
  let fixtures: CoreFixtures
  let index: TreeIndex
  let s3: RunningS3
  let proxy: CountingProxy

  const deploy = async (...extra: string[]) => {
    const cors = implementation.bucketCors ? [] : ['--cors', 'off']
    const result = await runReg(['deploy', fixtures.tree, '--backend', 's3', '--bucket', S3_BUCKET, '--endpoint', proxy.endpoint, '--force-path-style', '--json', ...cors, ...extra], {env: S3_CREDENTIALS})
    return {...result, report: result.code === 0 ? JSON.parse(result.stdout) as {plan: {uploads: number; copies: number}; result: {uploaded: number; copied: number; bytesUploaded: number; bytesCopied: number; deleted: number}} : undefined}
  }

  /** Every key under a prefix with its size and ETag, in one listing through s3rver's API. */
  const listing = async (prefix: string) => {
    const xml = await (await fetch(`${s3.endpoint}/${S3_BUCKET}?list-type=2&prefix=${encodeURIComponent(prefix)}&max-keys=1000`)).text()
    // Each <Contents> on its own: implementations order its fields differently.
    const field = (entry: string, name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(entry)?.[1] ?? ''
    return [...xml.matchAll(/<Contents>(.*?)<\/Contents>/gs)].map(([, entry]) => `${field(entry, 'Key').slice(prefix.length)} ${field(entry, 'ETag')} ${field(entry, 'Size')}`).sort()
  }

  /** As a client reads it: at the root of the bucket's virtual host. */
  const objectUrl = (key: string) => `${s3.url}/${key}`

  before(async () => {
    work = await tempDir()
    fixtures = await buildCoreFixtures(work)
    index = (await RegistryTree.load(fixtures.tree)).index
    s3 = await implementation.start(work)
    proxy = await startCountingProxy(s3.endpoint, await freePort())
  })
  after(async () => {
    await proxy?.stop()
    await s3?.stop()
    await removeTempDirs()
  })

  it('uploads each blob\'s bytes once and copies the other repositories\' keys server-side', async () => {
    proxy.reset()
    const first = await deploy()
    assert.equal(first.code, 0, first.stderr)
    const blobObjects = index.objects.filter((o) => o.class === 'blob')
    const uniqueBlobs = new Map(blobObjects.map((o) => [o.digest, o.size]))
    const blobPuts = proxy.requests.filter((r) => r.method === 'PUT' && !r.copy && r.url.includes('/blobs/'))
    assert.equal(blobPuts.reduce((sum, r) => sum + r.bodyBytes, 0), [...uniqueBlobs.values()].reduce((a, b) => a + b, 0), 'blob bytes sent once')
    assert.equal(proxy.requests.filter((r) => r.copy && r.url.includes('/blobs/')).length, blobObjects.length - uniqueBlobs.size)
    assert.ok(first.report!.result.bytesCopied > 0)
  })

  it('serves every object with its Content-Type, Cache-Control and digest metadata, on GET and HEAD', async () => {
    for (const object of index.objects) {
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(objectUrl(object.path), {method})
        assert.equal(res.status, 200, `${method} ${object.path}`)
        assert.equal(res.headers.get('content-type'), object.headers['Content-Type'], `${method} ${object.path}`)
        assert.equal(res.headers.get('cache-control'), object.headers['Cache-Control'], `${method} ${object.path}`)
        assert.equal(res.headers.get('content-length'), String(object.size), `${method} ${object.path}`)
        assert.equal(res.headers.get('x-amz-meta-docker-content-digest'), object.headers['Docker-Content-Digest'] ?? object.digest)
        const body = Buffer.from(await res.arrayBuffer())
        if (method === 'GET') assert.equal(sha256(body), object.digest, object.path)
      }
    }
    assert.deepEqual(await (await fetch(objectUrl('v2/'))).json(), {})
    assert.deepEqual(await (await fetch(objectUrl('v2/index.json'))).json(), {}, 'the index document for website hosting')
    const tags = await (await fetch(objectUrl('v2/team/app/tags/list'))).json()
    assert.deepEqual(tags, {name: 'team/app', tags: ['1.0', '1.1']})
  })

  it('re-deploys nothing, in one listing', async () => {
    proxy.reset()
    const again = await deploy()
    assert.equal(again.code, 0, again.stderr)
    assert.equal(again.report!.result.bytesUploaded, 0)
    assert.equal(again.report!.result.uploaded + again.report!.result.copied, 0)
    // The listing, the deploy state, and where reg keeps the bucket's CORS configuration, one read of it (unchanged: no write).
    const corsReads = implementation.bucketCors ? 1 : 0
    assert.ok(proxy.requests.length <= Math.ceil(index.objects.length / 1000) + 2 + corsReads, `${proxy.requests.length} requests: ${proxy.requests.map((r) => `${r.method} ${r.url}`).join(', ')}`)
    assert.ok(proxy.requests.every((r) => r.method === 'GET' && (r.url.includes('list-type=2') || /\/\.reg-state\.json(\?|$)/.test(r.url) || isCorsRequest(r.url))), `a listing, the deploy state and the CORS configuration: ${proxy.requests.map((r) => `${r.method} ${r.url}`).join(', ')}`)
    assert.equal(proxy.requests.filter((r) => isCorsRequest(r.url)).length, corsReads)
  })

  it('--dry-run touches nothing', async () => {
    proxy.reset()
    const dry = await deploy('--key-prefix', 'dry', '--dry-run')
    assert.equal(dry.code, 0, dry.stderr)
    assert.equal(dry.report!.plan.uploads + dry.report!.plan.copies, index.objects.length)
    assert.ok(proxy.requests.every((r) => r.method === 'GET'))
    assert.deepEqual(await listing('dry/'), [])
  })

  it('a deploy broken by resets and 503s resumes to the same result', async () => {
    const clean = await deploy('--key-prefix', 'clean')
    assert.equal(clean.code, 0, clean.stderr)
    proxy.faults.rate = 0.2
    const broken = await deploy('--key-prefix', 'faulty', '--retries', '0')
    proxy.faults.rate = 0
    assert.notEqual(broken.code, 0, 'with no retries, the injected faults stop the deploy')
    assert.match(broken.stderr, /run the same deploy again to resume/)
    const resumed = await deploy('--key-prefix', 'faulty')
    assert.equal(resumed.code, 0, resumed.stderr)
    assert.ok(resumed.report!.result.uploaded + resumed.report!.result.copied < index.objects.length, 'the resumed deploy skips what the broken one published')
    assert.deepEqual(await listing('faulty/'), await listing('clean/'))
    proxy.faults.rate = 0.2
    const retried = await deploy('--key-prefix', 'retried', '--retries', '6')
    proxy.faults.rate = 0
    assert.equal(retried.code, 0, `retries absorb the same faults: ${retried.stderr}`)
    assert.deepEqual(await listing('retried/'), await listing('clean/'))
  })

  it('a client polling during a deploy never sees a tag whose content is missing', async () => {
    const prefix = 'polled'
    proxy.faults.delayMs = 25 // a slow network: the deploy takes long enough to be watched
    const deploying = deploy('--key-prefix', prefix, '--concurrency', '1')
    let done = false
    void deploying.finally(() => (done = true))
    let seen = 0
    for (let i = 0; i < 2000 && !done; i++) {
      for (const image of fixtures.images) {
        const tagUrl = objectUrl(`${prefix}/v2/${image.name}/manifests/${image.tag}`)
        const res = await fetch(tagUrl)
        if (res.status !== 200) continue
        seen++
        const digest = sha256(Buffer.from(await res.arrayBuffer()))
        const record = index.manifests[digest]
        const children = record.kind === 'index' ? record.children : [digest]
        for (const child of children) {
          assert.equal((await fetch(objectUrl(`${prefix}/v2/${image.name}/manifests/${child}`), {method: 'HEAD'})).status, 200, `${image.name}:${image.tag} child ${child}`)
          for (const blob of index.manifests[child].blobs) {
            assert.equal((await fetch(objectUrl(`${prefix}/v2/${image.name}/blobs/${blob}`), {method: 'HEAD'})).status, 200, `${image.name}:${image.tag} blob ${blob}`)
          }
        }
      }
    }
    const result = await deploying
    proxy.faults.delayMs = 0
    assert.equal(result.code, 0, result.stderr)
    assert.ok(seen > 0, 'the poller saw tags appear while the deploy ran')
  })

  it('skopeo pulls every core fixture from the bucket\'s virtual host; a key that does not exist is 404', async () => {
    for (const image of fixtures.images) {
      const ref = `${image.name}:${image.tag}`
      assert.equal(await skopeoInspectDigest(s3.hostPort, ref), image.digest, ref)
      assert.equal(await skopeoCopyDigest(s3.hostPort, ref, path.join(work, `copies-${implementation.name}`, image.name, image.tag)), image.digest, ref)
    }
    assert.equal((await fetch(objectUrl('v2/team/app/manifests/no-such-tag'))).status, 404)
  })

  // fauxqs has no bucket CORS API: this runs against s3rver only.
  if (implementation.bucketCors) it('sets the bucket\'s CORS configuration: browsers on other origins read, preflights are answered; a re-deploy leaves it', async () => {
    const origin = 'https://ui.example'
    const preflight = await fetch(objectUrl('v2/team/app/manifests/1.0'), {method: 'OPTIONS', headers: {Origin: origin, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization, range'}})
    assert.equal(preflight.status, 200)
    assert.equal(preflight.headers.get('access-control-allow-origin'), '*')
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /GET, HEAD/)
    const read = await fetch(objectUrl('v2/team/app/manifests/1.0'), {headers: {Origin: origin}})
    assert.equal(read.headers.get('access-control-allow-origin'), '*')
    assert.equal(read.headers.get('access-control-expose-headers'), 'Docker-Content-Digest, Docker-Distribution-API-Version, Content-Length, Content-Range, Content-Type, Accept-Ranges, ETag, Link, Location, WWW-Authenticate, OCI-Filters-Applied')
    proxy.reset()
    const one = await deploy('--cors', origin)
    assert.equal(one.code, 0, one.stderr)
    assert.deepEqual(proxy.requests.filter((r) => isCorsRequest(r.url)).map((r) => r.method), ['GET', 'PUT'], 'a new origin: read, then written')
    const other = await fetch(objectUrl('v2/team/app/manifests/1.0'), {headers: {Origin: 'https://elsewhere.example'}})
    assert.equal(other.headers.get('access-control-allow-origin'), null, 'another origin is not let in')
    assert.equal((await fetch(objectUrl('v2/team/app/manifests/1.0'), {headers: {Origin: origin}})).headers.get('access-control-allow-origin'), origin)
    proxy.reset()
    const again = await deploy('--cors', origin)
    assert.equal(again.code, 0, again.stderr)
    assert.deepEqual(proxy.requests.filter((r) => isCorsRequest(r.url)).map((r) => r.method), ['GET'], 'unchanged: read only')
    const restored = await deploy()
    assert.equal(restored.code, 0, restored.stderr)
  })

  it('--prune deletes what no tag reaches, and nothing outside the registry key space', async () => {
    await fetch(objectUrl('keep-me.txt'), {method: 'PUT', body: 'not ours'})
    const rebuilt = await runReg(['build', `oci:${path.join(work, 'src-single')}=team/only`, '-o', path.join(work, 'small-tree')])
    assert.equal(rebuilt.code, 0, rebuilt.stderr)
    const result = await runReg(['deploy', path.join(work, 'small-tree'), '--backend', 's3', '--bucket', S3_BUCKET, '--endpoint', s3.endpoint, '--force-path-style', '--prune', '--prune-grace', '0', '--json', ...(implementation.bucketCors ? [] : ['--cors', 'off'])], {env: S3_CREDENTIALS})
    assert.equal(result.code, 0, result.stderr)
    const keys = (await listing('')).map((l) => l.split(' ')[0])
    const rootKeys = keys.filter((k) => k.startsWith('v2/'))
    const small = (await RegistryTree.load(path.join(work, 'small-tree'))).index
    assert.deepEqual(rootKeys.sort(), [...small.objects.map((o) => o.path), 'v2/index.json'].sort())
    assert.ok(keys.includes('keep-me.txt'))
    assert.ok(keys.some((k) => k.startsWith('clean/v2/')), 'other prefixes are not the registry\'s key space')
  })
})

describe('reg deploy --backend s3 --dedupe redirect (s3rver website endpoint)', () => {
  after(removeTempDirs)

  it('stores each blob once under _blobs/, redirects every repository\'s blob URL to it, and skopeo follows', async () => {
    const work = await tempDir()
    const fixtures = await buildCoreFixtures(work)
    const index = (await RegistryTree.load(fixtures.tree)).index
    const s3 = await startS3rver(path.join(work, 's3rver'), await freePort(), {website: true})
    try {
      const deploy = () => runReg(['deploy', fixtures.tree, '--backend', 's3', '--bucket', S3_BUCKET, '--endpoint', s3.endpoint, '--force-path-style', '--dedupe', 'redirect', '--json'], {env: S3_CREDENTIALS})
      const first = await deploy()
      assert.equal(first.code, 0, first.stderr)
      const xml = await (await fetch(`${s3.endpoint}/${S3_BUCKET}?list-type=2&max-keys=1000`, {headers: {'x-amz-content-sha256': 'UNSIGNED-PAYLOAD'}})).text()
      const keys = new Map([...xml.matchAll(/<Key>([^<]+)<\/Key>.*?<Size>(\d+)<\/Size>/gs)].map((m) => [m[1], Number(m[2])]))
      const uniqueBlobs = new Map(index.objects.filter((o) => o.class === 'blob').map((o) => [o.digest, o.size]))
      assert.deepEqual([...keys.keys()].filter((k) => k.startsWith('_blobs/')).sort(), [...uniqueBlobs.keys()].map((d) => `_blobs/${d}`).sort())
      for (const object of index.objects.filter((o) => o.class === 'blob')) assert.equal(keys.get(object.path), 0, `${object.path} is a redirect`)
      for (const image of fixtures.images) {
        const ref = `${image.name}:${image.tag}`
        assert.equal(await skopeoInspectDigest(s3.hostPort, ref), image.digest, ref)
        assert.equal(await skopeoCopyDigest(s3.hostPort, ref, path.join(work, 'copies', image.name, image.tag)), image.digest, ref)
      }
      const again = await deploy()
      assert.equal(again.code, 0, again.stderr)
      const report = JSON.parse(again.stdout) as {result: {uploaded: number; copied: number}}
      assert.equal(report.result.uploaded + report.result.copied, 0, 'a re-deploy sees the redirects as the blobs they stand for')
    } finally {
      await s3.stop()
    }
  })
})
