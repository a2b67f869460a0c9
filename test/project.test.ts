// The project itself: the committed oclif manifest matches the commands, and the CLI starts.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {cp, readFile, symlink} from 'node:fs/promises'
import path from 'node:path'
import {after, describe, it} from 'node:test'
import {REPO_ROOT, removeTempDirs, runReg, tempDir} from './support.js'

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

  it('reg --help lists every command', async () => {
    const result = await runReg(['--help'])
    assert.equal(result.code, 0, result.stderr)
    for (const command of ['build', 'serve', 'deploy', 'ls']) assert.match(result.stdout, new RegExp(`\\n  ${command} `))
  })
})
