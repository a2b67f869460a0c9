// The catalog page (reg build --page) in a real browser: headless Chromium (Debian's chromium,
// driven by playwright-core) against reg serve and a real nginx, and its headers on every class.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {mkdir, mkdtemp, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {after, before, describe, it, type TestContext} from 'node:test'
import {gzipSync} from 'node:zlib'
import {type Browser, type Page} from 'playwright-core'
import {launchChromium, openPage} from './browser.js'
import {layerTarOf} from '../scripts/tiny-image.js'
import {startRegistryServer, type RunningServer} from '../src/server/registry-server.js'
import {RegistryTree} from '../src/tree/registry-tree.js'
import {buildCoreFixtures, type CoreFixtures} from './fixtures.js'
import {type RunningHost, requireTool} from './static-hosts.js'
import {deployToRealHost, removeTempDirs, runReg, tempDir, writeTinyOciLayout} from './support.js'

const HOSTILE = '</script><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex')

/** An OCI layout of one image whose config carries `labels` (attacker-chosen in the tests). */
async function writeLabelledLayout(out: string, labels: Record<string, string>, ref: string): Promise<void> {
  await mkdir(path.join(out, 'blobs/sha256'), {recursive: true})
  const put = async (b: Buffer) => {
    await writeFile(path.join(out, 'blobs/sha256', sha(b).slice(7)), b)
    return {digest: sha(b), size: b.length}
  }
  const tar = await layerTarOf({'labelled.txt': 'labelled\n'})
  const layer = await put(gzipSync(tar))
  const config = await put(Buffer.from(JSON.stringify({
    os: 'linux', architecture: 'amd64', created: '2026-02-03T04:05:06Z',
    config: {Labels: labels}, rootfs: {type: 'layers', diff_ids: [sha(tar)]},
  })))
  const manifest = await put(Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {mediaType: 'application/vnd.oci.image.config.v1+json', ...config},
    layers: [{mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer}],
  })))
  await writeFile(path.join(out, 'oci-layout'), JSON.stringify({imageLayoutVersion: '1.0.0'}))
  await writeFile(path.join(out, 'index.json'), JSON.stringify({schemaVersion: 2, manifests: [
    {mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: {'org.opencontainers.image.ref.name': ref}},
  ]}))
}

/** A browser page that records what a test must check: console errors, script errors, every request. */
const visibleRepositories = (page: Page) => page.$$eval('#repositories > li:not([hidden])', (items) => items.map((li) => (li as HTMLElement).dataset.name))

async function screenshot(t: TestContext, page: Page, dir: string, name: string): Promise<void> {
  const file = path.join(dir, `${name}.png`)
  await page.screenshot({path: file, fullPage: true})
  t.diagnostic(`screenshot: ${file}`)
}

