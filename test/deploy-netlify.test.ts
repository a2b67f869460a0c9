// The Netlify backend against a fake Netlify API (test/netlify-api.ts): only required SHA-1s go up,
// each once; a second deploy uploads nothing; 429s are waited out as told; limits are refused before
// any upload. Then the semantics: the published files are served by a `_headers`/`_redirects` rule
// interpreter (test/header-file-server.ts) and real clients pull every core fixture from it.
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {after, afterEach, before, describe, it} from 'node:test'
import nock from 'nock'
import {netlifyBackend} from '../plugins/backend-netlify/index.js'
import {deployTree} from '../src/publish/deploy.js'
import {checkHostLimits} from '../src/publish/header-file-host.js'
import {refuseCaseCollisions} from '../src/publish/plan.js'
import type {TreeIndex} from '../src/tree/model.js'
import {type Containerd, skopeoCopyDigest, skopeoInspectDigest, startContainerd} from './clients.js'
import {buildCoreFixtures, type CoreFixtures} from './fixtures.js'
import {type HeaderMatching, startHeaderFileHost} from './header-file-server.js'
import {type FakeNetlify, startFakeNetlify} from './netlify-api.js'
import {requireTool} from './static-hosts.js'
import {removeTempDirs, runReg, tempDir, writeTinyOciLayout} from './support.js'

const sha1 = (bytes: Buffer) => createHash('sha1').update(bytes).digest('hex')

function uploads(fake: FakeNetlify) {
  return fake.requests.filter((r) => r.method === 'PUT' && r.path.includes('/files/'))
}

async function deployTo(fake: FakeNetlify, tree: string, ...extra: string[]) {
  return runReg(['deploy', tree, '--backend', 'netlify', '--site', fake.siteName, '--api-url', fake.apiUrl, '--json', ...extra], {env: {NETLIFY_AUTH_TOKEN: fake.token}})
}

