// The CLI as a newcomer meets it: --version/-v, -h, a flag error in two lines, shell completion, and
// no warning from the AWS SDK on an S3 deploy (the real bin/run.js in a child process each time).
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {after, describe, it} from 'node:test'
import {S3_BUCKET, S3_CREDENTIALS, startS3rver} from './s3rver.js'
import {freePort} from './static-hosts.js'
import {EXAMPLE_LAYOUT, REPO_ROOT, removeTempDirs, runReg, runRegProcess, tempDir} from './support.js'

const {version} = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {version: string}
const NODE_MAJOR = Number(process.versions.node.split('.')[0])
const NOTE = 'reg: note: Node 20 is past its end of life (April 2026); reg still runs on it, Node 22 or 24 is recommended.'
/** bin/run.js says it once per run on Node 20 to a terminal; captured stderr (as here) never has it. */
const END_OF_LIFE_NOTE = ''

after(removeTempDirs)

describe('reg runtime and flags', () => {
  it('--version and -v print the version line', async () => {
    const expected = `reg/${version} ${process.platform}-${process.arch} node-${process.version}\n`
    for (const flag of ['--version', '-v']) {
      const result = await runRegProcess([flag])
      assert.deepEqual(result, {code: 0, stdout: expected, stderr: END_OF_LIFE_NOTE}, flag)
    }
  })

  it('engines names Node 20, 22 and 24; the Action runs on node24 (this suite runs its bundle on the current Node)', async () => {
    const {engines} = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {engines: {node: string}}
    assert.equal(engines.node, '20.x || 22.x || 24.x')
    assert.match(await readFile(path.join(REPO_ROOT, 'action.yml'), 'utf8'), /\n {2}using: node24\n/)
  })

  it('on Node 20, a terminal gets one note that Node 20 is past its end of life; Node 22 and 24 get none', async () => {
    // script(1) gives reg a terminal; its output is stdout and stderr together, with CRLF line ends.
    const result = await new Promise<string>((resolve, reject) => {
      execFile('script', ['-qec', `${process.execPath} ${path.join(REPO_ROOT, 'bin', 'run.js')} --version`, '/dev/null'], {timeout: 60_000}, (error, stdout) => (error ? reject(error) : resolve(stdout)))
    })
    const lines = result.split('\r\n').filter(Boolean)
    assert.deepEqual(lines, [...(NODE_MAJOR < 22 ? [NOTE] : []), `reg/${version} ${process.platform}-${process.arch} node-${process.version}`])
  })

  it('-h is --help', async () => {
    const long = await runRegProcess(['build', '--help'])
    const short = await runRegProcess(['build', '-h'])
    assert.equal(long.code, 0)
    assert.match(long.stdout, /^Copy images into a registry tree/)
    assert.deepEqual(short, long)
  })

  it('a flag error names the one wrong flag and the usage line', async () => {
    assert.deepEqual(await runRegProcess(['build', '--bogus', 'x']), {
      code: 2, stdout: '',
      stderr: `${END_OF_LIFE_NOTE}reg: error: Nonexistent flag: --bogus\nusage: reg build [SOURCE...] [FLAGS]  (reg build --help lists the flags)\n`,
    })
    assert.deepEqual(await runRegProcess(['deploy', '--dedupe', 'nope']), {
      code: 2, stdout: '',
      stderr: `${END_OF_LIFE_NOTE}reg: error: Expected --dedupe=nope to be one of: copy, redirect, none\nusage: reg deploy [DIR] [FLAGS]  (reg deploy --help lists the flags)\n`,
    })
  })

  it('reg autocomplete prints the setup of bash completion', async () => {
    const cache = await tempDir()
    const result = await runRegProcess(['autocomplete', 'bash'], {env: {XDG_CACHE_HOME: cache, HOME: cache}})
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /reg autocomplete/)
  })

  it('an S3 deploy prints no warning: no NodeVersionSupportWarning', async () => {
    const work = await tempDir()
    const tree = path.join(work, 'tree')
    const built = await runReg(['build', `oci:${EXAMPLE_LAYOUT}=examples/hello`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    const s3 = await startS3rver(path.join(work, 's3rver'), await freePort())
    try {
      const result = await runRegProcess(['deploy', tree, '--backend', 's3', '--bucket', S3_BUCKET, '--endpoint', s3.endpoint, '--force-path-style', '--json'], {
        env: {...S3_CREDENTIALS, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: undefined},
      })
      assert.equal(result.code, 0, result.stderr)
      assert.equal(result.stderr, END_OF_LIFE_NOTE)
      assert.doesNotMatch(result.stderr, /NodeVersionSupportWarning|Warning/)
      JSON.parse(result.stdout)
    } finally {
      await s3.stop()
    }
  })
})
