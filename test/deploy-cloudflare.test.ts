// reg deploy --backend cloudflare, proven with Cloudflare's own runtime: the deploy's S3 engine writes
// every object through a test-only S3-over-R2 Worker (test/wrangler.ts) into wrangler's local R2
// persistence; the Worker script and bindings the deploy uploaded (to a nock'd Cloudflare API) then
// run in `wrangler dev` over that same bucket. Real clients pull every core fixture with the source
// digests, and every answer is compared with reg serve's for the same tree.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import nock from 'nock'
import {basicAuthSecret, WORKER_COMPATIBILITY_DATE} from '../plugins/backend-cloudflare/cloudflare-backend.js'
import {startRegistryServer, type RunningServer} from '../src/server/registry-server.js'
import {type Containerd, podmanPullDigest, run, skopeoCopyDigest, skopeoInspectDigest, startContainerd} from './clients.js'
import {buildCoreFixtures, type CoreFixtures} from './fixtures.js'
import {requireTool} from './static-hosts.js'
import {REPO_ROOT, removeTempDirs, runReg, tempDir} from './support.js'
import {type RunningWrangler, S3_OVER_R2_WORKER, startWrangler, writeWorkerProject} from './wrangler.js'

const API = 'https://api.cloudflare.com'
const ACCOUNT = '0123456789abcdef0123456789abcdef'
const TOKEN = 'cf-test-token'
const BUCKET = 'reg-test'