describe('reg deploy --backend netlify (fake Netlify API)', () => {
  let work: string
  let fixtures: CoreFixtures
  let index: TreeIndex
  let fake: FakeNetlify
  let containerd: Containerd

  before(async () => {
    for (const tool of ['skopeo', 'ctr', 'containerd']) requireTool(tool)
    work = await tempDir()
    fixtures = await buildCoreFixtures(work)
    index = JSON.parse(await readFile(path.join(fixtures.tree, 'registry.json'), 'utf8')) as TreeIndex
    fake = await startFakeNetlify()
    containerd = await startContainerd(path.join(work, 'containerd'))
  })
  after(async () => {
    await containerd?.stop()
    await fake?.stop()
    await removeTempDirs()
  })

  it('uploads only the SHA-1s Netlify asks for, each once; blobs are stored once for every repository', async () => {
    const result = await deployTo(fake, fixtures.tree)
    assert.equal(result.code, 0, result.stderr)
    const report = JSON.parse(result.stdout) as {host: {uploadedFiles: number; uploadedBytes: number; url: string}}
    const deploy = fake.published
    assert.ok(deploy, 'the deploy was published')
    const put = uploads(fake)
    assert.equal(put.length, deploy.required.length, 'one upload per required SHA-1')
    assert.equal(new Set(put.map((r) => r.path)).size, put.length, 'no path uploaded twice')
    assert.ok(put.every((r) => r.status === 200))
    assert.equal(report.host.uploadedFiles, put.length)
    assert.equal(report.host.uploadedBytes, put.reduce((sum, r) => sum + r.bodyBytes, 0))
    assert.equal(report.host.url, `https://${fake.siteName}.netlify.app`)
    // Many paths share content (a tag and its digest manifest; the base layer of 3 platforms): fewer uploads than files.
    const paths = Object.keys(deploy.files)
    assert.ok(put.length < paths.length, `${put.length} uploads for ${paths.length} files`)
    assert.equal(deploy.async, paths.length > 100, `${paths.length} files: synchronous up to 100 files, as Netlify's CLI`)
    // Blobs live once under /_registry/blobs/, never under a repository.
    assert.ok(!paths.some((p) => /\/blobs\/sha256:/.test(p) && p.startsWith('/v2/')))
    for (const digest of Object.keys(index.blobs)) assert.ok(paths.includes(`/_registry/blobs/${digest}`), digest)
    assert.ok(paths.includes('/v2/team/app/manifests/1.0') && paths.includes('/v2/a/b/c/d/deep/tags/list'))
    assert.equal(deploy.files['/v2/team/app/manifests/1.0'], deploy.files[`/v2/team/app/manifests/${fixtures.images[0]?.digest}`], 'a tag and its digest manifest: one content')
  })

  it('writes small pattern rules: one blob rewrite per namespace depth, a digest per tag', async () => {
    const files = fake.publishedFiles()
    const redirects = files.get('/_redirects')?.toString('utf8') ?? ''
    const headers = files.get('/_headers')?.toString('utf8') ?? ''
    for (const depth of [2, 5]) {
      const names = `/v2/${Array.from({length: depth}, (_, i) => `:n${i + 1}`).join('/')}`
      assert.ok(redirects.includes(`${names}/blobs/:digest  /_registry/blobs/:digest  200`), `blob rewrite for depth ${depth}`)
      assert.ok(redirects.includes(`${names}/manifests/:reference  /_registry/errors/manifest-unknown.json  404`))
    }
    assert.ok(redirects.includes('/v2/  /_registry/v2.json  200'))
    assert.equal(redirects.split('\n').filter((l) => l.includes('/blobs/')).length, 2, 'depths 2 and 5 only: not one rule per repository')
    for (const image of fixtures.images) {
      assert.match(headers, new RegExp(`/v2/${image.name}/manifests/${image.tag.replace('.', '\\.')}\\n(  .*\\n)*  Docker-Content-Digest: ${image.digest}`), `${image.name}:${image.tag}`)
    }
    assert.ok(headers.includes('/v2/team/app/manifests/*\n  Content-Type: application/vnd.oci.image.manifest.v1+json'), 'one Content-Type rule for a repository of one media type')
    assert.ok(headers.includes('/v2/team/docker/manifests/*\n  Content-Type: application/vnd.docker.distribution.manifest.v2+json'))
    assert.ok(headers.includes('Content-Type: application/vnd.oci.image.index.v1+json'), 'the multi-arch repository gets per-manifest types')
    const body = JSON.parse(files.get('/_registry/errors/manifest-unknown.json')?.toString('utf8') ?? '{}') as {errors: Array<{code: string}>}
    assert.equal(body.errors[0]?.code, 'MANIFEST_UNKNOWN')
  })

  it('a second deploy of the same tree uploads nothing', async () => {
    const before = uploads(fake).length
    const result = await deployTo(fake, fixtures.tree)
    assert.equal(result.code, 0, result.stderr)
    assert.equal(uploads(fake).length, before)
    assert.deepEqual((JSON.parse(result.stdout) as {host: {uploadedFiles: number}}).host.uploadedFiles, 0)
  })

  for (const matching of ['request-path', 'rewritten-path'] as HeaderMatching[]) {
    it(`skopeo and ctr pull every core fixture from the rules, headers matched on the ${matching}`, async () => {
      const host = await startHeaderFileHost(fake.publishedFiles(), matching)
      try {
        const root = await fetch(`${host.url}/v2/`)
        assert.equal(root.status, 200)
        assert.equal(root.headers.get('content-type'), 'application/json')
        assert.deepEqual(await root.json(), {})
        const missing = await fetch(`${host.url}/v2/team/app/manifests/nope`)
        assert.equal(missing.status, 404)
        assert.equal(((await missing.json()) as {errors: Array<{code: string}>}).errors[0]?.code, 'MANIFEST_UNKNOWN')
        const tag = await fetch(`${host.url}/v2/team/multi/manifests/multi`, {method: 'HEAD'})
        assert.equal(tag.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json')
        assert.equal(tag.headers.get('docker-content-digest'), fixtures.images[2]?.digest)
        assert.equal(tag.headers.get('docker-distribution-api-version'), 'registry/2.0')
        const blob = await fetch(`${host.url}/v2/team/multi/blobs/${fixtures.sharedBaseLayer}`)
        assert.equal(blob.status, 200)
        assert.equal(blob.headers.get('cache-control'), 'public, max-age=31536000, immutable')
        assert.equal('sha256:' + createHash('sha256').update(Buffer.from(await blob.arrayBuffer())).digest('hex'), fixtures.sharedBaseLayer)
        for (const image of fixtures.images) {
          const ref = `${image.name}:${image.tag}`
          assert.equal(await skopeoInspectDigest(host.hostPort, ref), image.digest, `skopeo inspect ${ref}`)
          assert.equal(await skopeoCopyDigest(host.hostPort, ref, path.join(work, 'copies', matching, image.name, image.tag)), image.digest, `skopeo copy ${ref}`)
          const pulled = await containerd.pull(`${host.hostPort}/${ref}`, image.multiArch ? {allPlatforms: true} : {})
          assert.equal(pulled, image.digest, `ctr ${ref}`)
        }
        assert.ok(!host.log.some((r) => r.status === 500), 'no request hit two rules setting one header')
      } finally {
        await host.stop()
      }
    })
  }

  it('a tree of more than 100 files deploys asynchronously: polled until the diff is prepared', async () => {
    const tree = path.join(work, 'many')
    const tags = Array.from({length: 120}, (_, i) => `oci:${path.join(work, 'src-single')}=many/app:t${i}`)
    assert.equal((await runReg(['build', ...tags, '-o', tree])).code, 0)
    const result = await deployTo(fake, tree)
    assert.equal(result.code, 0, result.stderr)
    const deploy = fake.published
    assert.ok(deploy && deploy.async && Object.keys(deploy.files).length > 120)
    assert.ok(deploy.polls >= 2, 'polled through preparing → prepared, then until ready')
    assert.equal(deploy.files['/v2/many/app/manifests/t7'], deploy.files['/v2/many/app/manifests/t99'])
  })

  it('waits out a 429 until X-RateLimit-Reset, and retries 5xx; a failed deploy leaves the site as it was', async () => {
    const tree = path.join(work, 'small')
    const layout = path.join(work, 'small-src')
    await writeTinyOciLayout(layout, {'rate.txt': `rate limited ${Date.now()}\n`}, '1')
    assert.equal((await runReg(['build', `oci:${layout}=rate/app:1`, '-o', tree])).code, 0)
    const reset = Math.ceil(Date.now() / 1000) + 2
    fake.faults.push(
      {prefix: 'PUT /api/v1/deploys/', status: 429, headers: {'X-RateLimit-Reset': String(reset)}},
      {prefix: 'POST /api/v1/sites/', status: 502},
    )
    const result = await deployTo(fake, tree)
    assert.equal(result.code, 0, result.stderr)
    const limited = fake.requests.find((r) => r.status === 429)
    assert.ok(limited, 'the 429 was answered')
    const retried = fake.requests.find((r) => r.method === 'PUT' && r.path === limited.path && r.at > limited.at && r.status === 200)
    assert.ok(retried, 'the same file was uploaded again')
    assert.ok(retried.at >= reset * 1000 - 50, `retried ${retried.at - reset * 1000} ms relative to X-RateLimit-Reset`)
    assert.ok(fake.requests.some((r) => r.method === 'POST' && r.status === 502), 'the 502 was answered, then retried')

    const published = fake.published?.id
    fake.failNextDeploy = 'Build script returned non-zero exit code: 2'
    await writeTinyOciLayout(layout, {'rate.txt': `second ${Date.now()}\n`}, '2')
    assert.equal((await runReg(['build', `oci:${layout}=rate/app:2`, '-o', tree])).code, 0)
    const failed = await deployTo(fake, tree)
    assert.notEqual(failed.code, 0)
    assert.match(failed.stderr, /Build script returned non-zero exit code: 2/)
    assert.equal(fake.published?.id, published, 'the published deploy is unchanged')
  })

  it('refuses, before creating a deploy, a file over --max-file-size, and says what to use instead', async () => {
    const tree = path.join(work, 'big')
    const layout = path.join(work, 'big-src')
    await writeTinyOciLayout(layout, {'big.bin': randomBytes(1_500_000).toString('hex')}, '1')
    assert.equal((await runReg(['build', `oci:${layout}=big/app:1`, '-o', tree])).code, 0)
    const creates = fake.requests.filter((r) => r.method === 'POST').length
    const result = await deployTo(fake, tree, '--max-file-size', '1')
    assert.notEqual(result.code, 0)
    assert.match(result.stderr, /over the 1048576 bytes/)
    assert.match(result.stderr, /--backend s3 or --backend r2/)
    assert.equal(fake.requests.filter((r) => r.method === 'POST').length, creates, 'no deploy was created')
  })

  it('a wrong token and an unknown site get errors that say what to do', async () => {
    const wrong = await runReg(['deploy', fixtures.tree, '--backend', 'netlify', '--site', fake.siteName, '--api-url', fake.apiUrl], {env: {NETLIFY_AUTH_TOKEN: 'nope'}})
    assert.notEqual(wrong.code, 0)
    assert.match(wrong.stderr, /refused the token/)
    assert.match(wrong.stderr, /NETLIFY_AUTH_TOKEN/)
    const unknown = await runReg(['deploy', fixtures.tree, '--backend', 'netlify', '--site', 'no-such-site', '--api-url', fake.apiUrl], {env: {NETLIFY_AUTH_TOKEN: fake.token}})
    assert.notEqual(unknown.code, 0)
    assert.match(unknown.stderr, /no Netlify site "no-such-site"/)
    const missing = await runReg(['deploy', fixtures.tree, '--backend', 'netlify', '--site', fake.siteName], {env: {NETLIFY_AUTH_TOKEN: ''}})
    assert.notEqual(missing.code, 0)
    assert.match(missing.stderr, /needs a token/)
  })
})

describe('Netlify host limits and request shapes', () => {
  afterEach(() => nock.cleanAll())

  it('refuses more than 54,000 files in one directory and paths the host refuses (paths equal but for case: the plan, test/tag-case.test.ts)', () => {
    const limits = {host: 'Netlify', maxFilesPerDirectory: 54_000, maxFileSize: 1024, instead: 'use s3'}
    const many = new Map(Array.from({length: 54_001}, (_, i) => [`_registry/blobs/sha256:${i.toString(16).padStart(64, '0')}`, 1]))
    assert.throws(() => checkHostLimits(many, limits), /more than 54000 files in \/_registry\/blobs\//)
    many.delete([...many.keys()][0] ?? '')
    assert.doesNotThrow(() => checkHostLimits(many, limits))
    assert.throws(() => checkHostLimits(new Map([['v2/a/manifests/x#1', 1]]), limits), /character the host refuses/)
    assert.throws(() => refuseCaseCollisions([['v2/a/manifests/Latest', 'tree'], ['v2/a/manifests/latest', 'tree']], 'Netlify'), /tags "Latest" and "latest" of repository "a": they differ only in case/)
  })

  it('sends the token, the draft flag and the message; prints the draft URL (nock: request shape)', async () => {
    const work = await tempDir()
    const tree = path.join(work, 'tree')
    const layout = path.join(work, 'src')
    await writeTinyOciLayout(layout, {'n.txt': 'nock\n'}, '1')
    assert.equal((await runReg(['build', `oci:${layout}=shape/app:1`, '-o', tree])).code, 0)
    const api = 'https://api.example.test'
    let created: {body: {files: Record<string, string>; draft: boolean; async: boolean}; title: string | null; auth: unknown} | undefined
    let uploaded = 0
    nock(api)
      .get('/api/v1/sites/shape.netlify.app').reply(200, {id: 'site-1', name: 'shape', ssl_url: 'https://shape.netlify.app'})
      .get('/api/v1/sites/site-1/files').reply(404, {code: 404, message: 'Not Found'})
      .post('/api/v1/sites/site-1/deploys').query(true).reply(function (uri, body) {
        created = {body: body as NonNullable<typeof created>['body'], title: new URL(uri, api).searchParams.get('title'), auth: this.req.headers.authorization}
        return [200, {id: 'd1', state: 'prepared', required: [sha1(Buffer.from(JSON.stringify({})))]}]
      })
      .put(/\/api\/v1\/deploys\/d1\/files\/.*/).reply(200, () => {
        uploaded++
        return {}
      })
      .get('/api/v1/sites/site-1/deploys/d1').reply(200, {id: 'd1', state: 'ready', deploy_ssl_url: 'https://d1--shape.netlify.app'})
    const backend = await netlifyBackend.create({site: 'shape', auth: 'secret-token', 'api-url': `${api}/api/v1`, draft: true, message: 'release 1'})
    const report = await deployTree(tree, backend)
    assert.ok(created)
    assert.equal(created.auth, 'Bearer secret-token')
    assert.equal(created.title, 'release 1')
    assert.equal(created.body.draft, true)
    assert.equal(created.body.async, false, 'a small tree deploys synchronously')
    assert.equal(created.body.files['/_registry/v2.json'], sha1(Buffer.from('{}')))
    assert.ok(created.body.files['/_headers'] && created.body.files['/_redirects'])
    assert.equal(uploaded, 1, 'only the required content')
    assert.equal(report.host?.url, 'https://d1--shape.netlify.app')
    assert.ok(report.host?.messages.some((m) => m.includes('docker pull d1--shape.netlify.app/shape/app:1')))
    assert.ok(nock.isDone())
  })
})
