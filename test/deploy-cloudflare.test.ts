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
import {basicAuthSecret, WORKER_COMPATIBILITY_DATE} from '../plugins/backend-cloudflare/cloudflare-backend.js'
import {accessPolicy, AUTH_REALM} from '../src/config/access.js'
import {corsHeaders, corsPreflightHeaders} from '../src/core/cors.js'
import {startRegistryServer, type RunningServer} from '../src/server/registry-server.js'
import {type Containerd, everyClientPulls, podmanPrivateState, run, skopeoCopyDigest, startContainerd} from './clients.js'
import {buildCoreFixtures, type CoreFixtures} from './fixtures.js'
import {requireTool} from './static-hosts.js'
import {REPO_ROOT, removeTempDirs, runReg, tempDir, type TinyImage, writeTinyOciLayout} from './support.js'
import {type ApiCall, CF_ACCOUNT, CF_TOKEN, deployThroughR2, R2_BUCKET, type RunningWrangler, startUploadedWorker, type UploadedWorker} from './wrangler.js'

const ACCOUNT = CF_ACCOUNT
const TOKEN = CF_TOKEN
const BUCKET = R2_BUCKET
/** the tree with a Basic-auth Worker lives under this key prefix of the same bucket */
const AUTH_PREFIX = 'auth'
const USER = 'alice'
const PASSWORD = 'correct horse'
const GOOD = `${USER}:${PASSWORD}`
const WRONG = `${USER}:not the password`
const basic = (credentials: string) => ({Authorization: `Basic ${Buffer.from(credentials).toString('base64')}`})

interface Deployed {
  work: string
  persist: string
  fixtures: CoreFixtures
  main: UploadedWorker
  auth: UploadedWorker
  authTree: string
  privateImage: TinyImage
  publicImage: TinyImage
}

let deployed: Promise<Deployed> | undefined

/**
 * Both deploys of this file, through one S3-over-R2 Worker (wrangler starts are slow): the core
 * fixtures with the defaults, and a Basic-auth registry under its own key prefix.
 */
function deployments(): Promise<Deployed> {
  deployed ??= (async () => {
    for (const tool of ['skopeo', 'ctr', 'containerd', 'podman']) requireTool(tool)
    const work = await tempDir()
    const fixtures = await buildCoreFixtures(work)
    // As test/auth-hosts.test.ts: a private team/app and a public pub/app, each with a layer of its own.
    const privateImage = await writeTinyOciLayout(path.join(work, 'private-layout'), {'secret.txt': 'private layer\n'}, '1')
    const publicImage = await writeTinyOciLayout(path.join(work, 'public-layout'), {'hello.txt': 'public layer\n'}, '1')
    const authTree = path.join(work, 'auth-tree')
    const built = await runReg(['build', `oci:${path.join(work, 'private-layout')}:1=team/app:1`, `oci:${path.join(work, 'public-layout')}:1=pub/app:1`, '-o', authTree])
    assert.equal(built.code, 0, built.stderr)
    const users = path.join(work, 'users')
    await writeFile(users, `${USER}:${PASSWORD}\n`)
    const persist = path.join(work, 'r2-state')
    const [main, auth] = await deployThroughR2(work, persist, [
      {tree: fixtures.tree, args: ['--json']},
      {tree: authTree, args: ['--key-prefix', AUTH_PREFIX, '--basic-auth', users, '--private', 'team/**', '--route', 'registry.example.com/*', '--cors', 'off']},
    ])
    return {work, persist, fixtures, main, auth, authTree, privateImage, publicImage}
  })()
  return deployed
}

after(() => removeTempDirs())

interface Answer {
  status: number
  headers: Record<string, string | null>
  bodyDigest: string
}