describe('catalog page', () => {
  let work: string
  let shots: string
  let fixtures: CoreFixtures
  let browser: Browser
  let serve: RunningServer
  let nginx: RunningHost
  let multiDigest: string

  before(async () => {
    requireTool('chromium')
    work = await tempDir('reg-page-')
    // Kept after the run (not a temp dir the test removes): the paths are in the test's output.
    shots = await mkdtemp(path.join(os.tmpdir(), 'reg-page-screenshots-'))
    fixtures = await buildCoreFixtures(work)
    multiDigest = fixtures.images.find((i) => i.name === 'team/multi')!.digest
    // Labels chosen by an attacker, and a cosign-style signature of the multi-arch image.
    await writeLabelledLayout(path.join(work, 'src-labelled'), {
      'org.opencontainers.image.description': HOSTILE,
      'org.opencontainers.image.source': 'javascript:window.__pwned=3',
      'org.opencontainers.image.title': '<b>title</b>',
    }, '1')
    await writeTinyOciLayout(path.join(work, 'src-sig'), {'sig.txt': 'signature\n'}, 'sig')
    const built = await runReg(['build', '--page', '-o', fixtures.tree,
      `oci:${path.join(work, 'src-labelled')}=team/labelled`,
      `oci:${path.join(work, 'src-sig')}=team/multi:${multiDigest.replace(':', '-')}.sig`])
    assert.equal(built.code, 0, built.stderr)
    browser = await launchChromium()
    serve = await startRegistryServer(fixtures.tree, {port: 0})
    nginx = await deployToRealHost(fixtures.tree, 'nginx', path.join(work, 'nginx'))
  })

  after(async () => {
    await browser?.close()
    await serve?.close()
    await nginx?.stop()
    await removeTempDirs()
  })

  for (const which of ['reg serve', 'nginx'] as const) {
    it(`renders, searches, filters and copies on ${which}`, async (t) => {
      const host = which === 'nginx' ? nginx : {url: serve.url, hostPort: serve.url.replace('http://', '')}
      const {page, errors, requests, close} = await openPage(browser, host.url)
      try {
        await page.goto(`${host.url}/`)
        const all = ['a/b/c/d/deep', 'team/app', 'team/archived', 'team/docker', 'team/labelled', 'team/multi']
        assert.deepEqual(await visibleRepositories(page), all)
        await screenshot(t, page, shots, `${which.replace(' ', '-')}-repositories`)

        await page.fill('#search', 'mul')
        await page.waitForFunction(() => document.querySelectorAll('#repositories > li:not([hidden])').length === 1)
        assert.deepEqual(await visibleRepositories(page), ['team/multi'])
        await page.fill('#search', '')
        await page.selectOption('#namespace', 'a')
        await page.waitForFunction(() => document.querySelectorAll('#repositories > li:not([hidden])').length === 1)
        assert.deepEqual(await visibleRepositories(page), ['a/b/c/d/deep'])
        await page.selectOption('#namespace', '')
        await page.waitForFunction(() => document.querySelectorAll('#repositories > li:not([hidden])').length === 6)

        await page.click('a[href="r/team/multi/-/index.html"]')
        await page.waitForSelector('#tags li[data-tag="multi"]')
        const tag = page.locator('#tags li[data-tag="multi"]')
        assert.deepEqual(await tag.locator('ul.platforms li > span:first-child').allTextContents(), ['linux/amd64', 'linux/arm64', 'linux/arm/v7'])
        for (const size of await tag.locator('ul.platforms li > span.muted').allTextContents()) assert.match(size, /^\d+(\.\d)? (B|KiB)$/)
        assert.equal(await tag.locator('time').getAttribute('datetime'), '2026-01-01T00:00:00Z')
        assert.deepEqual(await tag.locator('.badge').allTextContents(), ['signature'], 'the cosign signature tag is shown on its subject')
        assert.equal(await page.locator(`#tags li[data-tag^="sha256-"]`).count(), 0, 'cosign tags are not listed as images')
        const pull = `docker pull ${host.hostPort}/team/multi:multi`
        assert.equal(await tag.locator('code').first().textContent(), pull)
        await tag.locator('button.copy').first().click()
        await page.waitForFunction(() => document.querySelector('#tags li[data-tag="multi"] button.copy')?.textContent === 'Copied')
        assert.equal(await page.evaluate(() => navigator.clipboard.readText()), pull)
        await tag.locator('button.copy').nth(1).click()
        assert.equal(await page.evaluate(() => navigator.clipboard.readText()), multiDigest)
        await screenshot(t, page, shots, `${which.replace(' ', '-')}-team-multi`)

        // Attacker-chosen labels are text, never markup or a script; a javascript: source is no link.
        await page.goto(`${host.url}/r/team/labelled/-/`)
        assert.equal(await page.locator('dl.labels dd').first().textContent(), '<b>title</b>')
        assert.ok((await page.locator('dl.labels').textContent())?.includes(HOSTILE))
        assert.equal(await page.locator('img').count(), 0)
        assert.equal(await page.locator('a[href^="javascript"]').count(), 0)
        assert.equal(await page.evaluate(() => (window as unknown as {__pwned?: number}).__pwned), undefined)
        await page.goto(`${host.url}/`)
        assert.ok((await page.locator('#repositories li[data-name="team/labelled"]').textContent())?.includes(HOSTILE))
        assert.equal(await page.evaluate(() => (window as unknown as {__pwned?: number}).__pwned), undefined)

        assert.deepEqual(errors, [])
        assert.ok(requests.length > 0)
        assert.deepEqual(requests.filter((url) => !url.startsWith(`${host.url}/`)), [], 'no request leaves the host')
      } finally {
        await close()
      }
    })
  }

  it('reads without JavaScript: the list, the tags, a pull command to complete', async () => {
    const {page, requests, close} = await openPage(browser, serve.url, {javaScript: false})
    try {
      await page.goto(`${serve.url}/`)
      assert.equal(await page.locator('#repositories > li').count(), 6)
      await page.goto(`${serve.url}/r/team/app/-/`)
      assert.deepEqual(await page.locator('#tags > li').evaluateAll((items) => items.map((li) => (li as HTMLElement).dataset.tag)), ['1.1', '1.0'])
      assert.equal(await page.locator('#tags li[data-tag="1.1"] code').first().textContent(), 'docker pull HOST/team/app:1.1')
      assert.deepEqual(requests.filter((url) => !url.startsWith(`${serve.url}/`)), [])
    } finally {
      await close()
    }
  })

  it('serves each class with its Content-Type and Cache-Control on reg serve and nginx; /v2/ unchanged', async () => {
    const tree = await RegistryTree.load(fixtures.tree)
    const pageObjects = tree.objects.filter((o) => o.class.startsWith('page'))
    assert.deepEqual(new Set(pageObjects.map((o) => o.class)), new Set(['page', 'page-asset', 'page-data']))
    const expected = {
      page: {type: 'text/html; charset=utf-8', cache: 'public, max-age=60'},
      'page-data': {type: 'application/json', cache: 'public, max-age=60'},
    } as const
    for (const host of [serve.url, nginx.url]) {
      const urls = [...pageObjects.map((o) => ({url: `/${o.path}`, object: o})), {url: '/', object: tree.objectsByPath.get('index.html')!},
        {url: '/r/team/app/-/', object: tree.objectsByPath.get('r/team/app/-/index.html')!}]
      for (const {url, object} of urls) {
        const response = await fetch(`${host}${url}`)
        const body = Buffer.from(await response.arrayBuffer())
        assert.equal(response.status, 200, `${host}${url}`)
        assert.equal(sha(body), object.digest, `${host}${url}`)
        if (object.class === 'page-asset') {
          assert.equal(response.headers.get('content-type'), url.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8', `${host}${url}`)
          assert.equal(response.headers.get('cache-control'), 'public, max-age=31536000, immutable', `${host}${url}`)
        } else {
          const want = expected[object.class as keyof typeof expected]
          assert.equal(response.headers.get('content-type'), want.type, `${host}${url}`)
          assert.equal(response.headers.get('cache-control'), want.cache, `${host}${url}`)
        }
      }
      const root = await fetch(`${host}/v2/`)
      assert.equal(root.status, 200)
      assert.equal(root.headers.get('content-type'), 'application/json')
      assert.equal(root.headers.get('cache-control'), 'no-cache')
      assert.equal(root.headers.get('docker-distribution-api-version'), 'registry/2.0')
      assert.deepEqual(await root.json(), {})
      const catalog = await (await fetch(`${host}/v2/_catalog`)).json() as {repositories: string[]}
      assert.deepEqual(catalog.repositories, ['a/b/c/d/deep', 'team/app', 'team/archived', 'team/docker', 'team/labelled', 'team/multi'])
      // What the page keeps outside the URL space stays unreachable; a missing page is a 404.
      for (const hidden of ['/registry.json', '/r/-/', '/r/nothing/-/', '/-/', '/r/team/app/-/../../../../registry.json']) {
        assert.equal((await fetch(`${host}${hidden}`)).status, 404, `${host}${hidden}`)
      }
    }
  })
})

describe('catalog page of a larger registry: what the script loads', () => {
  let browser: Browser
  let serve: RunningServer

  before(async () => {
    requireTool('chromium')
    const work = await tempDir('reg-page-large-')
    const layout = path.join(work, 'src-labelled')
    await writeLabelledLayout(layout, {'org.opencontainers.image.description': HOSTILE}, '1')
    const names = Array.from({length: 130}, (_, i) => `oci:${layout}:1=many/r${String(i).padStart(3, '0')}:1`)
    const tags = Array.from({length: 120}, (_, i) => `oci:${layout}:1=big/tags:t${String(i).padStart(3, '0')}`)
    const built = await runReg(['build', '--page', '-o', path.join(work, 'tree'), ...names, ...tags])
    assert.equal(built.code, 0, built.stderr)
    browser = await launchChromium()
    serve = await startRegistryServer(path.join(work, 'tree'), {port: 0})
  })

  after(async () => {
    await browser?.close()
    await serve?.close()
    await removeTempDirs()
  })

  it('searches every repository (loaded in pieces) and pages through older tags, newest first', async () => {
    const {page, errors, requests, close} = await openPage(browser, serve.url)
    try {
      await page.goto(`${serve.url}/`)
      assert.equal(await page.locator('#repositories > li').count(), 100)
      await page.fill('#search', 'r12')
      await page.waitForFunction(() => document.querySelectorAll('#repositories > li').length === 10)
      assert.deepEqual(await visibleRepositories(page), Array.from({length: 10}, (_, i) => `many/r12${i}`))
      assert.ok(requests.some((url) => url.endsWith('/r/-/repositories-0.json')), 'the list came from its data file')
      assert.ok((await page.locator('#repositories > li').first().textContent())?.includes(HOSTILE))
      assert.equal(await page.locator('img').count(), 0)
      await page.fill('#search', '')
      await page.selectOption('#namespace', 'big')
      await page.waitForFunction(() => document.querySelectorAll('#repositories > li').length === 1)
      await page.click('#repositories a')
      await page.waitForSelector('#tags')
      assert.equal(await page.locator('#tags > li').count(), 25)
      await page.click('#more')
      await page.waitForFunction(() => document.querySelectorAll('#tags > li').length === 120)
      const order = await page.locator('#tags > li').evaluateAll((items) => items.map((li) => (li as HTMLElement).dataset.tag))
      assert.deepEqual(order, Array.from({length: 120}, (_, i) => `t${String(119 - i).padStart(3, '0')}`))
      assert.equal(await page.locator('#more').isHidden(), true)
      assert.equal(await page.locator('#tags li[data-tag="t000"] code').first().textContent(), `docker pull ${serve.url.replace('http://', '')}/big/tags:t000`)
      assert.equal(await page.evaluate(() => (window as unknown as {__pwned?: number}).__pwned), undefined)
      assert.deepEqual(errors, [])
      assert.deepEqual(requests.filter((url) => !url.startsWith(`${serve.url}/`)), [], 'no request leaves the host')
    } finally {
      await close()
    }
  })
})
