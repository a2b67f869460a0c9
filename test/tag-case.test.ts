// Tags equal but for case (`V1` and `v1`) are two tags: the tree and reg serve keep both, nginx and
// apache (real servers) tell them apart, and only a deploy to a host that cannot is refused, naming
// the pair, before anything is written.
import assert from 'node:assert/strict'
import {access, readdir, readFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {dirBackend} from '../plugins/backend-dir/index.js'
import type {Backend} from '../src/publish/backend.js'
import {deployTree} from '../src/publish/deploy.js'
import {isCaseSensitiveDirectory} from '../src/publish/local-files.js'
import {createPublishPlan} from '../src/publish/plan.js'
import {startRegistryServer, type RunningServer} from '../src/server/registry-server.js'
import type {TreeIndex} from '../src/tree/model.js'
import {RegistryTree} from '../src/tree/registry-tree.js'
import {assertConformsToServe, conformanceUrls} from './conformance.js'
import {startFakeNetlify} from './netlify-api.js'
import {makeServable, type RunningHost} from './static-hosts.js'
import {deployToRealHost, removeTempDirs, runReg, tempDir, writeTinyOciLayout} from './support.js'

const exists = (file: string) => access(file).then(() => true, () => false)

describe('tags equal but for case', () => {
  let work: string
  let tree: string
  let index: TreeIndex
  let reference: RunningServer
  /** URLs that differ from a tag only in case, or name the repository in another case: unknown everywhere */
  const variants = ['/v2/team/app/manifests/ONLY', '/v2/team/app/manifests/Only', '/v2/TEAM/app/manifests/only', '/v2/team/app/manifests/v1.0']

  before(async () => {
    work = await tempDir()
    await makeServable(work)
    const upper = path.join(work, 'upper')
    const lower = path.join(work, 'lower')
    await writeTinyOciLayout(upper, {'case.txt': 'upper\n'}, 'x')
    await writeTinyOciLayout(lower, {'case.txt': 'lower\n'}, 'x')
    tree = path.join(work, 'tree')
    const built = await runReg(['build', `oci:${upper}=team/app:V1`, `oci:${lower}=team/app:v1`, `oci:${lower}=team/app:only`, `oci:${upper}=team/app:V1.0`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    index = (await RegistryTree.load(tree)).index
    reference = await startRegistryServer(tree, {port: 0})
  })
  after(async () => {
    await reference?.close()
    await removeTempDirs()
  })

  it('are both kept by the build, and reg serve serves each its own manifest', async () => {
    const tags = index.repositories['team/app'].tags
    assert.deepEqual(Object.keys(tags).sort(), ['V1', 'V1.0', 'only', 'v1'])
    assert.notEqual(tags.V1, tags.v1)
    for (const tag of ['V1', 'v1']) {
      const res = await fetch(`${reference.url}/v2/team/app/manifests/${tag}`, {method: 'HEAD'})
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('docker-content-digest'), tags[tag])
    }
    for (const url of variants) assert.equal((await fetch(reference.url + url)).status, 404, url)
  })

  for (const backend of ['nginx', 'apache'] as const) {
    it(`--backend ${backend} (real ${backend}) tells them apart, and answers a tag in another case 404, like reg serve`, async () => {
      let host: RunningHost | undefined
      try {
        // nginx -t runs first: map entries equal but for case would not load.
        host = await deployToRealHost(tree, backend, path.join(work, backend))
        for (const tag of ['V1', 'v1']) {
          const res: Response = await fetch(`${host.url}/v2/team/app/manifests/${tag}`, {method: 'HEAD'})
          assert.equal(res.headers.get('docker-content-digest'), index.repositories['team/app'].tags[tag], tag)
        }
        await assertConformsToServe(host.url, reference.url, [...conformanceUrls(index), ...variants])
      } finally {
        await host?.stop()
      }
    })
  }

  it('--backend dir on a case-sensitive file system writes both', async () => {
    const out = path.join(work, 'dir')
    assert.equal(await isCaseSensitiveDirectory(out), true, 'the test directory is on a case-sensitive file system')
    const deployed = await runReg(['deploy', tree, '--backend', 'dir', '--dest', out])
    assert.equal(deployed.code, 0, deployed.stderr)
    const [upper, lower] = await Promise.all(['V1', 'v1'].map((tag) => readFile(path.join(out, 'v2/team/app/manifests', tag))))
    assert.notDeepEqual(upper, lower)
  })

  it('the file-system probe writes nothing it leaves behind, also for a destination that does not exist yet', async () => {
    const before = await readdir(work)
    assert.equal(await isCaseSensitiveDirectory(path.join(work, 'not', 'yet')), true)
    assert.deepEqual(await readdir(work), before)
    assert.equal(await exists(path.join(work, 'not')), false)
  })

  it('a dir destination whose file system cannot tell them apart is refused, before anything is written', async () => {
    const out = path.join(work, 'insensitive')
    const real = await dirBackend.create({dest: out})
    // What deploy reads from a case-insensitive destination's probe, declared directly (no such file system here).
    const insensitive: Backend = Object.assign(Object.create(real) as Backend, {capabilities: {...real.capabilities, caseSensitiveTags: false}})
    await assert.rejects(deployTree(tree, insensitive), (error: Error) => {
      assert.match(error.message, /cannot tell apart the tags "V1" and "v1" of repository "team\/app"/)
      assert.match((error as Error & {hint?: string}).hint ?? '', /rename one of them/)
      return true
    })
    assert.equal(await exists(out), false, 'nothing was written')
  })

  it('--backend netlify is refused, naming the pair, and no deploy is created', async () => {
    const fake = await startFakeNetlify()
    try {
      const result = await runReg(['deploy', tree, '--backend', 'netlify', '--site', fake.siteName, '--api-url', fake.apiUrl], {env: {NETLIFY_AUTH_TOKEN: fake.token}})
      assert.notEqual(result.code, 0)
      assert.match(result.stderr, /netlify \(site .*\) cannot tell apart the tags "V1" and "v1" of repository "team\/app"/)
      assert.match(result.stderr, /hint: rename one of them/)
      assert.equal(fake.deploys.size, 0)
      assert.equal(fake.requests.filter((r) => r.method !== 'GET').length, 0)
    } finally {
      await fake.stop()
    }
  })

  it('a host that cannot tell them apart: a tag already deployed counts too, unless --prune removes it', async () => {
    const small = path.join(work, 'small')
    const layout = path.join(work, 'small-layout')
    await writeTinyOciLayout(layout, {'a.txt': 'a\n'}, 'x')
    assert.equal((await runReg(['build', `oci:${layout}=team/app:latest`, '-o', small])).code, 0)
    const registry = await RegistryTree.load(small)
    const host = {name: 'netlify', location: 'site test', capabilities: {customHeaders: true, rewrites: true, redirects: true, basicAuth: false, serverSideCopy: true, caseSensitiveTags: false}}
    const remote = {objects: new Map([['v2/team/app/manifests/Latest', {key: 'v2/team/app/manifests/Latest', size: 10}]])}
    await assert.rejects(createPublishPlan(registry, remote, host), /tags "Latest" \(already deployed\) and "latest"/)
    await createPublishPlan(registry, remote, host, {prune: true})
    await createPublishPlan(registry, remote, {...host, capabilities: {...host.capabilities, caseSensitiveTags: true}})
  })
})
