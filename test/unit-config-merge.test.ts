// The config merge behind `reg deploy` and the Action, as a pure function of the file, the parsed
// flags and the flags typed: typed flags win over a target's settings, a target's paths are relative
// to its file, `--backend` alone ignores targets, and a missing backend says how to name one.
import assert from 'node:assert/strict'
import {mkdir, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {resolveDeploy} from '../src/config/resolve.js'
import {removeTempDirs, tempDir} from './support.js'

describe('deploy settings: flags, config targets and defaults merged', () => {
  let work: string
  let config: string
  before(async () => {
    work = await tempDir('reg-merge-')
    await mkdir(path.join(work, 'conf'))
    config = path.join(work, 'conf', 'reg.config.json')
    await writeFile(config, JSON.stringify({
      out: 'tree',
      defaultTarget: 'local',
      targets: {local: {backend: 'dir', dest: 'public', concurrency: 3, prune: true}, other: {backend: 'nginx', dest: '/srv/registry'}},
    }))
  })
  after(removeTempDirs)

  it("a target's settings stand in for flags not typed; its paths are relative to the config file", async () => {
    const resolved = await resolveDeploy(undefined, {config}, new Set(['config']))
    assert.equal(resolved.target, 'local')
    assert.equal(resolved.dir, path.join(work, 'conf', 'tree'))
    assert.equal(resolved.backend.name, 'dir')
    assert.equal(resolved.backend.localDirectory, path.join(work, 'conf', 'public'))
    assert.deepEqual({concurrency: resolved.options.concurrency, prune: resolved.options.prune}, {concurrency: 3, prune: true})
  })

  it('a typed flag wins over the target, and a typed path is relative to where reg runs', async () => {
    const resolved = await resolveDeploy('given-tree', {config, target: 'local', dest: 'elsewhere', concurrency: 9}, new Set(['config', 'target', 'dest', 'concurrency']))
    assert.equal(resolved.dir, 'given-tree')
    assert.equal(resolved.backend.localDirectory, path.resolve('elsewhere'))
    assert.equal(resolved.options.concurrency, 9)
    assert.equal(resolved.options.prune, true, 'what was not typed still comes from the target')
  })

  it('--backend without --target ignores the targets', async () => {
    const resolved = await resolveDeploy(undefined, {config, backend: 'dir', dest: 'd'}, new Set(['config', 'backend', 'dest']))
    assert.equal(resolved.target, undefined)
    assert.equal(resolved.options.prune, false)
    assert.equal(resolved.backend.localDirectory, path.resolve('d'))
  })

  it('an unknown target and a missing backend say what to type', async () => {
    await assert.rejects(resolveDeploy(undefined, {config, target: 'nope'}, new Set(['config', 'target'])), /has no target "nope"/)
    await assert.rejects(resolveDeploy(undefined, {config: path.join(work, 'none.json')}, new Set(['config'])), /no config file/)
    const empty = path.join(work, 'empty.json')
    await writeFile(empty, JSON.stringify({}))
    await assert.rejects(resolveDeploy(undefined, {config: empty}, new Set(['config'])), (error: Error & {hint?: string}) => {
      assert.equal(error.message, 'reg deploy needs --backend or a deploy target')
      assert.match(String(error.hint), /pass --backend NAME, or define targets/)
      return true
    })
  })
})
