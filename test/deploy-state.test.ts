// What the publish plan does with each backend capability and declaration, and the local state
// file after a prune.
import assert from 'node:assert/strict'
import {access, readFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import type {Backend, RemoteObject} from '../src/publish/backend.js'
import {apacheConfigFiles} from '../plugins/backend-apache/config.js'
import {nginxMaps, nginxServer, nginxStandalone} from '../plugins/backend-nginx/config.js'
import {headerFileConfig} from '../src/publish/header-file-host.js'
import {createPublishPlan, PHASES} from '../src/publish/plan.js'
import {tagRoutes} from '../src/publish/static-host.js'
import {RegistryTree} from '../src/tree/registry-tree.js'
import {EXAMPLE_LAYOUT, removeTempDirs, runReg, tempDir, writeTinyOciLayout} from './support.js'

type PlanBackend = Pick<Backend, 'name' | 'location' | 'capabilities' | 'storageKeyOf' | 'sharedKeyOf' | 'writeHostConfig'>
const memory = (extra: Partial<PlanBackend> = {}): PlanBackend => ({name: 'memory', location: 'memory', capabilities: {serverSideCopy: true, caseSensitiveTags: true}, ...extra})

describe('the publish plan, by capability', () => {
  let tree: RegistryTree

  before(async () => {
    const work = await tempDir()
    // Two repositories holding the same image: every blob and manifest has a second key.
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, `oci:${EXAMPLE_LAYOUT}=team/app:1.0`, '-o', path.join(work, 'tree')])).code, 0)
    tree = await RegistryTree.load(path.join(work, 'tree'))
  })

  it('serverSideCopy: the second key of the same bytes is copied on the host; without it, uploaded again', async () => {
    const copying = await createPublishPlan(tree, {objects: new Map()}, memory())
    const uploading = await createPublishPlan(tree, {objects: new Map()}, memory({capabilities: {serverSideCopy: false, caseSensitiveTags: true}}))
    assert.ok(copying.steps.some((s) => s.action === 'copy'))
    assert.equal(uploading.steps.filter((s) => s.action === 'copy').length, 0)
    assert.equal(uploading.bytesToUpload, copying.bytesToUpload + copying.bytesToCopy)
  })

  it('caseSensitiveTags: a tag equal but for case to a deployed one is refused where the host cannot tell them apart', async () => {
    const tag = tree.objects.find((o) => o.class === 'tag-manifest')!
    // Deployed before, kept without --prune: the same tag URL in other case.
    const other = tag.path.toUpperCase()
    const remote = {objects: new Map<string, RemoteObject>([[other, {key: other, size: 1}]])}
    await assert.rejects(createPublishPlan(tree, remote, memory({capabilities: {serverSideCopy: true, caseSensitiveTags: false}})), /differ only in case/)
    await createPublishPlan(tree, remote, memory())
  })

  it('sharedKeyOf: the bytes go once to the shared key, each URL becomes a redirect; redirects in place are unchanged', async () => {
    const shared = (digest: string) => `_blobs/${digest}`
    const backend = memory({sharedKeyOf: (o) => (o.class === 'blob' ? shared(o.digest) : undefined)})
    const blobs = tree.objects.filter((o) => o.class === 'blob')
    const digests = new Set(blobs.map((b) => b.digest))
    const plan = await createPublishPlan(tree, {objects: new Map()}, backend)
    const blobSteps = plan.steps.filter((s) => s.phase === 'blobs')
    assert.deepEqual(blobSteps.filter((s) => s.action === 'put').map((s) => s.key).sort(), [...digests].map(shared).sort())
    assert.equal(blobSteps.filter((s) => s.action === 'redirect').length, blobs.length)
    for (const step of blobSteps) if (step.action === 'redirect') assert.equal(step.to, shared(step.object.digest))
    // Deployed: the shared copies with their real size, each blob URL an empty redirect (no size faked).
    const remote = new Map<string, RemoteObject>()
    for (const blob of blobs) {
      remote.set(shared(blob.digest), {key: shared(blob.digest), size: blob.size})
      remote.set(blob.path, {key: blob.path, size: 0, redirectTo: shared(blob.digest)})
    }
    const again = await createPublishPlan(tree, {objects: remote}, backend)
    assert.equal(again.steps.filter((s) => s.phase === 'blobs').length, 0)
    // A full copy where a redirect is wanted is replaced by the redirect.
    remote.set(blobs[0].path, {key: blobs[0].path, size: blobs[0].size})
    const mended = await createPublishPlan(tree, {objects: remote}, backend)
    assert.deepEqual(mended.steps.filter((s) => s.phase === 'blobs').map((s) => `${s.action} ${s.key}`), [`redirect ${blobs[0].path}`])
  })

  it('host configuration is a phase of its own: after the tags, before the prune, only for hosts that have one', async () => {
    const stale = {key: 'v2/gone/manifests/1', size: 3}
    const configured = await createPublishPlan(tree, {objects: new Map([[stale.key, stale]])}, memory({writeHostConfig: async () => undefined, storageKeyOf: (o) => (o.class === 'tag-manifest' ? null : o.path)}), {prune: true})
    const phases = configured.steps.map((s) => s.phase)
    assert.deepEqual(phases, [...phases].sort((a, b) => PHASES.indexOf(a) - PHASES.indexOf(b)))
    const configure = configured.steps.filter((s) => s.action === 'configure')
    assert.equal(configure.length, 1)
    assert.ok(phases.lastIndexOf('tags') < phases.indexOf('configure') && phases.indexOf('configure') < phases.indexOf('prune'))
    assert.deepEqual(configure[0].action === 'configure' && configure[0].routed.map((o) => o.class), tree.objects.filter((o) => o.class === 'tag-manifest').map((o) => o.class))
    const plain = await createPublishPlan(tree, {objects: new Map()}, memory())
    assert.equal(plain.steps.some((s) => s.action === 'configure'), false)
  })
})

