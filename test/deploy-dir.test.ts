// The publish layer and the dir backend: ordered, incremental, deduplicated by hardlinks, prunable.
import assert from 'node:assert/strict'
import {readdir, readFile, stat} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import type {Backend, RemoteState} from '../src/publish/backend.js'
import {RegError} from '../src/core/errors.js'
import {createPublishPlan} from '../src/publish/plan.js'
import {runPublishPlan} from '../src/publish/run.js'
import type {RegistryObject} from '../src/tree/model.js'
import {RegistryTree} from '../src/tree/registry-tree.js'
import {EXAMPLE_LAYOUT, removeTempDirs, runReg, tempDir, writeTinyIndexLayout, writeTinyOciLayout} from './support.js'

async function listFiles(root: string, prefix = ''): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(path.join(root, prefix), {withFileTypes: true})) {
    const rel = path.join(prefix, entry.name)
    if (entry.isDirectory()) out.push(...await listFiles(root, rel))
    else out.push(rel)
  }
  return out.sort()
}

interface DeployJson {
  plan: {uploads: number; copies: number; deletes: number; unchanged: number}
  result?: {uploaded: number; copied: number; deleted: number}
}

describe('reg deploy --backend dir', () => {
  let work: string
  let tree: string
  let out: string
  let second: string

  before(async () => {
    work = await tempDir()
    tree = path.join(work, 'tree')
    out = path.join(work, 'public')
    second = path.join(work, 'second')
    await writeTinyOciLayout(second, {'s.txt': 'second\n'}, 's')
    const built = await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, `oci:${EXAMPLE_LAYOUT}=team/app:1.0`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
  })
  after(removeTempDirs)

  const deploy = async (...extra: string[]): Promise<DeployJson> => {
    const result = await runReg(['deploy', tree, '--backend', 'dir', '--dest', out, '--json', ...extra])
    assert.equal(result.code, 0, result.stderr)
    return JSON.parse(result.stdout) as DeployJson
  }

  it('--dry-run prints the plan and writes nothing', async () => {
    const report = await deploy('--dry-run')
    const tree_ = await RegistryTree.load(tree)
    assert.equal(report.plan.uploads + report.plan.copies, tree_.objects.length)
    assert.equal(report.result, undefined)
    await assert.rejects(stat(out))
  })

  it('writes every object at its URL path, each blob once (hardlinks)', async () => {
    const report = await deploy()
    const registry = await RegistryTree.load(tree)
    assert.equal(report.result!.uploaded + report.result!.copied, registry.objects.length)
    assert.ok(report.result!.copied > 0, 'the second repository reuses the first one\'s files')
    for (const object of registry.objects) {
      const file = path.join(out, object.path.endsWith('/') ? `${object.path}index.json` : object.path)
      assert.deepEqual(await readFile(file), await readFile(registry.fileOf(object)), object.path)
    }
    const blob = registry.objects.find((o) => o.class === 'blob')!
    const a = await stat(path.join(out, 'v2/examples/hello/blobs', blob.digest))
    const b = await stat(path.join(out, 'v2/team/app/blobs', blob.digest))
    assert.equal(a.ino, b.ino, 'one stored copy per blob')
    assert.deepEqual((await readdir(out)).sort(), ['.reg-state.json', 'v2'])
  })

  it('a second run publishes nothing; a new image publishes only what is new', async () => {
    const again = await deploy()
    assert.equal(again.result!.uploaded + again.result!.copied, 0)
    const built = await runReg(['build', `oci:${second}=team/app:2.0`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    const report = await deploy()
    // new: 2 blobs, 1 manifest by digest, 1 tag; changed: tags/list (the catalog is unchanged)
    assert.equal(report.result!.uploaded + report.result!.copied, 5)
    assert.deepEqual(JSON.parse(await readFile(path.join(out, 'v2/team/app/tags/list'), 'utf8')), {name: 'team/app', tags: ['1.0', '2.0']})
  })

  it('--prune removes what the tree no longer has, and nothing else', async () => {
    const built = await runReg(['build', `oci:${second}=team/app:2.0`, '--clean', '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    const report = await deploy('--prune', '--prune-grace', '0')
    assert.ok(report.result!.deleted > 0)
    const registry = await RegistryTree.load(tree)
    const expected = registry.objects.map((o) => (o.path.endsWith('/') ? `${o.path}index.json` : o.path)).sort()
    assert.deepEqual(await listFiles(out, 'v2').then((files) => files), expected)
    await assert.rejects(stat(path.join(out, 'v2/examples')), 'empty directories are removed')
  })

  it('--name-prefix serves every repository under a namespace, with lists that name it', async () => {
    const prefixed = path.join(work, 'prefixed')
    const result = await runReg(['deploy', tree, '--backend', 'dir', '--dest', prefixed, '--name-prefix', 'acme', '--json'])
    assert.equal(result.code, 0, result.stderr)
    const registry = await RegistryTree.load(tree)
    const digest = registry.index.repositories['team/app'].tags['2.0']
    assert.deepEqual(await readFile(path.join(prefixed, 'v2/acme/team/app/manifests/2.0')), await readFile(path.join(tree, 'blobs/sha256', digest.slice(7))))
    assert.deepEqual(JSON.parse(await readFile(path.join(prefixed, 'v2/acme/team/app/tags/list'), 'utf8')), {name: 'acme/team/app', tags: ['2.0']})
    assert.deepEqual(JSON.parse(await readFile(path.join(prefixed, 'v2/_catalog'), 'utf8')), {repositories: ['acme/team/app']})
    assert.deepEqual((await readdir(path.join(prefixed, 'v2'))).sort(), ['_catalog', 'acme', 'index.json'])
    const bad = await runReg(['deploy', tree, '--backend', 'dir', '--dest', prefixed, '--name-prefix', 'Acme'])
    assert.notEqual(bad.code, 0)
    assert.match(bad.stderr, /invalid repository name "Acme"/)
  })

  it('refuses a missing --dest and a directory that is not a tree', async () => {
    const missing = await runReg(['deploy', tree, '--backend', 'dir'])
    assert.notEqual(missing.code, 0)
    assert.match(missing.stderr, /--backend dir needs --dest DIR/)
    const notTree = await runReg(['deploy', work, '--backend', 'dir', '--dest', out])
    assert.notEqual(notTree.code, 0)
    assert.match(notTree.stderr, /is not a reg tree/)
  })
})

/**
 * What each object of the tree points at, read from the tree's state (not from the plan): a manifest
 * its blobs and child manifests, a tag its manifest, a tags list its tags, the catalog every tags list.
 */
function referencesOf(registry: RegistryTree, object: RegistryObject): string[] {
  const repo = object.repository
  switch (object.class) {
    case 'digest-manifest': {
      const record = registry.index.manifests[object.digest]
      return record ? [...record.blobs.map((b) => `v2/${repo}/blobs/${b}`), ...record.children.map((c) => `v2/${repo}/manifests/${c}`)] : []
    }
    case 'tag-manifest': return [`v2/${repo}/manifests/${object.digest}`]
    case 'tags-list': return registry.objects.filter((o) => o.class === 'tag-manifest' && o.repository === repo).map((o) => o.path)
    case 'catalog': return registry.objects.filter((o) => o.class === 'tags-list').map((o) => o.path)
    default: return []
  }
}

/** A tree of three repositories: an image, a multi-platform index, and an image of its own bytes. */
async function threeRepositories(work: string): Promise<RegistryTree> {
  const tree = path.join(work, 'tree')
  await writeTinyIndexLayout(path.join(work, 'multi'), ['linux/amd64', 'linux/arm64'], 'multi/app:2.0')
  await writeTinyOciLayout(path.join(work, 'other'), {'other.txt': 'bytes of its own\n'}, 'other/app:1.0')
  const built = await runReg(['build', `oci:${EXAMPLE_LAYOUT}=team/app:1.0`, `oci:${path.join(work, 'multi')}`, `oci:${path.join(work, 'other')}`, '-o', tree])
  assert.equal(built.code, 0, built.stderr)
  return RegistryTree.load(tree)
}

/** A backend that records what it published, in the order each step finished. */
function recordingBackend(log: string[], hooks: {putObject?: (key: string, object: RegistryObject) => Promise<void>; published?: (key: string) => void} = {}): Backend {
  return {
    name: 'recorder', location: 'memory',
    capabilities: {serverSideCopy: true},
    describeRemote: async (): Promise<RemoteState> => ({objects: new Map()}),
    putObject: async (key: string, object: RegistryObject) => {
      await hooks.putObject?.(key, object)
      log.push(`put ${key}`)
      hooks.published?.(key)
    },
    copyObject: async (from: string, key: string) => {
      assert.ok(log.includes(`put ${from}`), `copy from ${from} before it exists`)
      log.push(`copy ${key}`)
      hooks.published?.(key)
    },
    deleteObject: async () => undefined,
  }
}

describe('publish order', () => {
  after(removeTempDirs)

  it('publishes every object after what it points at (blobs, child manifests, manifests, tags, lists); retries transient failures', async () => {
    const registry = await threeRepositories(await tempDir())
    const log: string[] = []
    let failures = 2
    // A recording backend: the publish layer is what is under test here, the real backends have their own tests.
    const recorder = recordingBackend(log, {
      putObject: async (_key, object) => {
        if (object.class === 'blob' && failures-- > 0) throw new Error('503 Slow Down')
      },
    })
    const plan = await createPublishPlan(registry, await recorder.describeRemote(), recorder)
    const retried: number[] = []
    const result = await runPublishPlan(plan, recorder, registry, {concurrency: 4, backoffMs: 1, observer: {retry: (_s, attempt) => retried.push(attempt)}})
    assert.equal(retried.length, 2)
    assert.equal(result.uploaded + result.copied, registry.objects.length)
    const position = (p: string) => log.findIndex((line) => line.endsWith(` ${p}`))
    let checked = 0
    for (const object of registry.objects) {
      const at = position(object.path)
      assert.ok(at >= 0, object.path)
      for (const reference of referencesOf(registry, object)) {
        assert.ok(registry.objectsByPath.has(reference), reference)
        assert.ok(position(reference) < at, `${reference} must be published before ${object.path}`)
        checked++
      }
    }
    assert.ok(checked > 20, `${checked} references checked`)
  })

  it('a prune deletes side by side once everything else is done, after the host configuration', async () => {
    const registry = await threeRepositories(await tempDir())
    const log: string[] = []
    let inFlight = 0
    let most = 0
    const stale = Array.from({length: 12}, (_, i) => `v2/gone/app/manifests/t${i}`)
    const recorder: Backend = {
      ...recordingBackend(log),
      describeRemote: async (): Promise<RemoteState> => ({objects: new Map(stale.map((key) => [key, {key, size: 1}]))}),
      writeHostConfig: async () => {
        log.push('configure')
      },
      deleteObject: async (key: string) => {
        most = Math.max(most, ++inFlight)
        await new Promise((resolve) => setImmediate(resolve))
        inFlight--
        log.push(`delete ${key}`)
      },
    }
    const plan = await createPublishPlan(registry, await recorder.describeRemote(), recorder, {prune: true, pruneGraceMs: 0})
    const result = await runPublishPlan(plan, recorder, registry, {concurrency: 4})
    assert.equal(result.deleted, stale.length)
    assert.equal(most, 4, 'deletions run as many at a time as the concurrency allows')
    const firstDelete = log.findIndex((line) => line.startsWith('delete '))
    assert.equal(log.slice(firstDelete).filter((line) => !line.startsWith('delete ')).length, 0, 'nothing is published after a deletion starts')
    assert.ok(log.indexOf('configure') < firstDelete, 'the host configuration goes before the prune')
    assert.ok(log.indexOf('configure') > log.indexOf('put v2/_catalog'), 'and after every object')
  })

  it('a step that fails publishes nothing that needs it, and the error says so', async () => {
    const registry = await threeRepositories(await tempDir())
    const failing = registry.objects.find((o) => o.class === 'blob' && o.repository === 'team/app')!
    const log: string[] = []
    const recorder = recordingBackend(log, {
      putObject: async (key) => {
        if (key === failing.path) throw new RegError('the disk is full')
      },
    })
    const plan = await createPublishPlan(registry, await recorder.describeRemote(), recorder)
    await assert.rejects(runPublishPlan(plan, recorder, registry, {concurrency: 4}), /the disk is full/)
    const published = (p: string) => log.some((line) => line.endsWith(` ${p}`))
    // What needs the blob, directly or not: the image's manifest, its tag, its tags list, the catalog.
    for (const needing of ['v2/team/app/manifests/1.0', 'v2/team/app/tags/list', 'v2/_catalog']) assert.ok(!published(needing), `${needing} must not be published`)
    assert.ok(!log.some((line) => line.startsWith('put v2/team/app/manifests/sha256:')), 'nor the manifest by digest')
  })

  it("does not hold an image back for another image's slow blob: its manifest and tag go live while that blob is still on its way", async () => {
    const registry = await threeRepositories(await tempDir())
    const slow = registry.objects.find((o) => o.class === 'blob' && o.repository === 'team/app')!
    const log: string[] = []
    let inFlight = 0
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    const awaited = new Set(['v2/other/app/manifests/1.0', 'v2/multi/app/manifests/2.0'])
    // The slow blob finishes once the other images' tags are up, or once nothing else is running
    // (what a publish that waits for every blob does): never a hang, whichever the order.
    const quiet = () => setImmediate(() => inFlight === 0 && release())
    const recorder = recordingBackend(log, {
      putObject: async (key) => {
        if (key === slow.path) {
          quiet()
          return released
        }
        inFlight++
        await new Promise((resolve) => setImmediate(resolve))
        inFlight--
        quiet()
      },
      published: (key) => {
        awaited.delete(key)
        if (awaited.size === 0) release()
      },
    })
    const plan = await createPublishPlan(registry, await recorder.describeRemote(), recorder)
    await runPublishPlan(plan, recorder, registry, {concurrency: 4})
    const position = (p: string) => log.findIndex((line) => line.endsWith(` ${p}`))
    assert.ok(position('v2/other/app/manifests/1.0') >= 0 && position('v2/other/app/manifests/1.0') < position(slow.path), `other/app:1.0 before the slow blob of team/app: ${log.join(', ')}`)
    assert.ok(position('v2/multi/app/manifests/2.0') < position(slow.path), 'the index of multi/app too')
    assert.ok(position('v2/team/app/manifests/1.0') > position(slow.path), 'team/app:1.0 still waits for its blob')
    assert.ok(position('v2/_catalog') > position(slow.path), 'the catalog lists team/app: it waits for its tags')
  })
})
