// reg prune: tags removed by rule (semver-aware --keep-last, --older-than, --match, --untagged), never
// one a kept tag needs, then unreferenced manifests and blobs, atomically like a build.
import assert from 'node:assert/strict'
import {readdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {pruneTree, compareVersions, parseDuration, parseVersion} from '../src/tree/retention.js'
import {RegistryTree} from '../src/tree/registry-tree.js'
import {removeTempDirs, runReg, startServe, tempDir, treeSnapshot, writeTinyIndexLayout, writeTinyOciLayout} from './support.js'
import {run} from './clients.js'
import {requireTool} from './static-hosts.js'

const DAY = 86_400_000

/** A tree of team/app with tags v1.0.0, v1.2.0, v1.10.0, v2.0.0-rc.1 and latest (each its own image), and tools with one. */
async function buildTree(work: string): Promise<string> {
  const tree = path.join(work, 'tree')
  const specs: string[] = []
  for (const tag of ['v1.0.0', 'v1.2.0', 'v1.10.0', 'v2.0.0-rc.1', 'latest']) {
    const layout = path.join(work, `layout-${tag}`)
    await writeTinyOciLayout(layout, {'tag.txt': `${tag}\n`}, tag)
    specs.push(`oci:${layout}:${tag}=team/app:${tag}`)
  }
  const tools = path.join(work, 'layout-tools')
  await writeTinyOciLayout(tools, {'tools.txt': 'tools\n'}, '1')
  specs.push(`oci:${tools}:1=team/tools:1`)
  const built = await runReg(['build', ...specs, '-o', tree])
  assert.equal(built.code, 0, built.stderr)
  return tree
}

async function tagsOf(tree: string): Promise<string[]> {
  const {index} = await RegistryTree.load(tree)
  return Object.entries(index.repositories).flatMap(([name, r]) => Object.keys(r.tags).map((tag) => `${name}:${tag}`)).sort()
}

async function storeFiles(tree: string): Promise<string[]> {
  return (await readdir(path.join(tree, 'blobs', 'sha256'))).sort()
}

describe('reg prune', () => {
  let work: string
  before(async () => {
    work = await tempDir()
  })
  after(removeTempDirs)

  it('orders versions by semver precedence and reads durations', () => {
    const order = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', 'v1.2', '1.10.0', 'v2.0.0-rc.1', '2.0.0']
    const shuffled = [...order].reverse()
    shuffled.sort((a, b) => compareVersions(parseVersion(a)!, parseVersion(b)!))
    assert.deepEqual(shuffled, order)
    assert.equal(parseVersion('latest'), undefined)
    assert.equal(parseVersion('sha-abc123'), undefined)
    assert.equal(parseDuration('30d', '--older-than'), 30 * DAY)
    assert.equal(parseDuration('12h', '--older-than'), 12 * 3_600_000)
    assert.equal(parseDuration('0', '--prune-grace'), 0)
    assert.throws(() => parseDuration('30', '--older-than'), /not a duration/)
    assert.throws(() => parseDuration('-1d', '--older-than'), /not a duration/)
  })

  it('--keep-last keeps the newest versions of the matched tags; the rest, and what only they used, go', async () => {
    const tree = await buildTree(path.join(work, 'keep-last'))
    const before = await storeFiles(tree)
    const dry = await runReg(['prune', tree, '--keep-last', '2', '--match', 'team/**:v*', '--dry-run', '--json'])
    assert.equal(dry.code, 0, dry.stderr)
    const snapshot = await treeSnapshot(tree)
    const planned = JSON.parse(dry.stdout) as {removedTags: Array<{repository: string; tag: string}>; removedManifests: number; removedBlobs: number; bytesFreed: number}
    assert.deepEqual(planned.removedTags.map((t) => `${t.repository}:${t.tag}`).sort(), ['team/app:v1.0.0', 'team/app:v1.2.0'])
    // Each removed image: its manifest, its config and its layer.
    assert.equal(planned.removedManifests, 2)
    assert.equal(planned.removedBlobs, 4)
    assert.ok(planned.bytesFreed > 0)
    assert.equal(await treeSnapshot(tree), snapshot, 'a dry run changes nothing')

    const pruned = await runReg(['prune', tree, '--keep-last', '2', '--match', 'team/**:v*'])
    assert.equal(pruned.code, 0, pruned.stderr)
    assert.match(pruned.stdout, /removed 2 tags/)
    assert.deepEqual(await tagsOf(tree), ['team/app:latest', 'team/app:v1.10.0', 'team/app:v2.0.0-rc.1', 'team/tools:1'])
    const after = await storeFiles(tree)
    // Six fewer store files, but the documents (tags list, catalog) changed too: compare by what the index serves.
    const {index} = await RegistryTree.load(tree)
    for (const file of after) assert.ok(index.objects.some((o) => o.digest === `sha256:${file}`), `${file} is still served`)
    assert.ok(after.length < before.length)
    assert.deepEqual((await readdir(path.dirname(tree))).filter((n) => n.includes('.reg-')), [], 'no staging directory left')
  })

  it('never removes a tag that a kept index needs, and attachments follow their subject', async () => {
    const dir = path.join(work, 'index')
    const multi = path.join(dir, 'multi')
    const {images} = await writeTinyIndexLayout(multi, ['linux/amd64', 'linux/arm64'], '1')
    const tree = path.join(dir, 'tree')
    const amd64 = path.join(dir, 'amd64')
    await writeTinyOciLayout(amd64, {'tag.txt': 'x'}, 'x')
    // The amd64 child of the index is also tagged on its own; a signature-like tag is attached to it.
    const child = images[0].manifestDigest
    const sig = path.join(dir, 'sig')
    await writeTinyOciLayout(sig, {'sig.txt': 'signature\n'}, 's')
    const built = await runReg(['build', `oci:${multi}:1=team/multi:1`, `oci:${multi}:1=team/multi:old`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    // Tag the child by editing the state the way a push by tag would.
    const state = JSON.parse(await readFile(path.join(tree, 'registry.json'), 'utf8')) as {repositories: Record<string, {tags: Record<string, string>}>}
    state.repositories['team/multi'].tags['1-amd64'] = child
    await writeFile(path.join(tree, 'registry.json'), JSON.stringify(state))
    const sigBuilt = await runReg(['build', `oci:${sig}:s=team/multi:${child.replace(':', '-')}.sig`, '-o', tree])
    assert.equal(sigBuilt.code, 0, sigBuilt.stderr)

    const pruned = await runReg(['prune', tree, '--keep-last', '0', '--match', 'team/multi:1-*', '--json'])
    assert.equal(pruned.code, 0, pruned.stderr)
    assert.deepEqual((JSON.parse(pruned.stdout) as {removedTags: unknown[]}).removedTags, [], 'the child of the kept index 1 stays tagged')

    // Every tag but the signature's goes: its subject is no longer held, so the signature goes too.
    const all = await runReg(['prune', tree, '--keep-last', '0', '--json'])
    assert.equal(all.code, 0, all.stderr)
    assert.deepEqual((JSON.parse(all.stdout) as {removedTags: Array<{tag: string}>}).removedTags.map((t) => t.tag).sort(), ['1', '1-amd64', 'old', `${child.replace(':', '-')}.sig`])
    assert.deepEqual(await tagsOf(tree), [])
    const {index} = await RegistryTree.load(tree)
    assert.deepEqual(Object.keys(index.manifests), [])
  })

  it('--older-than reads the time a build recorded for each tag, else the image\'s created time', async () => {
    const tree = await buildTree(path.join(work, 'older'))
    const state = JSON.parse(await readFile(path.join(tree, 'registry.json'), 'utf8')) as {repositories: Record<string, {tags: Record<string, string>; tagged?: Record<string, string>}>}
    const app = state.repositories['team/app']
    assert.deepEqual(Object.keys(app.tagged ?? {}).sort(), Object.keys(app.tags).sort(), 'a build records when each tag was set')
    // A day after the build (the clock injected): the tags it recorded are a day old.
    const now = Date.now() + DAY
    app.tagged = {...app.tagged, 'v1.0.0': new Date(now - 40 * DAY).toISOString(), latest: new Date(now - 31 * DAY).toISOString(), 'v1.2.0': new Date(now - 29 * DAY).toISOString()}
    // A tree written before times were recorded: the config's created (2026-01-01 in these images) stands in.
    delete state.repositories['team/tools'].tagged
    await writeFile(path.join(tree, 'registry.json'), JSON.stringify(state))
    const report = await pruneTree(tree, {olderThanMs: 30 * DAY}, {now})
    assert.deepEqual(report.removedTags.map((t) => `${t.repository}:${t.tag}`).sort(), ['team/app:latest', 'team/app:v1.0.0', 'team/tools:1'])
    assert.deepEqual(await tagsOf(tree), ['team/app:v1.10.0', 'team/app:v1.2.0', 'team/app:v2.0.0-rc.1'])
    const kept = JSON.parse(await readFile(path.join(tree, 'registry.json'), 'utf8')) as typeof state
    assert.deepEqual(Object.keys(kept.repositories['team/app'].tagged ?? {}).sort(), ['v1.10.0', 'v1.2.0', 'v2.0.0-rc.1'], 'the times of removed tags go with them')
  })

  it('uses retention: of the config file without rule flags, and refuses to run without any rule', async () => {
    const dir = path.join(work, 'config')
    const tree = await buildTree(dir)
    const none = await runReg(['prune', tree], {cwd: dir})
    assert.equal(none.code, 1)
    assert.match(none.stderr, /needs a rule/)
    await writeFile(path.join(dir, 'reg.config.yaml'), 'out: tree\nretention:\n  keepLast: 1\n  match: "team/app:v*"\n')
    const pruned = await runReg(['prune'], {cwd: dir})
    assert.equal(pruned.code, 0, pruned.stderr)
    assert.deepEqual(await tagsOf(tree), ['team/app:latest', 'team/app:v2.0.0-rc.1', 'team/tools:1'])
    await writeFile(path.join(dir, 'reg.config.yaml'), 'out: tree\nretention:\n  olderThan: soon\n')
    const bad = await runReg(['prune'], {cwd: dir})
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /retention\.olderThan/)
  })

  it('--untagged removes manifests held without a tag', async () => {
    const tree = await buildTree(path.join(work, 'untagged'))
    const state = JSON.parse(await readFile(path.join(tree, 'registry.json'), 'utf8')) as {repositories: Record<string, {tags: Record<string, string>; untagged?: string[]}>}
    const app = state.repositories['team/app']
    // v1.0.0's manifest held untagged (as a push by digest leaves it).
    app.untagged = [app.tags['v1.0.0']]
    delete app.tags['v1.0.0']
    await writeFile(path.join(tree, 'registry.json'), JSON.stringify(state))
    const pruned = await runReg(['prune', tree, '--untagged', '--json'])
    assert.equal(pruned.code, 0, pruned.stderr)
    const report = JSON.parse(pruned.stdout) as {removedTags: unknown[]; removedUntagged: unknown[]; removedManifests: number}
    assert.deepEqual(report.removedTags, [])
    assert.equal(report.removedUntagged.length, 1)
    assert.equal(report.removedManifests, 1)
    const {index} = await RegistryTree.load(tree)
    assert.equal(index.repositories['team/app'].untagged, undefined)
  })
})

describe('tag times of pushed tags', () => {
  after(removeTempDirs)

  it('reg serve --push records when a tag was set (as a build does), and forgets it with the tag', async () => {
    requireTool('skopeo')
    const work = await tempDir()
    const tree = path.join(work, 'tree')
    await writeTinyOciLayout(path.join(work, 'layout'), {'pushed.txt': 'pushed\n'}, '1')
    const server = await startServe(tree, ['--push', '--allow-delete'])
    try {
      const before = Date.now()
      await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${path.join(work, 'layout')}:1`, `docker://${server.hostPort}/team/pushed:1`])
      const pushed = (await RegistryTree.load(tree)).index.repositories['team/pushed']
      const time = Date.parse(pushed?.tagged?.['1'] ?? '')
      assert.ok(time >= before - 1000 && time <= Date.now(), `tagged: ${JSON.stringify(pushed?.tagged)}`)
      const deleted = await fetch(`${server.url}/v2/team/pushed/manifests/1`, {method: 'DELETE'})
      assert.equal(deleted.status, 202)
      const after_ = (await RegistryTree.load(tree)).index.repositories['team/pushed']
      assert.equal(after_?.tagged?.['1'], undefined)
    } finally {
      await server.stop()
    }
  })
})

