// The project itself: the committed oclif manifest matches the commands, and the CLI starts.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {cp, readFile, symlink} from 'node:fs/promises'
import path from 'node:path'
import {after, describe, it} from 'node:test'
import {EXAMPLE_LAYOUT, REPO_ROOT, removeTempDirs, runReg, runRegProcess, tempDir} from './support.js'

describe('project', () => {
  after(removeTempDirs)

  it('oclif.manifest.json is up to date with the commands (regenerate with `npm run manifest`)', async () => {
    const dir = await tempDir()
    await cp(path.join(REPO_ROOT, 'package.json'), path.join(dir, 'package.json'))
    await cp(path.join(REPO_ROOT, 'lib'), path.join(dir, 'lib'), {recursive: true})
    // the config file's JSON Schema ships in the package beside lib/ (package.json "files")
    await cp(path.join(REPO_ROOT, 'schema'), path.join(dir, 'schema'), {recursive: true})
    await symlink(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'))
    execFileSync(process.execPath, [path.join(REPO_ROOT, 'node_modules/oclif/bin/run.js'), 'manifest'], {cwd: dir, stdio: 'pipe'})
    const fresh = JSON.parse(await readFile(path.join(dir, 'oclif.manifest.json'), 'utf8')) as unknown
    const committed = JSON.parse(await readFile(path.join(REPO_ROOT, 'oclif.manifest.json'), 'utf8')) as unknown
    assert.deepEqual(committed, fresh, 'oclif.manifest.json is stale: run `npm run build && npm run manifest` and commit it')
  })

  it('reg --help lists every command (bin/run.js starts as a process of its own)', async () => {
    const result = await runRegProcess(['--help'])
    assert.equal(result.code, 0, result.stderr)
    for (const command of ['build', 'serve', 'deploy', 'ls']) assert.match(result.stdout, new RegExp(`\\n  ${command} `))
  })
})

// The other tests run reg in-process (runReg): the real process must exit with the same codes and print the same.
describe('the real process and the in-process runner agree', () => {
  after(removeTempDirs)

  it('on success, --json output, a RegError, a flag error and an unknown command', async () => {
    const tree = path.join(await tempDir(), 'tree')
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '-o', tree])).code, 0)
    const cases: Array<{args: string[]; code: number}> = [
      {args: ['ls', tree], code: 0},
      {args: ['ls', tree, '--json'], code: 0},
      {args: ['build', `oci:${path.join(tree, 'no-such-layout')}`, '-o', path.join(tree, '..', 'other')], code: 1},
      {args: ['build', '--no-such-flag'], code: 2},
      {args: ['no-such-command'], code: 2},
    ]
    for (const {args, code} of cases) {
      const real = await runRegProcess(args)
      assert.equal(real.code, code, `reg ${args.join(' ')}: ${real.stderr}`)
      assert.deepEqual(await runReg(args), real, `reg ${args.join(' ')}`)
    }
  })
})
