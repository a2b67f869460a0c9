// reg deploy --backend cloudflare-pages: the direct-upload flow against a nock'd Pages API (exact
// request shapes, each content uploaded once, nothing the second time), then the deployment exactly
// as uploaded (its manifest, contents, _headers, _redirects) served by `wrangler pages dev`:
// real clients pull every core fixture with the source digests, and no rule is dropped or warned about.
// Every Pages limit is refused before any upload, naming the limit and --backend cloudflare.
import assert from 'node:assert/strict'
import {mkdir, rename, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import nock from 'nock'
import {pagesConfig, PAGES_LIMITS} from '../plugins/backend-cloudflare-pages/pages-layout.js'
import {corsHeaders} from '../src/core/cors.js'
import {BACKENDS} from '../plugins/index.js'
import {startRegistryServer, type RunningServer} from '../src/server/registry-server.js'
import type {RegistryObject, TreeIndex} from '../src/tree/model.js'
import {RegistryTree} from '../src/tree/registry-tree.js'
import {type Containerd, everyClientPulls, startContainerd} from './clients.js'
import {buildCoreFixtures, type CoreFixtures} from './fixtures.js'
import {requireTool, waitUntil} from './static-hosts.js'
import {removeTempDirs, runReg, tempDir} from './support.js'
import {fakePagesApi, PAGES_ACCOUNT as ACCOUNT, PAGES_JWT as JWT, type PagesApiCall as ApiCall, PAGES_PROJECT as PROJECT, PAGES_TOKEN as TOKEN, type RunningWrangler, startWrangler, writePagesDeployment} from './wrangler.js'

const PROJECT_PATH = `/client/v4/accounts/${ACCOUNT}/pages/projects/${PROJECT}`

function deploy(tree: string, ...extra: string[]) {
  return runReg(['deploy', tree, '--backend', 'cloudflare-pages', '--project', PROJECT, '--account-id', ACCOUNT, '--json', ...extra], {env: {CLOUDFLARE_API_TOKEN: TOKEN}})
}

describe('reg deploy --backend cloudflare-pages, served by wrangler pages dev', () => {
  let work: string
  let fixtures: CoreFixtures
  let api: ReturnType<typeof fakePagesApi>
  let firstCalls: ApiCall[]
  let pages: RunningWrangler
  let serve: RunningServer
  let containerd: Containerd
  let out: string

  before(async () => {
    for (const tool of ['skopeo', 'ctr', 'containerd', 'podman']) requireTool(tool)
    work = await tempDir()
    fixtures = await buildCoreFixtures(work)
    nock.disableNetConnect()
    nock.enableNetConnect('127.0.0.1')
    api = fakePagesApi()
    const result = await deploy(fixtures.tree)
    assert.equal(result.code, 0, result.stderr)
    firstCalls = [...api.calls]
    // The deployment exactly as Pages received it, as a directory.
    out = path.join(work, 'pages-output')
    await writePagesDeployment(api, api.deployments[0], out)
    pages = await startWrangler(['pages', 'dev', out, '--compatibility-date', '2025-01-01', '--persist-to', path.join(work, 'pages-state')], work)
    serve = await startRegistryServer(fixtures.tree, {port: 0})
    containerd = await startContainerd(path.join(work, 'containerd'))
  })
  after(async () => {
    nock.cleanAll()
    nock.enableNetConnect()
    await containerd?.stop()
    await serve?.close()
    await pages?.stop()
    await removeTempDirs()
  })

  it('direct upload as wrangler does it: upload token, check-missing, upload, upsert-hashes, deployment', async () => {
    assert.deepEqual(firstCalls.map((c) => `${c.method} ${c.path}`), [
      `GET ${PROJECT_PATH}`,
      `GET ${PROJECT_PATH}/upload-token`,
      'POST /client/v4/pages/assets/check-missing',
      'POST /client/v4/pages/assets/upload',
      'POST /client/v4/pages/assets/upsert-hashes',
      `POST ${PROJECT_PATH}/deployments`,
    ])
    for (const call of firstCalls) assert.equal(call.authorization, call.path.startsWith('/client/v4/pages/assets/') ? `Bearer ${JWT}` : `Bearer ${TOKEN}`)
    const offered = (JSON.parse(firstCalls[2].body) as {hashes: string[]}).hashes
    assert.equal(new Set(offered).size, offered.length, 'each content offered once')
    const uploaded = JSON.parse(firstCalls[3].body) as Array<{key: string; value: string; metadata: {contentType: string}; base64: boolean}>
    assert.deepEqual(uploaded.map((u) => u.key).sort(), [...offered].sort(), 'each missing content uploaded once')
    for (const entry of uploaded) {
      assert.match(entry.key, /^[0-9a-f]{32}$/)
      assert.equal(entry.base64, true)
      assert.equal(typeof entry.metadata.contentType, 'string')
    }
    assert.deepEqual(JSON.parse(firstCalls[4].body), {hashes: offered})
    assert.match(firstCalls[5].contentType, /^multipart\/form-data; boundary=/)
    assert.match(firstCalls[5].body, /name="_headers"; filename="_headers"/)
    assert.match(firstCalls[5].body, /name="_redirects"; filename="_redirects"/)
    const manifest = api.deployments[0].manifest
    assert.ok(Object.keys(manifest).every((file) => file.startsWith('/')))
    assert.ok(!('/_headers' in manifest) && !('/_redirects' in manifest), 'the rule files go as form fields, not assets')
    // Blobs stored once for every repository: the shared base layer is one file.
    const blobFiles = Object.keys(manifest).filter((f) => f.startsWith('/_registry/blobs/'))
    assert.equal(new Set(blobFiles).size, blobFiles.length)
  })

  it('a second deploy of the same tree uploads nothing', async () => {
    const before = api.calls.length
    const result = await deploy(fixtures.tree)
    assert.equal(result.code, 0, result.stderr)
    const second = api.calls.slice(before)
    assert.ok(!second.some((c) => c.path.endsWith('/pages/assets/upload')), 'Pages had every content')
    assert.deepEqual(api.deployments[1], api.deployments[0], 'the same deployment')
  })

  it('no rule is dropped or refused by Pages, and no rule path reads as a placeholder', async () => {
    const {headers, redirects} = api.deployments[0]
    assert.ok(!/^\/\S*:[A-Za-z]/m.test(redirects.split('\n').filter((l) => !l.includes('*')).join('\n')), 'static rules hold no placeholder')
    assert.ok(!/ 404$/m.test(redirects), 'no 404 rules (Pages refuses them)')
    assert.match(pages.output(), /Parsed \d+ valid header rules?/)
    assert.match(pages.output(), /Parsed \d+ valid redirect rules?/)
    assert.deepEqual(pages.problems(), [], pages.output())
    assert.ok(headers.split('\n').filter((l) => l.startsWith('/')).length <= PAGES_LIMITS.headerRules)
  })

  it('skopeo inspect and skopeo copy --all get the source digests', async () => {
    await everyClientPulls.skopeo(pages.hostPort, fixtures.images, path.join(work, 'copies'))
  })

  it('ctr pulls every image; the multi-arch index with --platform linux/arm64 and --all-platforms', async () => {
    await everyClientPulls.ctr(containerd, pages.hostPort, fixtures.images)
  })

  it('podman pulls every image', async () => {
    await everyClientPulls.podman(pages.hostPort, fixtures.images, path.join(work, 'podman'))
  })

  it('manifests by tag and digest, GET and HEAD, end (after redirects) with reg serve\'s Content-Type, Docker-Content-Digest and bytes; blobs too; unknown URLs are 404', async () => {
    const tree = await RegistryTree.load(fixtures.tree)
    const checked: RegistryObject[] = tree.index.objects.filter((o) => o.class === 'tag-manifest' || o.class === 'digest-manifest' || o.class === 'blob' || o.class === 'tags-list' || o.class === 'catalog' || o.class === 'referrers' || o.class === 'api-root')
    for (const object of checked) {
      for (const method of ['GET', 'HEAD']) {
        const fromPages = await fetch(`${pages.url}/${object.path}`, {method, headers: {'Accept-Encoding': 'identity'}})
        const fromServe = await fetch(`${serve.url}/${object.path}`, {method, headers: {'Accept-Encoding': 'identity'}})
        const what = `${method} /${object.path}`
        assert.equal(fromPages.status, 200, what)
        for (const header of ['content-type', 'docker-content-digest', 'docker-distribution-api-version']) {
          assert.equal(fromPages.headers.get(header), fromServe.headers.get(header), `${what}: ${header}`)
        }
        if (method === 'GET') assert.deepEqual(Buffer.from(await fromPages.arrayBuffer()), Buffer.from(await fromServe.arrayBuffer()), `${what}: bytes`)
      }
    }
    for (const url of ['/v2/team/app/manifests/no-such-tag', `/v2/team/app/manifests/sha256:${'a'.repeat(64)}`, `/v2/team/app/blobs/sha256:${'b'.repeat(64)}`, '/v2/no/such/tags/list', '/v2/whatever']) {
      const response = await fetch(`${pages.url}${url}`)
      assert.equal(response.status, 404, url)
      assert.match(await response.text(), /"errors"/, url)
    }
  })

  it('CORS: GET and HEAD answers (redirects, errors too) carry the headers of src/core/cors.ts; OPTIONS is 405 on Pages (no preflight)', async () => {
    const multi = fixtures.images.find((i) => i.multiArch)!
    for (const [url, method] of [['/v2/', 'GET'], [`/v2/${multi.name}/manifests/${multi.tag}`, 'GET'], [`/v2/${multi.name}/manifests/${multi.tag}`, 'HEAD'],
      [`/v2/${multi.name}/manifests/${multi.digest}`, 'HEAD'], ['/v2/_catalog', 'GET'], ['/v2/no/such/tags/list', 'GET']]) {
      for (const redirect of ['manual', 'follow'] as const) {
        const response = await fetch(`${pages.url}${url}`, {method, redirect})
        for (const [name, value] of Object.entries(corsHeaders('*'))) assert.equal(response.headers.get(name), value, `${method} ${url} (${redirect}, ${response.status}): ${name}`)
      }
    }
    const preflight = await fetch(`${pages.url}/v2/${multi.name}/manifests/${multi.tag}`, {method: 'OPTIONS', headers: {Origin: 'https://ui.example', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization'}})
    assert.equal(preflight.status, 405, 'Pages answers no preflight: the README says so')
    assert.ok(api.deployments[0].headers.includes(`\n/*\n  Access-Control-Allow-Origin: *\n  Access-Control-Expose-Headers: ${corsHeaders('*')['Access-Control-Expose-Headers']}\n`))
  })

  // Last: it replaces the served _headers with those of a --cors off deploy (wrangler pages dev re-reads it).
  it('--cors off: no CORS header at all (the one Pages adds by itself is detached), and the rule counts in the 100', async () => {
    const result = await deploy(fixtures.tree, '--cors', 'off')
    assert.equal(result.code, 0, result.stderr)
    const {headers} = api.deployments.at(-1)!
    assert.ok(!headers.includes('Access-Control-Expose-Headers') && headers.includes('\n/*\n  ! Access-Control-Allow-Origin\n'), headers)
    assert.equal(pagesConfig((await RegistryTree.load(fixtures.tree)).index).counts.headerRules, pagesConfig((await RegistryTree.load(fixtures.tree)).index, '*').counts.headerRules)
    // Replaced whole (a rename): a write in place is seen half-done by the watcher, an empty file first.
    await writeFile(path.join(work, '_headers.next'), headers)
    await rename(path.join(work, '_headers.next'), path.join(out, '_headers'))
    const multi = fixtures.images.find((i) => i.multiArch)!
    await waitUntil('wrangler pages dev answers with the new _headers', async () => {
      const response = await fetch(`${pages.url}/v2/`)
      return response.headers.get('access-control-allow-origin') === null && response.headers.get('docker-distribution-api-version') === 'registry/2.0'
    }, {attempts: 300, intervalMs: 100})
    for (const [url, method] of [['/v2/', 'GET'], [`/v2/${multi.name}/manifests/${multi.tag}`, 'GET'], [`/v2/${multi.name}/manifests/${multi.tag}`, 'HEAD'], ['/v2/no/such/tags/list', 'GET']]) {
      const response = await fetch(`${pages.url}${url}`, {method})
      assert.deepEqual([...response.headers.keys()].filter((name) => name.startsWith('access-control-')), [], `${method} ${url}`)
    }
    assert.deepEqual(pages.problems(), [], pages.output())
  })
})

describe('Cloudflare Pages limits, refused before any upload', () => {
  after(() => nock.cleanAll())

  const object = (o: Partial<RegistryObject>): RegistryObject => ({path: 'v2/a/manifests/1', class: 'tag-manifest', repository: 'a', digest: `sha256:${'1'.repeat(64)}`, size: 10, headers: {'Content-Type': 'application/vnd.oci.image.manifest.v1+json'}, ...o})
  const index = (repositories: string[], objects: RegistryObject[]) => ({settings: {tagMaxAge: 60}, repositories: Object.fromEntries(repositories.map((r) => [r, {tags: {}}])), objects}) as unknown as TreeIndex

  it('more than 100 header rules (namespace depths): names the limit, suggests --backend cloudflare', () => {
    const names = Array.from({length: 30}, (_, depth) => Array.from({length: depth + 1}, () => 'n').join('/'))
    assert.throws(() => pagesConfig(index(names, [])), (error: Error & {hint?: string}) => /at most 100 _headers rules/.test(error.message) && /--backend cloudflare/.test(error.hint ?? ''))
  })

  it('the catalog page\'s rules count: 22 depths fit without the page (97 rules), not with it (104)', () => {
    const names = Array.from({length: 22}, (_, depth) => Array.from({length: depth + 1}, () => 'n').join('/'))
    assert.equal(pagesConfig(index(names, [])).counts.headerRules, 97)
    const withPage = index(names, [])
    withPage.settings.page = true
    assert.throws(() => pagesConfig(withPage), (error: Error) => /at most 100 _headers rules; this registry needs 104 \(22 namespace depths, 7 for the catalog page\)/.test(error.message))
  })

  it('more than 2,000 static redirects (tags and manifests)', () => {
    const tags = Array.from({length: 2001}, (_, i) => object({path: `v2/a/manifests/t${i}`}))
    assert.throws(() => pagesConfig(index(['a'], tags)), (error: Error & {hint?: string}) => /at most 2000 static _redirects rules; this registry needs 2003/.test(error.message) && /--backend cloudflare/.test(error.hint ?? ''))
  })

  it('a file over 25 MiB, and more than 20,000 files', async () => {
    nock.disableNetConnect()
    try {
      const backend = await BACKENDS.create('cloudflare-pages', {project: PROJECT, 'account-id': ACCOUNT, 'api-token': TOKEN})
      await assert.rejects(backend.putObject('_registry/blobs/x', object({class: 'blob', size: 25 * 1024 * 1024 + 1}), '/nonexistent'), (error: Error & {hint?: string}) => /at most 26214400 bytes \(25 MiB\)/.test(error.message) && /--backend cloudflare/.test(error.hint ?? ''))
      const dir = await tempDir()
      const file = path.join(dir, 'f')
      await writeFile(file, 'x')
      await backend.putObject('seed', object({size: 1}), file)
      for (let i = 0; i < PAGES_LIMITS.files; i++) await backend.copyObject('seed', `f${i}`, object({}))
      await backend.writeHostConfig?.({index: index(['a'], [])} as never, [])
      // finish checks the limits first: no request is made (the network is closed and nothing is nock'd).
      await assert.rejects(backend.finish!({index: index(['a'], [])} as never), (error: Error & {hint?: string}) => /at most 20000 files per deployment; this registry needs 20002/.test(error.message) && /--backend cloudflare/.test(error.hint ?? ''))
    } finally {
      nock.enableNetConnect()
      await removeTempDirs()
    }
  })

  it('no token, no project: clear errors', async () => {
    const saved = process.env.CLOUDFLARE_API_TOKEN
    delete process.env.CLOUDFLARE_API_TOKEN
    try {
      await assert.rejects(BACKENDS.create('cloudflare-pages', {project: PROJECT, 'account-id': ACCOUNT}), /needs a Cloudflare API token/)
      await assert.rejects(BACKENDS.create('cloudflare-pages', {'account-id': ACCOUNT, 'api-token': TOKEN}), /needs --project NAME/)
    } finally {
      if (saved !== undefined) process.env.CLOUDFLARE_API_TOKEN = saved
    }
  })
})