const COMPARED_HEADERS = ['content-type', 'content-length', 'docker-content-digest', 'cache-control', 'etag', 'accept-ranges', 'content-range', 'docker-distribution-api-version', 'location', 'link', 'www-authenticate', 'oci-filters-applied',
  'access-control-allow-origin', 'access-control-expose-headers', 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-max-age', 'allow']

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
    let main: UploadedWorker
    ;({work, fixtures, persist, main} = await deployments())
    ;({calls, metadata, script} = main)
    deployOutput = JSON.parse(main.stdout) as typeof deployOutput
    worker = await startUploadedWorker(path.join(work, 'registry-worker'), persist, main)
    serve = await startRegistryServer(fixtures.tree, {port: 0})
    containerd = await startContainerd(path.join(work, 'containerd'))
  })
  after(async () => {
    await containerd?.stop()
    await serve?.close()
    await worker?.stop()
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
        // the CORS headers as src/core/cors.ts computes them (the default origin: *)
        {type: 'plain_text', name: 'REG_CORS', text: JSON.stringify({response: corsHeaders('*'), preflight: corsPreflightHeaders('*')})},
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
    await everyClientPulls.skopeo(worker.hostPort, fixtures.images, path.join(work, 'copies'))
  })

  it('ctr pulls every image; the multi-arch index with --platform linux/arm64 and --all-platforms', async () => {
    await everyClientPulls.ctr(containerd, worker.hostPort, fixtures.images)
  })

  it('podman pulls every image', async () => {
    await everyClientPulls.podman(worker.hostPort, fixtures.images, path.join(work, 'podman'))
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
      // CORS preflights, for any URL (reg serve answers them 204, as the Worker must)
      ['/v2/team/app/manifests/1.0', {method: 'OPTIONS', headers: {Origin: 'https://ui.example', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization, range'}}],
      [blob, {method: 'OPTIONS', headers: {Origin: 'https://ui.example', 'Access-Control-Request-Method': 'GET'}}], ['/nowhere', {method: 'OPTIONS'}],
    ]
    for (const [url, init] of urls) {
      const fromServe = await answer(serve.url, url, init)
      const fromWorker = await answer(worker.url, url, init)
      assert.deepEqual(fromWorker, fromServe, `${init?.method ?? 'GET'} ${url} ${JSON.stringify(init?.headers ?? {})}`)
    }
    // CORS on every answer (errors, redirects, cache hits too), 204 to a preflight: what reg serve does, checked above; here by name.
    const preflight = await fetch(`${worker.url}/v2/team/app/tags/list`, {method: 'OPTIONS', headers: {Origin: 'https://ui.example', 'Access-Control-Request-Method': 'GET'}})
    assert.equal(preflight.status, 204)
    for (const [name, value] of Object.entries(corsPreflightHeaders('*'))) assert.equal(preflight.headers.get(name), value, `preflight: ${name}`)
    for (const [url, method] of [['/v2/', 'GET'], [blob, 'HEAD'], [blob, 'GET'], ['/v2/team/app/manifests/no-such-tag', 'GET'], ['/v2', 'GET']]) {
      const response = await fetch(`${worker.url}${url}`, {method, redirect: 'manual'})
      for (const [name, value] of Object.entries(corsHeaders('*'))) assert.equal(response.headers.get(name), value, `${method} ${url}: ${name}`)
      assert.equal(response.headers.get('access-control-allow-methods'), null, `${method} ${url}: preflight headers only on the preflight`)
    }
    // The edge cache answers the second GET of a digest: the same bytes and headers.
    for (let i = 0; i < 2; i++) assert.deepEqual(await answer(worker.url, blob), await answer(serve.url, blob), `cached GET ${blob}`)
  })

  it('wrangler printed no warning about the generated Worker', () => {
    assert.deepEqual(worker.problems(), [], worker.output())
  })
})