interface ApiCall {
  method: string
  path: string
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** The Cloudflare API as nock answers it: every call recorded, each answered with its documented envelope. */
function fakeCloudflareApi(): ApiCall[] {
  const calls: ApiCall[] = []
  const record = (method: string) => function (this: nock.ReplyFnContext, uri: string, body: nock.Body) {
    calls.push({method, path: uri, headers: this.req.headers, body: typeof body === 'string' ? body : JSON.stringify(body)})
    if (uri.endsWith('/workers/subdomain')) return [200, {success: true, errors: [], messages: [], result: {subdomain: 'acme'}}]
    return [200, {success: true, errors: [], messages: [], result: {}}]
  }
  nock(API).persist().put(/.*/).reply(record('PUT')).post(/.*/).reply(record('POST')).get(/.*/).reply(record('GET'))
  return calls
}

/** The script upload's multipart body, parsed the way a server would. */
async function uploadedForm(call: ApiCall): Promise<FormData> {
  return new Response(call.body, {headers: {'Content-Type': String(call.headers['content-type'])}}).formData()
}

interface Answer {
  status: number
  headers: Record<string, string | null>
  bodyDigest: string
}

const COMPARED_HEADERS = ['content-type', 'content-length', 'docker-content-digest', 'cache-control', 'etag', 'accept-ranges', 'content-range', 'docker-distribution-api-version', 'location', 'link', 'www-authenticate', 'oci-filters-applied']

async function answer(base: string, url: string, init: RequestInit = {}): Promise<Answer> {
  // identity: the runtime gzips JSON for clients that accept it (as Cloudflare does), which changes
  // the framing (chunked), not the bytes a client reads; compared here is the uncompressed answer.
  const response = await fetch(`${base}${url}`, {redirect: 'manual', ...init, headers: {'Accept-Encoding': 'identity', ...init.headers as Record<string, string>}})
  const body = Buffer.from(await response.arrayBuffer())
  return {
    status: response.status,
    headers: Object.fromEntries(COMPARED_HEADERS.map((name) => [name, response.headers.get(name)])),
    bodyDigest: createHash('sha256').update(body).digest('hex'),
  }
}

describe('reg deploy --backend cloudflare, served by the Worker in wrangler dev', () => {
  let work: string
  let fixtures: CoreFixtures
  let persist: string
  let calls: ApiCall[]
  let deployOutput: {host: {url: string; messages: string[]}}
  let metadata: {main_module: string; compatibility_date: string; bindings: Array<Record<string, string>>}
  let script: string
  let worker: RunningWrangler
  let serve: RunningServer
  let containerd: Containerd

  before(async () => {
    for (const tool of ['skopeo', 'ctr', 'containerd', 'podman']) requireTool(tool)
    work = await tempDir()
    fixtures = await buildCoreFixtures(work)
    persist = path.join(work, 'r2-state')
    const shimDir = path.join(work, 's3-over-r2')
    await writeWorkerProject(shimDir, {name: 's3-over-r2', script: S3_OVER_R2_WORKER, compatibilityDate: WORKER_COMPATIBILITY_DATE, r2: {BUCKET}})
    const shim = await startWrangler(['dev', '--persist-to', persist], shimDir)
    nock.disableNetConnect()
    nock.enableNetConnect('127.0.0.1')
    calls = fakeCloudflareApi()
    try {
      const result = await runReg(['deploy', fixtures.tree, '--backend', 'cloudflare', '--account-id', ACCOUNT, '--bucket', BUCKET, '--r2-endpoint', `${shim.url}/__s3`, '--json'], {
        env: {CLOUDFLARE_API_TOKEN: TOKEN, AWS_ACCESS_KEY_ID: 'r2-key', AWS_SECRET_ACCESS_KEY: 'r2-secret'},
      })
      assert.equal(result.code, 0, result.stderr)
      deployOutput = JSON.parse(result.stdout) as typeof deployOutput
      assert.deepEqual(shim.problems(), [], shim.output())
    } finally {
      await shim.stop()
    }
    const upload = calls.find((c) => c.method === 'PUT' && c.path === `/client/v4/accounts/${ACCOUNT}/workers/scripts/reg-${BUCKET}`)
    assert.ok(upload, `the script was uploaded: ${calls.map((c) => `${c.method} ${c.path}`).join(', ')}`)
    const form = await uploadedForm(upload)
    metadata = JSON.parse(await (form.get('metadata') as Blob).text()) as typeof metadata
    script = await (form.get('worker.js') as Blob).text()

    // The Worker exactly as uploaded: its script, and its bindings as wrangler's configuration.
    const registryDir = path.join(work, 'registry-worker')
    const r2 = Object.fromEntries(metadata.bindings.filter((b) => b.type === 'r2_bucket').map((b) => [b.name, b.bucket_name]))
    const vars = Object.fromEntries(metadata.bindings.filter((b) => b.type === 'plain_text').map((b) => [b.name, b.text]))
    await writeWorkerProject(registryDir, {name: `reg-${BUCKET}`, script, compatibilityDate: metadata.compatibility_date, r2, vars})
    worker = await startWrangler(['dev', '--persist-to', persist], registryDir)
    serve = await startRegistryServer(fixtures.tree, {port: 0})
    containerd = await startContainerd(path.join(work, 'containerd'))
  })
  after(async () => {
    nock.cleanAll()
    nock.enableNetConnect()
    await containerd?.stop()
    await serve?.close()
    await worker?.stop()
    await removeTempDirs()
  })

  it('uploads reg\'s worker.js as an ES module bound to the bucket, then enables workers.dev (no routes)', async () => {
    assert.equal(script, await readFile(path.join(REPO_ROOT, 'plugins/backend-cloudflare/worker.js'), 'utf8'), 'the script is the versioned file, unchanged')
    assert.deepEqual(metadata, {
      main_module: 'worker.js',
      compatibility_date: WORKER_COMPATIBILITY_DATE,
      bindings: [
        {type: 'r2_bucket', name: 'REGISTRY', bucket_name: BUCKET},
        {type: 'plain_text', name: 'REG_KEY_PREFIX', text: ''},
        {type: 'plain_text', name: 'REG_TAG_MAX_AGE', text: '60'},
        {type: 'plain_text', name: 'REG_MAX_FILTER_BYTES', text: String(4 * 1024 * 1024)},
      ],
    })
    const upload = calls.find((c) => c.path.endsWith(`/workers/scripts/reg-${BUCKET}`))!
    assert.match(String(upload.headers['content-type']), /^multipart\/form-data; boundary=/)
    assert.match(upload.body, /name="worker.js"; filename="worker.js"\r\nContent-Type: application\/javascript\+module/)
    assert.deepEqual(calls.map((c) => `${c.method} ${c.path}`), [
      `PUT /client/v4/accounts/${ACCOUNT}/workers/scripts/reg-${BUCKET}`,
      `PUT /client/v4/accounts/${ACCOUNT}/workers/scripts/reg-${BUCKET}/routes`,
      `POST /client/v4/accounts/${ACCOUNT}/workers/scripts/reg-${BUCKET}/subdomain`,
      `GET /client/v4/accounts/${ACCOUNT}/workers/subdomain`,
    ])
    assert.deepEqual(JSON.parse(calls[1].body), [], 'no routes: the list replaces the Worker\'s routes')
    assert.deepEqual(JSON.parse(calls[2].body), {enabled: true, previews_enabled: false})
    for (const call of calls) assert.equal(call.headers.authorization, `Bearer ${TOKEN}`)
    assert.equal(deployOutput.host.url, `https://reg-${BUCKET}.acme.workers.dev`)
  })

  it('skopeo inspect and skopeo copy --all get the source digests', async () => {
    for (const image of fixtures.images) {
      const ref = `${image.name}:${image.tag}`
      assert.equal(await skopeoInspectDigest(worker.hostPort, ref), image.digest, `inspect ${ref}`)
      assert.equal(await skopeoCopyDigest(worker.hostPort, ref, path.join(work, 'copies', image.name, image.tag)), image.digest, `copy ${ref}`)
    }
  })

  it('ctr pulls every image; the multi-arch index with --platform linux/arm64 and --all-platforms', async () => {
    for (const image of fixtures.images) {
      const ref = `${worker.hostPort}/${image.name}:${image.tag}`
      if (image.multiArch) {
        assert.equal(await containerd.pull(ref, {platform: 'linux/arm64'}), image.digest, `ctr --platform linux/arm64 ${ref}`)
        assert.equal(await containerd.pull(ref, {allPlatforms: true}), image.digest, `ctr --all-platforms ${ref}`)
      } else {
        assert.equal(await containerd.pull(ref), image.digest, `ctr ${ref}`)
      }
    }
  })

  it('podman pulls every image', async () => {
    for (const image of fixtures.images) {
      const ref = `${worker.hostPort}/${image.name}:${image.tag}`
      assert.equal(await podmanPullDigest(path.join(work, 'podman'), ref), image.digest, `podman ${ref}`)
    }
  })

  it('answers every URL class as reg serve does: headers, bodies, Range, 304, 404 codes, 405, pagination, referrers', async () => {
    const multi = fixtures.images.find((i) => i.multiArch)!
    const index = JSON.parse(await (await fetch(`${serve.url}/v2/${multi.name}/manifests/${multi.digest}`)).text()) as {manifests: Array<{digest: string}>}
    const child = index.manifests[0].digest
    const childManifest = JSON.parse(await (await fetch(`${serve.url}/v2/${multi.name}/manifests/${child}`)).text()) as {layers: Array<{digest: string}>}
    const blob = `/v2/${multi.name}/blobs/${childManifest.layers[0].digest}`
    const zero = `sha256:${'0'.repeat(64)}`
    const urls: Array<[string, RequestInit?]> = [
      ['/v2/'], ['/v2'], ['/v2/_catalog'], ['/v2/team/app/tags/list'], ['/v2/team/app/tags/list?n=1'], ['/v2/team/app/tags/list?n=1&last=1.0'], ['/v2/team/app/tags/list?n=x'],
      [`/v2/${multi.name}/manifests/${multi.tag}`], [`/v2/${multi.name}/manifests/${multi.tag}`, {method: 'HEAD'}],
      [`/v2/${multi.name}/manifests/${multi.digest}`], [`/v2/${multi.name}/manifests/${child}`, {method: 'HEAD'}],
      [`/v2/${multi.name}/manifests/${multi.digest}`, {headers: {'If-None-Match': `"${multi.digest}"`}}],
      [`/v2/${multi.name}/manifests/${multi.digest}`, {headers: {'If-None-Match': '"sha256:other"'}}],
      [blob], [blob, {method: 'HEAD'}], [blob, {headers: {Range: 'bytes=0-9'}}], [blob, {headers: {Range: 'bytes=-5'}}], [blob, {headers: {Range: 'bytes=10-'}}],
      [blob, {headers: {Range: 'bytes=99999999-'}}], [blob, {headers: {Range: 'bytes=0-1,4-5'}}], [blob, {headers: {'If-None-Match': `"${childManifest.layers[0].digest}"`}}],
      ['/v2/team/app/manifests/no-such-tag'], [`/v2/team/app/manifests/${zero}`], [`/v2/team/app/blobs/${zero}`], ['/v2/no/such/repo/tags/list'], ['/v2/team/app/blobs/not-a-digest'],
      ['/v2/anything/else'], ['/v2/team/app/blobs/uploads/'], ['/'], ['/index.html'], ['/v2/index.json'],
      [`/v2/team/app/referrers/${multi.digest}`], [`/v2/team/app/referrers/${multi.digest}?artifactType=application/x-sig`], ['/v2/team/app/referrers/nope'], [`/v2/Team/App/referrers/${multi.digest}`],
      ['/v2/team/app/manifests/1.0', {method: 'POST'}], ['/v2/team/app/blobs/uploads/', {method: 'POST'}], ['/v2/', {method: 'DELETE'}],
      ['/v2/team/app/manifests/1.0', {method: 'HEAD'}], ['/v2/team/app/manifests/1.0', {method: 'HEAD'}],
    ]
    for (const [url, init] of urls) {
      const fromServe = await answer(serve.url, url, init)
      const fromWorker = await answer(worker.url, url, init)
      assert.deepEqual(fromWorker, fromServe, `${init?.method ?? 'GET'} ${url} ${JSON.stringify(init?.headers ?? {})}`)
    }
    // The edge cache answers the second GET of a digest: the same bytes and headers.
    for (let i = 0; i < 2; i++) assert.deepEqual(await answer(worker.url, blob), await answer(serve.url, blob), `cached GET ${blob}`)
  })

  it('wrangler printed no warning about the generated Worker', () => {
    assert.deepEqual(worker.problems(), [], worker.output())
  })
})

describe('the Worker with REG_BASIC_AUTH (a Worker secret)', () => {
  let work: string
  let worker: RunningWrangler
  let fixtures: {tree: string}

  before(async () => {
    requireTool('skopeo')
    work = await tempDir()
    fixtures = {tree: path.join(work, 'tree')}
    const built = await runReg(['build', `oci:${path.join(REPO_ROOT, 'examples/hello')}=team/private:1`, '-o', fixtures.tree])
    assert.equal(built.code, 0, built.stderr)
    const persist = path.join(work, 'r2-state')
    const shimDir = path.join(work, 's3-over-r2')
    await writeWorkerProject(shimDir, {name: 's3-over-r2', script: S3_OVER_R2_WORKER, compatibilityDate: WORKER_COMPATIBILITY_DATE, r2: {BUCKET}})
    const shim = await startWrangler(['dev', '--persist-to', persist], shimDir)
    nock.disableNetConnect()
    nock.enableNetConnect('127.0.0.1')
    const calls = fakeCloudflareApi()
    const users = path.join(work, 'users')
    await writeFile(users, 'puller:correct horse battery staple\n')
    try {
      const result = await runReg(['deploy', fixtures.tree, '--backend', 'cloudflare', '--account-id', ACCOUNT, '--bucket', BUCKET, '--r2-endpoint', `${shim.url}/__s3`, '--basic-auth', users, '--route', 'registry.example.com/*'], {
        env: {CLOUDFLARE_API_TOKEN: TOKEN, AWS_ACCESS_KEY_ID: 'r2-key', AWS_SECRET_ACCESS_KEY: 'r2-secret'},
      })
      assert.equal(result.code, 0, result.stderr)
    } finally {
      await shim.stop()
      nock.cleanAll()
      nock.enableNetConnect()
    }
    const form = await uploadedForm(calls.find((c) => c.method === 'PUT' && c.path.endsWith(`/workers/scripts/reg-${BUCKET}`))!)
    const metadata = JSON.parse(await (form.get('metadata') as Blob).text()) as {bindings: Array<Record<string, string>>}
    const script = await (form.get('worker.js') as Blob).text()
    const secret = metadata.bindings.find((b) => b.type === 'secret_text')
    assert.ok(secret && secret.name === 'REG_BASIC_AUTH', 'the credentials are a secret binding')
    assert.match(secret.text, /^puller:pbkdf2-sha256:\d+:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+\n$/, 'hashed, never the password')
    assert.ok(!script.includes('puller') && !secret.text.includes('horse'), 'no credential in the script, no password in the secret')
    assert.deepEqual(JSON.parse(calls.find((c) => c.path.endsWith('/routes'))!.body), [{pattern: 'registry.example.com/*'}])
    assert.deepEqual(JSON.parse(calls.find((c) => c.path.endsWith('/subdomain'))!.body), {enabled: false, previews_enabled: false})

    const dir = path.join(work, 'registry-worker')
    const r2 = Object.fromEntries(metadata.bindings.filter((b) => b.type === 'r2_bucket').map((b) => [b.name, b.bucket_name]))
    const vars = Object.fromEntries(metadata.bindings.filter((b) => b.type === 'plain_text').map((b) => [b.name, b.text]))
    await writeWorkerProject(dir, {name: `reg-${BUCKET}`, script, compatibilityDate: WORKER_COMPATIBILITY_DATE, r2, vars, secrets: {REG_BASIC_AUTH: secret.text}})
    worker = await startWrangler(['dev', '--persist-to', persist], dir)
  })
  after(async () => {
    await worker?.stop()
    await removeTempDirs()
  })

  it('asks for credentials (401, Basic challenge, spec error) and refuses wrong ones', async () => {
    for (const authorization of [undefined, `Basic ${Buffer.from('puller:wrong').toString('base64')}`, `Basic ${Buffer.from('nobody:correct horse battery staple').toString('base64')}`, 'Bearer x']) {
      const response = await fetch(`${worker.url}/v2/team/private/manifests/1`, {headers: authorization ? {Authorization: authorization} : {}})
      assert.equal(response.status, 401, authorization)
      assert.equal(response.headers.get('www-authenticate'), 'Basic realm="reg"')
      assert.equal((await response.json() as {errors: Array<{code: string}>}).errors[0].code, 'UNAUTHORIZED')
    }
  })

  it('serves the listed user, with private caching, and skopeo pulls with --creds', async () => {
    const response = await fetch(`${worker.url}/v2/team/private/manifests/1`, {headers: {Authorization: `Basic ${Buffer.from('puller:correct horse battery staple').toString('base64')}`}})
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('cache-control'), 'private, max-age=60')
    assert.ok(response.headers.get('docker-content-digest'))
    const inspected = JSON.parse(await run('skopeo', ['inspect', '--tls-verify=false', '--creds', 'puller:correct horse battery staple', `docker://${worker.hostPort}/team/private:1`])) as {Digest: string}
    assert.equal(inspected.Digest, response.headers.get('docker-content-digest'))
  })

  it('the hashing used by the deploy is what the Worker checks (lines already hashed pass through)', async () => {
    const file = path.join(work, 'hashed')
    await writeFile(file, 'a:pbkdf2-sha256:1000:c2FsdA==:aGFzaA==\n')
    assert.equal(await basicAuthSecret(file), 'a:pbkdf2-sha256:1000:c2FsdA==:aGFzaA==\n')
  })

  it('wrangler printed no warning about the generated Worker', () => {
    assert.deepEqual(worker.problems(), [], worker.output())
  })
})