describe('generated host configuration', () => {
  it('cites no document outside what it configures (users deploy these files)', async () => {
    const work = await tempDir()
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '-o', path.join(work, 'tree')])).code, 0)
    const tree = await RegistryTree.load(path.join(work, 'tree'))
    const routes = [...tagRoutes(tree.objects)]
    const settings = {serverRoot: '/srv', listen: '80', serverName: '_'}
    const texts = [
      ...headerFileConfig(tree.index).map((f) => f.content), ...apacheConfigFiles(tree.index, routes).map((f) => f.content),
      nginxMaps(routes), nginxServer(tree.index, settings), nginxStandalone(settings),
    ]
    for (const text of texts) assert.doesNotMatch(text, /DESIGN|§/)
  })
})

describe('the local deploy state', () => {
  after(removeTempDirs)

  it('lists, after deploy --prune, exactly what is deployed (not what the prune removed)', async () => {
    const work = await tempDir()
    const other = path.join(work, 'other')
    await writeTinyOciLayout(other, {'o.txt': 'other\n'}, 'o')
    const tree = path.join(work, 'tree')
    const out = path.join(work, 'public')
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, `oci:${other}=team/other:1`, '-o', tree])).code, 0)
    assert.equal((await runReg(['deploy', tree, '--backend', 'dir', '--dest', out])).code, 0)
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '-o', tree, '--clean'])).code, 0)
    const pruned = await runReg(['deploy', tree, '--backend', 'dir', '--dest', out, '--prune', '--prune-grace', '0', '--json'])
    assert.equal(pruned.code, 0, pruned.stderr)
    assert.ok((JSON.parse(pruned.stdout) as {result: {deleted: number}}).result.deleted > 0, pruned.stdout)
    const state = JSON.parse(await readFile(path.join(out, '.reg-state.json'), 'utf8')) as {objects: Record<string, string>}
    const listed = Object.keys(state.objects)
    assert.ok(listed.length > 0, 'the state lists what is deployed')
    assert.deepEqual(listed.filter((key) => key.includes('team/other')), [])
    for (const key of listed) await access(path.join(out, key))
  })
})
