// The catalog page (reg build --page) on both Cloudflare backends, in Cloudflare's own local runtime:
// the Worker (R2 written by the deploy's S3 engine, then `wrangler dev`) answers every page URL as
// reg serve does for the same tree, a re-deploy sends nothing, --prune removes the page, and with
// --basic-auth the page needs a user; Pages (the deployment as the nock'd API received it, in
// `wrangler pages dev`) serves the page files with their headers within its 100 `_headers` rules.
// /v2/ is unchanged on both. One headless Chromium check: the root page renders from the Worker.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import nock from 'nock'
import {PAGES_LIMITS} from '../plugins/backend-cloudflare-pages/pages-layout.js'
import {corsHeaders} from '../src/core/cors.js'
import {startRegistryServer, type RunningServer} from '../src/server/registry-server.js'
import type {RegistryObject} from '../src/tree/model.js'
import {RegistryTree} from '../src/tree/registry-tree.js'
import {launchChromium, openPage} from './browser.js'
import {requireTool} from './static-hosts.js'
import {EXAMPLE_LAYOUT, removeTempDirs, runReg, tempDir, writeTinyIndexLayout} from './support.js'
import {deployThroughR2, fakePagesApi, PAGES_ACCOUNT, PAGES_PROJECT, PAGES_TOKEN, type RunningWrangler, startUploadedWorker, startWrangler, type UploadedWorker, writePagesDeployment} from './wrangler.js'

