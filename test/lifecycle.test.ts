// Garbage collection on deploy that never breaks a pull in flight (--prune-grace, kept in the host's
// deploy state: the dir backend's state file, S3's state object), and S3 buckets switched between
// --dedupe copy and redirect. The clock is injected: nothing sleeps.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {createS3Backend} from '../plugins/backend-s3/index.js'
import {dirBackend} from '../plugins/backend-dir/index.js'
import {netlifyBackend} from '../plugins/backend-netlify/index.js'
import type {Backend} from '../src/publish/backend.js'
import {deployTree} from '../src/publish/deploy.js'
import {type RunningS3, S3_BUCKET, S3_CREDENTIALS, startS3rver} from './s3rver.js'
import {type FakeNetlify, startFakeNetlify} from './netlify-api.js'
import {freePort} from './static-hosts.js'
import {removeTempDirs, runReg, tempDir, writeTinyOciLayout} from './support.js'

const HOUR = 3_600_000
const GRACE = 24 * HOUR
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`

/** A host as a pulling client sees it: GET a URL path, undefined for a 404. */
type Fetcher = (urlPath: string) => Promise<Buffer | undefined>

/**
 * A pull cut in two: `resolve` reads the tag (as a client does first), `finish` fetches the
 * manifest by digest and every blob the manifest names, each checked against its digest.
 */
function slowPull(get: Fetcher, repository: string, tag: string) {
  let manifestDigest = ''
  let digests: string[] = []
  return {
    async resolve(): Promise<string> {
      const bytes = await get(`v2/${repository}/manifests/${tag}`)
      assert.ok(bytes, `the tag ${tag} resolves`)
      manifestDigest = sha256(bytes)
      const manifest = JSON.parse(bytes.toString('utf8')) as {config: {digest: string}; layers: Array<{digest: string}>}
      digests = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]
      return manifestDigest
    },
    /** each object of the pull, fetched now: its digest, or 'missing' */
    async finish(): Promise<Record<string, string>> {
      const fetched: Record<string, string> = {}
      for (const [digest, urlPath] of [[manifestDigest, `v2/${repository}/manifests/${manifestDigest}`], ...digests.map((d) => [d, `v2/${repository}/blobs/${d}`])]) {
        const bytes = await get(urlPath)
        fetched[digest] = bytes ? sha256(bytes) : 'missing'
      }
      return fetched
    },
    get digests(): string[] {
      return [manifestDigest, ...digests]
    },
  }
}

async function buildImage(work: string, tree: string, content: string, ref: string): Promise<void> {
  const layout = path.join(work, `layout-${content}`)
  await writeTinyOciLayout(layout, {'content.txt': `${content}\n`}, 'x')
  const built = await runReg(['build', `oci:${layout}:x=${ref}`, '-o', tree])
  assert.equal(built.code, 0, built.stderr)
}

/**
 * The scenario of the issue, on any host: a client resolves team/app:1, a deploy moves the tag and
 * prunes, the client's pull still completes with the old digests; within the grace (counted from the
 * first deploy that no longer had them, not reset by later ones) they stay; after it, they go.
 */
async function pullSpanningAPrune(work: string, host: () => Promise<Backend>, get: Fetcher): Promise<void> {
  const tree = path.join(work, 'tree')
  await buildImage(work, tree, 'old', 'team/app:1')
  await buildImage(work, tree, 'kept', 'team/kept:1')
  const t0 = Date.parse('2026-03-01T00:00:00Z')
  /** each deploy: its report, and the content-addressed keys it deleted (hosts may also rewrite their configuration files) */
  const deploy = async (at: number) => {
    const deleted: string[] = []
    const report = await deployTree(tree, await host(), {prune: true, pruneGraceMs: GRACE, now: () => at, observer: {stepDone: (step) => {
      if (step.action === 'delete' && /sha256:[a-f0-9]{64}/.test(step.key)) deleted.push(step.key)
    }}})
    return {...report, deleted}
  }
  assert.deepEqual((await deploy(t0)).deleted, [])

  const pull = slowPull(get, 'team/app', '1')
  const oldDigest = await pull.resolve()
  await buildImage(work, tree, 'new', 'team/app:1')
  const moved = await deploy(t0 + HOUR)
  assert.deepEqual(moved.deleted, [], 'content of the moved tag is kept within the grace')
  assert.equal(moved.plan.unreferenced, pull.digests.length, 'the old manifest and its config and layer are unreferenced, recorded')
  const fetched = await pull.finish()
  assert.deepEqual(Object.entries(fetched).map(([want, got]) => got === want), pull.digests.map(() => true), `the pull completes with the old digests: ${JSON.stringify(fetched)}`)
  assert.notEqual(await slowPull(get, 'team/app', '1').resolve(), oldDigest, 'the tag has moved')

  // 23 hours after it became unreferenced: still there (the later deploy did not restart the count).
  const within = await deploy(t0 + HOUR + GRACE - HOUR)
  assert.deepEqual(within.deleted, [])
  assert.deepEqual(Object.values(await pull.finish()).filter((d) => d === 'missing'), [])

  const past = await deploy(t0 + HOUR + GRACE)
  assert.deepEqual(new Set(past.deleted.map((key) => /sha256:[a-f0-9]{64}/.exec(key)![0])), new Set(pull.digests), 'after the grace, a deploy removes them')
  assert.deepEqual(Object.values(await pull.finish()), pull.digests.map(() => 'missing'))
  assert.equal(past.plan.unreferenced, 0)
  const kept = slowPull(get, 'team/kept', '1')
  await kept.resolve()
  assert.deepEqual(Object.values(await kept.finish()).filter((d) => d === 'missing'), [], 'what the tree has is untouched')
}

describe('deploy --prune with a grace', () => {
  let work: string
  let s3: RunningS3
  before(async () => {
    work = await tempDir()
    s3 = await startS3rver(path.join(work, 's3rver'), await freePort())
    Object.assign(process.env, S3_CREDENTIALS)
  })
  after(async () => {
    await s3?.stop()
    await removeTempDirs()
  })

  it('dir: a pull that resolved the tag before the deploy completes; after the grace the objects go (state file)', async () => {
    const dest = path.join(work, 'dir-dest')
    await pullSpanningAPrune(path.join(work, 'dir'), () => dirBackend.create({dest}), async (urlPath) => {
      try {
        return await readFile(path.join(dest, urlPath))
      } catch {
        return undefined
      }
    })
    const state = JSON.parse(await readFile(path.join(dest, '.reg-state.json'), 'utf8')) as {unreferenced?: object}
    assert.equal(state.unreferenced, undefined, 'nothing left to count once pruned')
  })

  it('s3: the same, the grace kept in the bucket\'s state object', async () => {
    const prefix = 'grace/'
    await pullSpanningAPrune(path.join(work, 's3'), () => createS3Backend('s3', {bucket: S3_BUCKET, 'key-prefix': prefix}, {region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true}), async (urlPath) => {
      const response = await fetch(`${s3.endpoint}/${S3_BUCKET}/${prefix}${urlPath}`)
      return response.status === 404 ? undefined : Buffer.from(await response.arrayBuffer())
    })
    const state = await fetch(`${s3.endpoint}/${S3_BUCKET}/${prefix}.reg-state.json`)
    assert.equal(state.status, 200)
    assert.deepEqual((await state.json() as {unreferenced: object}).unreferenced, {})
  })

  it('netlify: the same, the grace kept in the site\'s metadata (each deploy atomic)', async () => {
    const fake: FakeNetlify = await startFakeNetlify()
    try {
      await pullSpanningAPrune(path.join(work, 'netlify'), () => netlifyBackend.create({site: fake.siteName, auth: fake.token, 'api-url': fake.apiUrl, retries: 0}), async (urlPath) => {
        // What the site's _redirects do: every repository's blob URL is the one stored copy.
        const blob = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(urlPath)
        return fake.publishedFiles().get(`/${blob ? `_registry/blobs/${blob[1]}` : urlPath}`)
      })
      assert.deepEqual((fake.metadata['reg-deploy-state'] as {unreferenced: object}).unreferenced, {})
    } finally {
      await fake.stop()
    }
  })

  it('a backend that keeps no deploy state is refused a grace, with the way to prune at once', async () => {
    const tree = path.join(work, 'stateless', 'tree')
    await buildImage(path.join(work, 'stateless'), tree, 'x', 'team/app:1')
    const backend = await dirBackend.create({dest: path.join(work, 'stateless', 'dest')})
    // The same backend without the deploy state: everything else inherited.
    const stateless = Object.assign(Object.create(backend) as Backend, {recordUnreferenced: undefined})
    await assert.rejects(deployTree(tree, stateless, {prune: true, pruneGraceMs: GRACE}), (error: Error & {hint?: string}) => /keeps no deploy state/.test(error.message) && /--prune-grace 0/.test(error.hint ?? ''))
    await deployTree(tree, stateless, {prune: true, pruneGraceMs: 0})
  })

  it('--prune-grace is read as a duration, and refused when it is not one', async () => {
    const tree = path.join(work, 'flags', 'tree')
    await buildImage(path.join(work, 'flags'), tree, 'x', 'team/app:1')
    const bad = await runReg(['deploy', tree, '--backend', 'dir', '--dest', path.join(work, 'flags', 'dest'), '--prune', '--prune-grace', 'a while'])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /--prune-grace "a while" is not a duration/)
    const dry = await runReg(['deploy', tree, '--backend', 'dir', '--dest', path.join(work, 'flags', 'dest'), '--prune', '--prune-grace', '30m', '--dry-run', '--json'])
    assert.equal(dry.code, 0, dry.stderr)
  })
})

describe('s3: switching a bucket between --dedupe copy and redirect', () => {
  let work: string
  let s3: RunningS3
  let tree: string
  before(async () => {
    work = await tempDir()
    s3 = await startS3rver(path.join(work, 's3rver'), await freePort())
    tree = path.join(work, 'tree')
    // One layer in two repositories: one blob, two URLs.
    const layout = path.join(work, 'layout')
    await writeTinyOciLayout(layout, {'shared.txt': 'shared\n'}, 'x')
    const built = await runReg(['build', `oci:${layout}:x=team/a:1`, `oci:${layout}:x=team/b:1`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
  })
  after(async () => {
    await s3?.stop()
    await removeTempDirs()
  })

  const deploy = async (dedupe: string, ...extra: string[]) => {
    const result = await runReg(['deploy', tree, '--backend', 's3', '--bucket', S3_BUCKET, '--endpoint', s3.endpoint, '--force-path-style', '--dedupe', dedupe, '--prune', '--json', ...extra], {env: S3_CREDENTIALS})
    assert.equal(result.code, 0, result.stderr)
    return JSON.parse(result.stdout) as {plan: {uploads: number; copies: number; redirects: number; deletes: number; unchanged: number}; result: {deleted: number}}
  }
  /** every key under v2/…/blobs/ and _blobs/: its size, whether it redirects, and whether its bytes are its digest */
  const blobObjects = async () => {
    const xml = await (await fetch(`${s3.endpoint}/${S3_BUCKET}?list-type=2&max-keys=1000`)).text()
    const keys = [...xml.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]).filter((key) => /(^_blobs\/|\/blobs\/)sha256:/.test(key)).sort()
    const described: Record<string, string> = {}
    for (const key of keys) {
      const response = await fetch(`${s3.endpoint}/${S3_BUCKET}/${key}`)
      const bytes = Buffer.from(await response.arrayBuffer())
      const redirect = response.headers.get('x-amz-website-redirect-location')
      described[key] = redirect ? `redirect ${redirect}` : bytes.length > 0 && sha256(bytes) === key.slice(key.lastIndexOf('/') + 1) ? 'bytes' : `wrong ${bytes.length} bytes`
    }
    return described
  }

  it('copy → redirect: one shared copy, made server-side, and a redirect at every blob URL', async () => {
    await deploy('copy')
    const copies = await blobObjects()
    assert.ok(Object.values(copies).every((d) => d === 'bytes') && Object.keys(copies).every((key) => key.startsWith('v2/')), JSON.stringify(copies))
    const converted = await deploy('redirect', '--prune-grace', '0')
    assert.equal(converted.plan.uploads, 0, 'nothing uploaded again: the shared copies are copied from the blob URLs')
    const objects = await blobObjects()
    const shared = Object.entries(objects).filter(([key]) => key.startsWith('_blobs/'))
    assert.ok(shared.length > 0 && shared.every(([, d]) => d === 'bytes'), JSON.stringify(objects))
    for (const [key, description] of Object.entries(objects).filter(([k]) => k.startsWith('v2/'))) {
      assert.equal(description, `redirect /_blobs/${key.slice(key.lastIndexOf('/') + 1)}`, key)
    }
    assert.equal((await deploy('redirect')).plan.unchanged > 0 && (await deploy('redirect')).plan.redirects, 0, 'a re-deploy changes nothing')
  })

  it('redirect → copy: the blob at every URL again, copied from the shared copies, which are pruned after the grace', async () => {
    const converted = await deploy('copy')
    assert.equal(converted.plan.uploads, 0, 'copied from _blobs/, not uploaded')
    const objects = await blobObjects()
    for (const [key, description] of Object.entries(objects)) {
      assert.equal(description, 'bytes', key)
    }
    assert.ok(Object.keys(objects).some((key) => key.startsWith('_blobs/')), 'the shared copies stay within the grace')
    const again = await deploy('copy')
    assert.equal(again.plan.copies + again.plan.uploads + again.plan.deletes, 0, 'a re-deploy within the grace changes nothing')
    await deploy('copy', '--prune-grace', '0')
    assert.deepEqual(Object.keys(await blobObjects()).filter((key) => key.startsWith('_blobs/')), [], 'shared copies pruned like everything else')
  })
})

