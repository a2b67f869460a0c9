// The publish layer and the dir backend: ordered, incremental, deduplicated by hardlinks, prunable.
import assert from 'node:assert/strict'
import {readdir, readFile, stat} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import type {Backend, RemoteState} from '../src/publish/backend.js'
import {createPublishPlan, PHASES, phaseOf} from '../src/publish/plan.js'
import {runPublishPlan} from '../src/publish/run.js'
import type {RegistryObject} from '../src/tree/model.js'
import {RegistryTree} from '../src/tree/registry-tree.js'
import {EXAMPLE_LAYOUT, removeTempDirs, runReg, tempDir, writeTinyOciLayout} from './support.js'

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

describe('publish order', () => {
  after(removeTempDirs)

  it('publishes blobs, then manifests, then indexes, then tags; retries transient failures', async () => {
    const work = await tempDir()
    const tree = path.join(work, 'tree')
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, `oci:${EXAMPLE_LAYOUT}=team/app:1.0`, '-o', tree])).code, 0)
    const registry = await RegistryTree.load(tree)
    // A recording backend: the publish layer is what is under test here, the real backends have their own tests.
    const log: string[] = []
    let failures = 2
    const recorder: Backend = {
      name: 'recorder', location: 'memory',
      capabilities: {serverSideCopy: true},
      describeRemote: async (): Promise<RemoteState> => ({objects: new Map()}),
      putObject: async (key: string, object: RegistryObject) => {
        if (object.class === 'blob' && failures-- > 0) throw new Error('503 Slow Down')
        log.push(`put ${key}`)
      },
      copyObject: async (from: string, key: string) => {
        assert.ok(log.includes(`put ${from}`), `copy from ${from} before it exists`)
        log.push(`copy ${key}`)
      },
      deleteObject: async () => undefined,
    }
    const plan = await createPublishPlan(registry, await recorder.describeRemote(), recorder)
    const retried: number[] = []
    const result = await runPublishPlan(plan, recorder, registry, {concurrency: 4, backoffMs: 1, observer: {retry: (_s, attempt) => retried.push(attempt)}})
    assert.equal(retried.length, 2)
    assert.equal(result.uploaded + result.copied, registry.objects.length)
    const position = (p: string) => log.findIndex((line) => line.endsWith(` ${p}`))
    for (const object of registry.objects) {
      const at = position(object.path)
      assert.ok(at >= 0, object.path)
      for (const earlier of registry.objects.filter((o) => PHASES.indexOf(phaseOf(o)) < PHASES.indexOf(phaseOf(object)))) {
        assert.ok(position(earlier.path) < at, `${earlier.path} must be published before ${object.path}`)
      }
    }
  })
})
