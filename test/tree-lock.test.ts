// One writer at a time for a tree: reg build, reg prune and reg serve --push each take the tree's
// write lock (DIR.reg-lock beside it); a second writer is refused, naming the first, and the tree is
// left as it was. A lock whose holder is gone is taken over.
import assert from 'node:assert/strict'
import {access, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {run} from './clients.js'
import {requireTool} from './static-hosts.js'
import {EXAMPLE_LAYOUT, removeTempDirs, runReg, startServe, tempDir, writeTinyOciLayout} from './support.js'

describe('one writer at a time', () => {
  let work: string
  before(async () => {
    requireTool('skopeo')
    work = await tempDir()
  })
  after(removeTempDirs)

  it('while reg serve --push runs, reg build and reg prune of its tree are refused and change nothing; a push still lands', async () => {
    const tree = path.join(work, 'served')
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '-o', tree])).code, 0)
    const server = await startServe(tree, ['--push'])
    try {
      const before = await readFile(path.join(tree, 'registry.json'), 'utf8')
      const built = await runReg(['build', `oci:${EXAMPLE_LAYOUT}=other/app:1`, '-o', tree])
      assert.equal(built.code, 1)
      assert.equal(built.stderr, `reg: error: ${tree} is being written by reg serve --push (process ${server.pid})\n  hint: wait until it finishes, or stop it: two writers at once would lose one's changes (the lock is ${tree}.reg-lock)\n`)
      const pruned = await runReg(['prune', tree, '--keep-last', '0'])
      assert.equal(pruned.code, 1)
      assert.match(pruned.stderr, /is being written by reg serve --push/)
      assert.equal(await readFile(path.join(tree, 'registry.json'), 'utf8'), before, 'the tree is as it was')
      // The server's own writes go on.
      await writeTinyOciLayout(path.join(work, 'pushed'), {'pushed.txt': 'pushed\n'}, '1')
      await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${path.join(work, 'pushed')}:1`, `docker://${server.hostPort}/team/pushed:1`])
    } finally {
      await server.stop()
    }
    // Stopped, it let go: a build goes ahead and keeps the pushed image.
    await assert.rejects(access(`${tree}.reg-lock`), /ENOENT/)
    const built = await runReg(['build', `oci:${EXAMPLE_LAYOUT}=other/app:1`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    const index = JSON.parse(await readFile(path.join(tree, 'registry.json'), 'utf8')) as {repositories: Record<string, unknown>}
    assert.ok(index.repositories['team/pushed'] && index.repositories['other/app'], Object.keys(index.repositories).join(', '))
  })

  it('a lock left by a writer that is gone is taken over; an unreadable fresh one is respected', async () => {
    const tree = path.join(work, 'stale')
    // A pid that runs no process: the kernel's pid_max is below 2^22 by default.
    await writeFile(`${tree}.reg-lock`, JSON.stringify({pid: 4_194_304 + 12_345, command: 'reg build'}))
    const built = await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    await assert.rejects(access(`${tree}.reg-lock`), /ENOENT/)
    for (const content of ['', 'x'.repeat(5 * 1024 * 1024)]) {
      // Empty (its holder is still writing its name) or far too large to be a holder's: fresh, so held.
      await writeFile(`${tree}.reg-lock`, content)
      const refused = await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '-o', tree])
      assert.equal(refused.code, 1)
      assert.match(refused.stderr, /is being written by another reg command/)
    }
  })
})