describe('access control in the Worker: --basic-auth users, --private team/** (pub/ public), --cors off, under a key prefix', () => {
  let work: string
  let worker: RunningWrangler
  let privateImage: TinyImage
  let publicImage: TinyImage
  let containerd: Containerd
  let ctrAddress: string

  const status = async (url: string, credentials?: string): Promise<number> => (await fetch(`${worker.url}${url}`, {headers: credentials ? basic(credentials) : {}})).status

  before(async () => {
    let auth: UploadedWorker
    let persist: string
    ;({work, persist, auth, privateImage, publicImage} = await deployments())
    worker = await startUploadedWorker(path.join(work, 'auth-worker'), persist, auth)
    containerd = await startContainerd(path.join(work, 'auth-containerd'))
    ctrAddress = path.join(work, 'auth-containerd', 'containerd.sock')
  })
  after(async () => {
    await containerd?.stop()
    await worker?.stop()
  })

  it('uploads the users as a hashed secret, the realm and the private names (from src/config/access.ts) as REG_ACCESS, no CORS binding', async () => {
    const {calls, metadata, script} = (await deployments()).auth
    const secret = metadata.bindings.find((b) => b.type === 'secret_text')
    assert.ok(secret && secret.name === 'REG_BASIC_AUTH', 'the credentials are a secret binding')
    assert.match(secret.text, /^alice:pbkdf2-sha256:\d+:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+\n$/, 'hashed, never the password')
    assert.ok(!script.includes(USER) && !secret.text.includes('horse'), 'no credential in the script, no password in the secret')
    const access = metadata.bindings.find((b) => b.name === 'REG_ACCESS')
    assert.deepEqual(access, {type: 'plain_text', name: 'REG_ACCESS', text: JSON.stringify({realm: AUTH_REALM, privateNames: accessPolicy(new Map(), ['team/**']).namePattern})})
    assert.deepEqual(JSON.parse(calls.find((c) => c.path.endsWith('/routes'))!.body), [{pattern: 'registry.example.com/*'}])
    assert.deepEqual(JSON.parse(calls.find((c) => c.path.endsWith('/subdomain'))!.body), {enabled: false, previews_enabled: false})
    assert.equal(metadata.bindings.find((b) => b.name === 'REG_KEY_PREFIX')?.text, `${AUTH_PREFIX}/`)
    assert.ok(!metadata.bindings.some((b) => b.name === 'REG_CORS'), '--cors off: no CORS binding')
  })

  it('the ping challenges; private URLs need a user (any spelling); private-only content is not served under other names; public pulls anonymously', async () => {
    const ping = await fetch(`${worker.url}/v2/`)
    assert.equal(ping.status, 401, 'anonymous /v2/')
    assert.equal(ping.headers.get('www-authenticate'), 'Basic realm="reg"')
    assert.equal((await ping.json() as {errors: Array<{code: string}>}).errors[0].code, 'UNAUTHORIZED')
    assert.equal(await status('/v2/', GOOD), 200)
    assert.equal(await status('/v2/', WRONG), 401)
    assert.equal(await status('/v2/', 'nobody:correct horse'), 401, 'an unknown user')
    const privateManifest = '/v2/team/app/manifests/1'
    assert.equal(await status(privateManifest), 401)
    assert.equal(await status(privateManifest, WRONG), 401)
    assert.equal(await status(privateManifest, GOOD), 200)
    assert.equal((await fetch(`${worker.url}${privateManifest}`, {headers: {Authorization: 'Bearer x'}})).status, 401, 'another scheme is no credential')
    assert.equal((await fetch(`${worker.url}${privateManifest}`, {headers: {Authorization: 'Basic Og=='}})).status, 401, 'empty credentials are none')
    assert.equal(await status('/v2/team/app/tags/list'), 401)
    for (const spelling of ['%74eam/app', 'pub/%2e%2e/team/app', 'team/%61pp', 'TEAM/app', 'Team/App']) {
      assert.notEqual(await status(`/v2/${spelling}/manifests/1`), 200, `anonymous /v2/${spelling}/manifests/1`)
      assert.notEqual(await status(`/v2/${spelling}/tags/list`), 200, `anonymous /v2/${spelling}/tags/list`)
    }
    const manifest = JSON.parse(await (await fetch(`${worker.url}${privateManifest}`, {headers: basic(GOOD)})).text()) as {layers: Array<{digest: string}>}
    const privateLayer = manifest.layers[0]!.digest
    assert.equal(await status(`/v2/team/app/blobs/${privateLayer}`, GOOD), 200)
    for (const via of ['team/app', 'TEAM/app', 'pub/app', 'nobody/here']) {
      assert.notEqual(await status(`/v2/${via}/blobs/${privateLayer}`), 200, `the private layer, anonymously, under ${via}`)
      assert.notEqual(await status(`/v2/${via}/manifests/${privateImage.manifestDigest}`), 200, `the private manifest by digest, anonymously, under ${via}`)
    }
    assert.notEqual(await status(`/v2/pub/app/blobs/${privateLayer}`, GOOD), 200, 'not under a public name with a user either: pub/app does not hold it')
    assert.equal(await status('/v2/pub/app/manifests/1'), 200, 'public manifest, anonymously')
    assert.equal((await fetch(`${worker.url}/v2/pub/app/manifests/1`, {headers: {Authorization: 'Basic Og=='}})).status, 200, 'Basic Og== (skopeo, podman without credentials) is anonymous')
    assert.equal(await status('/v2/pub/app/manifests/1', WRONG), 401, 'wrong credentials are refused wherever they are sent')
    assert.equal(await status('/v2/pub/app/manifests/1', GOOD), 200)
  })

  it('_catalog: the public repositories to anonymous clients, every one to a user; answers of private repositories and the catalog are Cache-Control: private', async () => {
    const anonymous = await fetch(`${worker.url}/v2/_catalog`)
    assert.deepEqual(await anonymous.json(), {repositories: ['pub/app']})
    assert.equal(anonymous.headers.get('cache-control'), 'private, max-age=60')
    // twice: the edge cache holds the whole catalog for users, never for anonymous clients
    for (let i = 0; i < 2; i++) assert.deepEqual(await (await fetch(`${worker.url}/v2/_catalog`, {headers: basic(GOOD)})).json(), {repositories: ['pub/app', 'team/app']})
    assert.deepEqual(await (await fetch(`${worker.url}/v2/_catalog`)).json(), {repositories: ['pub/app']})
    assert.equal(await status('/v2/_catalog', WRONG), 401)
    assert.equal((await fetch(`${worker.url}/v2/team/app/manifests/1`, {headers: basic(GOOD)})).headers.get('cache-control'), 'private, max-age=60')
    assert.equal((await fetch(`${worker.url}/v2/pub/app/manifests/1`)).headers.get('cache-control'), 'public, max-age=60', 'public content stays cacheable')
  })

  it('skopeo --creds, podman login and ctr --user pull the private repository; anonymous and wrong passwords are denied; the public one pulls anonymously', async () => {
    const hostPort = worker.hostPort
    const inspect = async (ref: string, creds?: string) => (JSON.parse(await run('skopeo', ['inspect', '--tls-verify=false', ...(creds ? ['--creds', creds] : []), `docker://${hostPort}/${ref}`])) as {Digest: string}).Digest
    assert.equal(await inspect('pub/app:1'), publicImage.manifestDigest, 'skopeo, public, anonymous (after a 401 ping)')
    assert.equal(await inspect('team/app:1', GOOD), privateImage.manifestDigest, 'skopeo --creds, private')
    await assert.rejects(inspect('team/app:1'), /unauthorized|authentication required/i, 'skopeo, private, anonymous')
    await assert.rejects(inspect('team/app:1', WRONG), /unauthorized|authentication required|invalid username\/password/i, 'skopeo, private, wrong password')
    assert.equal(await skopeoCopyDigest(hostPort, 'pub/app:1', path.join(work, 'auth-copies', 'pub')), publicImage.manifestDigest, 'skopeo copy, public, anonymous')

    const podman = podmanPrivateState(path.join(work, 'auth-podman'))
    const authfile = path.join(work, 'auth.json')
    const anonymous = path.join(work, 'anonymous.json')
    await writeFile(anonymous, '{"auths":{}}\n')
    await assert.rejects(run('podman', [...podman, 'login', '--tls-verify=false', '--authfile', authfile, '-u', USER, '-p', 'not the password', hostPort]), /invalid username\/password|unauthorized/i, 'podman login, wrong password')
    await run('podman', [...podman, 'login', '--tls-verify=false', '--authfile', authfile, '-u', USER, '-p', PASSWORD, hostPort])
    const podmanPull = async (ref: string, file: string) => {
      await run('podman', [...podman, 'pull', '-q', '--tls-verify=false', '--authfile', file, `${hostPort}/${ref}`])
      const digest = (await run('podman', [...podman, 'image', 'inspect', '--format', '{{.Digest}}', `${hostPort}/${ref}`])).trim()
      await run('podman', [...podman, 'rmi', '-f', `${hostPort}/${ref}`])
      return digest
    }
    assert.equal(await podmanPull('team/app:1', authfile), privateImage.manifestDigest, 'podman login + pull, private')
    assert.equal(await podmanPull('pub/app:1', anonymous), publicImage.manifestDigest, 'podman, public, anonymous')
    await assert.rejects(podmanPull('team/app:1', anonymous), /unauthorized|authentication required/i, 'podman, private, anonymous')

    const ctrPull = async (ref: string, user?: string): Promise<void> => {
      const base = ['--address', ctrAddress, '--namespace', 'reg-auth-test']
      await run('ctr', [...base, 'images', 'pull', '--plain-http', ...(user ? ['--user', user] : []), ref])
      await run('ctr', [...base, 'images', 'rm', ref])
    }
    await ctrPull(`${hostPort}/pub/app:1`)
    await ctrPull(`${hostPort}/team/app:1`, GOOD)
    await assert.rejects(ctrPull(`${hostPort}/team/app:1`), /401|unauthorized/i, 'ctr, private, anonymous')
    await assert.rejects(ctrPull(`${hostPort}/team/app:1`, WRONG), /401|unauthorized/i, 'ctr --user, wrong password')
  })

  it('--cors off: no CORS header on any answer, and OPTIONS is 405 as any other method', async () => {
    for (const [url, init] of [['/v2/', {}], ['/v2/team/app/manifests/1', {headers: basic(GOOD)}], ['/v2/team/app/manifests/1', {method: 'HEAD', headers: basic(GOOD)}], ['/v2/nothing', {headers: basic(GOOD)}],
      ['/v2/pub/app/manifests/1', {method: 'OPTIONS', headers: {Origin: 'https://ui.example', 'Access-Control-Request-Method': 'GET'}}]] as Array<[string, RequestInit]>) {
      const response = await fetch(`${worker.url}${url}`, init)
      assert.deepEqual([...response.headers.keys()].filter((name) => name.startsWith('access-control-')), [], `${init.method ?? 'GET'} ${url}`)
      if (init.method === 'OPTIONS') assert.equal(response.status, 405)
    }
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