const AUTH_PREFIX = 'auth'
const PRUNED_PREFIX = 'pruned'
const GOOD = 'alice:correct horse'
const basic = (credentials: string) => ({Authorization: `Basic ${Buffer.from(credentials).toString('base64')}`})
const sha = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`

interface Answer {
  status: number
  headers: Record<string, string | null>
  bodyDigest: string
}

const COMPARED_HEADERS = ['content-type', 'content-length', 'cache-control', 'etag', 'docker-content-digest', 'docker-distribution-api-version', 'location', 'www-authenticate',
  'access-control-allow-origin', 'access-control-expose-headers']

async function answer(base: string, url: string, init: RequestInit = {}): Promise<Answer> {
  // identity: wrangler gzips text for clients that accept it, which changes the framing, not the bytes
  const response = await fetch(`${base}${url}`, {redirect: 'manual', ...init, headers: {'Accept-Encoding': 'identity', ...init.headers as Record<string, string>}})
  return {
    status: response.status,
    headers: Object.fromEntries(COMPARED_HEADERS.map((name) => [name, response.headers.get(name)])),
    bodyDigest: sha(Buffer.from(await response.arrayBuffer())),
  }
}

/** The headers each class of the page is served with (the tree's tagMaxAge is 60), as on every host. */
function expectedHeaders(object: RegistryObject): {type: string; cache: string} {
  if (object.class === 'page-asset') return {type: object.path.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8', cache: 'public, max-age=31536000, immutable'}
  return {type: object.class === 'page' ? 'text/html; charset=utf-8' : 'application/json', cache: 'public, max-age=60'}
}

interface DeployJson {
  plan: {uploads: number; copies: number; deletes: number; bytesToDelete: number}
}

describe('the catalog page on Cloudflare: the Worker over R2 and Pages', () => {
  let work: string
  let tree: RegistryTree
  let pageObjects: RegistryObject[]
  let deploys: UploadedWorker[]
  let worker: RunningWrangler
  let authWorker: RunningWrangler
  let pages: RunningWrangler
  let serve: RunningServer
  let pagesApi: ReturnType<typeof fakePagesApi>
  let pagesRedeploy: {uploaded: boolean; same: boolean}

  before(async () => {
    requireTool('chromium')
    work = await tempDir('reg-page-cloudflare-')
    const multi = path.join(work, 'src-multi')
    await writeTinyIndexLayout(multi, ['linux/amd64', 'linux/arm64'], 'multi')
    const treeDir = path.join(work, 'tree')
    const built = await runReg(['build', '--page', '-o', treeDir, `oci:${EXAMPLE_LAYOUT}`, `oci:${multi}=team/multi`])
    assert.equal(built.code, 0, built.stderr)
    tree = await RegistryTree.load(treeDir)
    pageObjects = tree.objects.filter((o) => o.class.startsWith('page'))
    assert.ok(pageObjects.some((o) => o.class === 'page-data') && pageObjects.some((o) => o.class === 'page-asset'), 'a data piece and assets to check')
    const plain = path.join(work, 'tree-without-page')
    const builtPlain = await runReg(['build', '--no-page', '-o', plain, `oci:${EXAMPLE_LAYOUT}`, `oci:${multi}=team/multi`])
    assert.equal(builtPlain.code, 0, builtPlain.stderr)
    const users = path.join(work, 'users')
    await writeFile(users, `${GOOD}\n`)

    const persist = path.join(work, 'r2-state')
    deploys = await deployThroughR2(work, persist, [
      {tree: treeDir, args: ['--json']},
      {tree: treeDir, args: ['--json']},
      {tree: treeDir, args: ['--key-prefix', AUTH_PREFIX, '--basic-auth', users, '--private', 'team/**', '--json']},
      {tree: treeDir, args: ['--key-prefix', PRUNED_PREFIX, '--json']},
      {tree: plain, args: ['--key-prefix', PRUNED_PREFIX, '--prune', '--json']},
    ])
    worker = await startUploadedWorker(path.join(work, 'worker'), persist, deploys[0])
    authWorker = await startUploadedWorker(path.join(work, 'auth-worker'), persist, deploys[2])
    serve = await startRegistryServer(treeDir, {port: 0})

    nock.disableNetConnect()
    nock.enableNetConnect('127.0.0.1')
    pagesApi = fakePagesApi()
    const pagesDeploy = () => runReg(['deploy', treeDir, '--backend', 'cloudflare-pages', '--project', PAGES_PROJECT, '--account-id', PAGES_ACCOUNT, '--json'], {env: {CLOUDFLARE_API_TOKEN: PAGES_TOKEN}})
    const first = await pagesDeploy()
    assert.equal(first.code, 0, first.stderr)
    const callsBefore = pagesApi.calls.length
    const second = await pagesDeploy()
    assert.equal(second.code, 0, second.stderr)
    pagesRedeploy = {
      uploaded: pagesApi.calls.slice(callsBefore).some((c) => c.path.endsWith('/pages/assets/upload')),
      same: JSON.stringify(pagesApi.deployments[1]) === JSON.stringify(pagesApi.deployments[0]),
    }
    nock.cleanAll()
    nock.enableNetConnect()
    const out = path.join(work, 'pages-output')
    await writePagesDeployment(pagesApi, pagesApi.deployments[0], out)
    pages = await startWrangler(['pages', 'dev', out, '--compatibility-date', '2025-01-01', '--persist-to', path.join(work, 'pages-state')], work)
  })

  after(async () => {
    await serve?.close()
    await pages?.stop()
    await authWorker?.stop()
    await worker?.stop()
    await removeTempDirs()
  })

  it('Worker: every page URL answers as reg serve answers it (/, /index.html, a repository page, data, assets; HEAD, ETag/304, 404), with CORS; /v2/ unchanged', async () => {
    const root = tree.objectsByPath.get('index.html')!
    const repository = pageObjects.find((o) => o.path === 'r/team/multi/-/index.html')!
    assert.ok(root && repository)
    const urls: Array<[string, RequestInit?]> = [
      ['/'], ['/index.html'], ['/', {method: 'HEAD'}], ['/r/team/multi/-/'], ['/r/team/multi/-/', {method: 'HEAD'}],
      ['/', {headers: {'If-None-Match': `"${root.digest}"`}}], ['/r/team/multi/-/', {headers: {'If-None-Match': `"${repository.digest}"`}}],
      ['/r/no/such/-/'], ['/r/team/multi/-/tags-9.json'], ['/-/page.0000000000000000.css'], ['/-/'], ['/r/'], ['/-'], ['/r/team/multi/-'],
      ['/', {method: 'POST'}],
      ['/v2/'], ['/v2'], ['/v2/_catalog'], ['/v2/team/multi/tags/list'], ['/v2/team/multi/manifests/multi'], ['/v2/r/team/multi/-/index.html'], ['/v2/index.html'],
      ...pageObjects.map((o): [string] => [`/${o.path}`]),
    ]
    for (const [url, init] of urls) {
      const fromWorker = await answer(worker.url, url, init)
      const fromServe = await answer(serve.url, url, init)
      // wrangler dev's own proxy passes every HTML body through HTMLRewriter (for its live reload),
      // which sends it chunked: the length is the Worker's only where no body is rewritten (HEAD, checked here too).
      if (fromWorker.headers['content-type']?.startsWith('text/html') && fromWorker.status === 200 && (init?.method ?? 'GET') === 'GET') fromWorker.headers['content-length'] = fromServe.headers['content-length']
      assert.deepEqual(fromWorker, fromServe, `${init?.method ?? 'GET'} ${url} ${JSON.stringify(init?.headers ?? {})}`)
    }
    // By name, beside the comparison: each class with its headers, the bytes of the tree, and CORS (reg serve's default, *).
    for (const [url, object] of [['/', root], ...pageObjects.map((o) => [`/${o.path}`, o])] as Array<[string, RegistryObject]>) {
      for (let i = 0; i < 2; i++) { // the second GET from the edge cache
        const response = await fetch(`${worker.url}${url}`)
        assert.equal(response.status, 200, url)
        assert.equal(sha(Buffer.from(await response.arrayBuffer())), object.digest, url)
        const want = expectedHeaders(object)
        assert.deepEqual([response.headers.get('content-type'), response.headers.get('cache-control')], [want.type, want.cache], url)
        for (const [name, value] of Object.entries(corsHeaders('*'))) assert.equal(response.headers.get(name), value, `${url}: ${name}`)
      }
    }
    const api = await fetch(`${worker.url}/v2/`)
    assert.equal(api.status, 200)
    assert.deepEqual(await api.json(), {})
    assert.equal(api.headers.get('docker-distribution-api-version'), 'registry/2.0')
  })

  it('Worker: a re-deploy of the same tree sends nothing (the page\'s keys are listed); --prune of a tree without the page removes them all', () => {
    const again = JSON.parse(deploys[1].stdout) as DeployJson
    assert.deepEqual([again.plan.uploads, again.plan.copies, again.plan.deletes], [0, 0, 0])
    // The tree without the page differs from the other in its page objects only: those are what --prune deletes.
    const pruned = JSON.parse(deploys[4].stdout) as DeployJson
    assert.deepEqual([pruned.plan.uploads, pruned.plan.deletes, pruned.plan.bytesToDelete], [0, pageObjects.length, pageObjects.reduce((sum, o) => sum + o.size, 0)])
  })

  it('Worker with --basic-auth and --private team/**: the page needs a user (it lists every repository), answered Cache-Control: private', async () => {
    const anyAsset = pageObjects.find((o) => o.class === 'page-asset')!
    const anyData = pageObjects.find((o) => o.class === 'page-data')!
    for (const url of ['/', '/index.html', '/r/team/multi/-/', `/${anyData.path}`, `/${anyAsset.path}`]) {
      const anonymous = await fetch(`${authWorker.url}${url}`)
      assert.equal(anonymous.status, 401, `anonymous ${url}`)
      assert.equal(anonymous.headers.get('www-authenticate'), 'Basic realm="reg"')
      assert.equal((await fetch(`${authWorker.url}${url}`, {headers: basic('alice:wrong')})).status, 401, `wrong password ${url}`)
      for (let i = 0; i < 2; i++) { // the second from the edge cache: still only for a user
        const user = await fetch(`${authWorker.url}${url}`, {headers: basic(GOOD)})
        assert.equal(user.status, 200, `user ${url}`)
        assert.match(user.headers.get('cache-control') ?? '', /^private, max-age=/, url)
        await user.arrayBuffer()
        assert.equal((await fetch(`${authWorker.url}${url}`)).status, 401, `anonymous ${url} after a user's GET`)
      }
    }
    assert.equal((await fetch(`${authWorker.url}/v2/`)).status, 401, 'the ping challenges as before')
  })

  it('Pages: the page files are in the deployment; /, a repository page, data and assets answer with their headers (as reg serve), within 100 _headers rules; /v2/ unchanged', async () => {
    const {manifest, headers} = pagesApi.deployments[0]
    for (const object of pageObjects) assert.ok(`/${object.path}` in manifest, `${object.path} deployed`)
    const rules = headers.split('\n').filter((line) => line.startsWith('/'))
    assert.ok(rules.length <= PAGES_LIMITS.headerRules)
    assert.match(pages.output(), new RegExp(`Parsed ${rules.length} valid header rules`), 'Pages read every rule')
    assert.deepEqual(pages.problems(), [], pages.output())
    const root = tree.objectsByPath.get('index.html')!
    const urls: Array<[string, RegistryObject]> = [['/', root], ['/r/team/multi/-/', pageObjects.find((o) => o.path === 'r/team/multi/-/index.html')!]]
    for (const object of pageObjects) if (object.class !== 'page') urls.push([`/${object.path}`, object])
    for (const [url, object] of urls) {
      const response = await fetch(`${pages.url}${url}`, {redirect: 'manual'})
      assert.equal(response.status, 200, url)
      assert.equal(sha(Buffer.from(await response.arrayBuffer())), object.digest, url)
      const want = expectedHeaders(object)
      assert.deepEqual([response.headers.get('content-type'), response.headers.get('cache-control')], [want.type, want.cache], url)
      const fromServe = await fetch(`${serve.url}${url}`)
      await fromServe.arrayBuffer()
      assert.deepEqual([response.headers.get('content-type'), response.headers.get('cache-control')], [fromServe.headers.get('content-type'), fromServe.headers.get('cache-control')], `${url} as reg serve`)
      assert.equal(response.headers.get('access-control-allow-origin'), '*', url)
    }
    // Pages answers a .html URL with a 308 to its directory's URL (the page's links then land there).
    for (const [url, location] of [['/index.html', '/'], ['/r/team/multi/-/index.html', '/r/team/multi/-/']]) {
      const response = await fetch(`${pages.url}${url}`, {redirect: 'manual'})
      assert.deepEqual([response.status, response.headers.get('location')], [308, location], url)
    }
    assert.equal((await fetch(`${pages.url}/r/no/such/-/`)).status, 404)
    const api = await fetch(`${pages.url}/v2/`)
    assert.equal(api.status, 200)
    assert.deepEqual(await api.json(), {})
    assert.equal(api.headers.get('content-type'), 'application/json')
    assert.deepEqual(pagesRedeploy, {uploaded: false, same: true}, 'a second deploy uploads nothing, the same deployment')
  })

  it('headless Chromium: the root page served by the Worker lists the repositories, no request leaves the host', async () => {
    const browser = await launchChromium()
    try {
      const {page, errors, requests} = await openPage(browser, worker.url)
      await page.goto(`${worker.url}/`)
      const names = await page.$$eval('#repositories > li:not([hidden])', (items) => items.map((li) => (li as HTMLElement).dataset.name))
      assert.deepEqual(names, Object.keys(tree.index.repositories).sort())
      await page.click('a[href="r/team/multi/-/index.html"]')
      await page.waitForSelector('#tags li[data-tag="multi"]')
      assert.deepEqual(errors, [])
      assert.deepEqual(requests.filter((url) => !url.startsWith(`${worker.url}/`)), [])
    } finally {
      await browser.close()
    }
  })

  it('wrangler printed no warning about the generated Worker', () => {
    assert.deepEqual(worker.problems(), [], worker.output())
    assert.deepEqual(authWorker.problems(), [], authWorker.output())
  })
})
