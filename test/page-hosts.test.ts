// The catalog page on the other hosts: Apache (real apache2, .htaccess only), the `_headers` hosts
// (Netlify's rules, interpreted by test/header-file-server.ts), S3 (s3rver) and a plain directory:
// each page object with its class's headers, `/` its index.html where the host routes it, /v2/
// untouched, and a second deploy of the same tree sending nothing.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {access, readFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {headerFileConfig, headerFileStorageKey} from '../src/publish/header-file-host.js'
import type {RegistryObject} from '../src/tree/model.js'
import {RegistryTree} from '../src/tree/registry-tree.js'
import {type HeaderMatching, startHeaderFileHost} from './header-file-server.js'
import {S3_BUCKET, S3_CREDENTIALS, startS3rver} from './s3rver.js'
import {freePort} from './static-hosts.js'
import {deployToRealHost, EXAMPLE_LAYOUT, removeTempDirs, runReg, tempDir, writeTinyIndexLayout} from './support.js'

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex')

/** The headers each class of the page must be served with (the tree's tagMaxAge is 60). */
function expectedHeaders(object: RegistryObject): {type: string; cache: string} {
  if (object.class === 'page-asset') return {type: object.path.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8', cache: 'public, max-age=31536000, immutable'}
  return {type: object.class === 'page' ? 'text/html; charset=utf-8' : 'application/json', cache: 'public, max-age=60'}
}

/** GET every page object (and `/` when the host routes it) from `base`, checking bytes and headers. */
async function checkPage(base: string, tree: RegistryTree, options: {root: boolean}): Promise<void> {
  const objects = tree.objects.filter((o) => o.class.startsWith('page'))
  assert.ok(objects.length >= 6)
  const urls = objects.map((o) => ({url: `/${o.path}`, object: o}))
  if (options.root) urls.push({url: '/', object: tree.objectsByPath.get('index.html')!})
  for (const {url, object} of urls) {
    const response = await fetch(`${base}${url}`)
    assert.equal(response.status, 200, `${base}${url}`)
    assert.equal(sha(Buffer.from(await response.arrayBuffer())), object.digest, `${base}${url}`)
    const want = expectedHeaders(object)
    assert.equal(response.headers.get('content-type'), want.type, `${base}${url}`)
    assert.equal(response.headers.get('cache-control'), want.cache, `${base}${url}`)
  }
  const api = await fetch(`${base}/v2/`)
  assert.equal(api.status, 200)
  assert.equal(api.headers.get('content-type'), 'application/json')
  assert.deepEqual(await api.json(), {})
}

describe('catalog page on Apache, _headers hosts, S3 and a directory', () => {
  let work: string
  let tree: RegistryTree

  before(async () => {
    work = await tempDir('reg-page-hosts-')
    const multi = path.join(work, 'src-multi')
    await writeTinyIndexLayout(multi, ['linux/amd64', 'linux/arm64'], 'multi')
    const built = await runReg(['build', '--page', '-o', path.join(work, 'tree'), `oci:${EXAMPLE_LAYOUT}`, `oci:${multi}=team/multi`])
    assert.equal(built.code, 0, built.stderr)
    tree = await RegistryTree.load(path.join(work, 'tree'))
  })

  after(async () => {
    await removeTempDirs()
  })

  it('apache2 (.htaccess): every class with its headers, / is the page, a re-deploy sends nothing', async () => {
    const out = path.join(work, 'apache')
    const apache = await deployToRealHost(tree.dir, 'apache', out)
    try {
      await checkPage(apache.url, tree, {root: true})
      const directory = await fetch(`${apache.url}/r/team/multi/-/`)
      assert.equal(directory.status, 200)
      assert.equal(directory.headers.get('content-type'), 'text/html; charset=utf-8')
      for (const hidden of ['/r/-/index.html', '/registry.json', '/r/-/', '/-/']) assert.equal((await fetch(`${apache.url}${hidden}`)).status, 404, hidden)
      const again = await runReg(['deploy', tree.dir, '--backend', 'apache', '--dest', out, '--json'])
      assert.equal(again.code, 0, again.stderr)
      assert.equal((JSON.parse(again.stdout) as {plan: {uploads: number}}).plan.uploads, 0)
    } finally {
      await apache.stop()
    }
  })

  it('nginx: a re-deploy of the same tree sends nothing, the root page included', async () => {
    const out = path.join(work, 'nginx')
    const nginx = await deployToRealHost(tree.dir, 'nginx', out)
    try {
      await checkPage(nginx.url, tree, {root: true})
      const port = new URL(nginx.url).port
      const again = await runReg(['deploy', tree.dir, '--backend', 'nginx', '--dest', out, '--listen', `127.0.0.1:${port}`, '--server-name', '127.0.0.1', '--json'])
      assert.equal(again.code, 0, again.stderr)
      assert.equal((JSON.parse(again.stdout) as {plan: {uploads: number}}).plan.uploads, 0)
    } finally {
      await nginx.stop()
    }
  })

  for (const matching of ['request-path', 'rewritten-path'] as HeaderMatching[]) {
    it(`_headers rules (headers matched on the ${matching}): every class with its headers, no two rules on one header`, async () => {
      const files = new Map<string, Buffer>()
      for (const object of tree.objects) files.set(`/${headerFileStorageKey(object)}`, await readFile(tree.fileOf(object)))
      for (const config of headerFileConfig(tree.index)) files.set(`/${config.path}`, Buffer.from(config.content))
      const host = await startHeaderFileHost(files, matching)
      try {
        // The host serves / from index.html itself (this interpreter does not): the files at their paths.
        await checkPage(host.url, tree, {root: false})
      } finally {
        await host.stop()
      }
    })
  }

  it('s3 (s3rver): each page object with its Content-Type and Cache-Control; a re-deploy sends nothing', async () => {
    const s3 = await startS3rver(path.join(work, 's3'), await freePort())
    try {
      const deploy = () => runReg(['deploy', tree.dir, '--backend', 's3', '--bucket', S3_BUCKET, '--endpoint', s3.endpoint, '--force-path-style', '--json'], {env: S3_CREDENTIALS})
      const first = await deploy()
      assert.equal(first.code, 0, first.stderr)
      await checkPage(`${s3.endpoint}/${S3_BUCKET}`, tree, {root: false})
      const again = await deploy()
      assert.equal(again.code, 0, again.stderr)
      assert.equal((JSON.parse(again.stdout) as {plan: {uploads: number}}).plan.uploads, 0)
    } finally {
      await s3.stop()
    }
  })

  it('dir: index.html at the top, every page file at its path', async () => {
    const out = path.join(work, 'dir')
    const deployed = await runReg(['deploy', tree.dir, '--backend', 'dir', '--dest', out])
    assert.equal(deployed.code, 0, deployed.stderr)
    for (const object of tree.objects.filter((o) => o.class.startsWith('page'))) {
      assert.equal(sha(await readFile(path.join(out, object.path))), object.digest, object.path)
    }
    await access(path.join(out, 'index.html'))
  })
})
