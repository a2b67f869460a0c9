// Ctrl-C during a deploy: the AbortSignal reaches the backend's requests, the deploy stops with a
// clear error and a non-zero exit, what went live stays, and the same deploy run again resumes.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {setTimeout as sleep} from 'node:timers/promises'
import {BACKENDS} from '../plugins/index.js'
import {RegError} from '../src/core/errors.js'
import {deployTree} from '../src/publish/deploy.js'
import {type CountingProxy, type RunningS3, S3_BUCKET, S3_CREDENTIALS, startCountingProxy, startS3rver} from './s3rver.js'
import {freePort} from './static-hosts.js'
import {EXAMPLE_LAYOUT, REPO_ROOT, removeTempDirs, runReg, tempDir, writeTinyOciLayout} from './support.js'

describe('reg deploy, interrupted (s3rver)', () => {
  let work: string
  let tree: string
  let s3: RunningS3
  let proxy: CountingProxy
  const saved = {...process.env}

  before(async () => {
    work = await tempDir()
    tree = path.join(work, 'tree')
    const second = path.join(work, 'second')
    await writeTinyOciLayout(second, {'s.txt': 'second\n'}, 's')
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, `oci:${EXAMPLE_LAYOUT}=team/app:1.0`, `oci:${second}=team/second:1`, '-o', tree])).code, 0)
    s3 = await startS3rver(path.join(work, 's3rver'), await freePort())
    proxy = await startCountingProxy(s3.endpoint, await freePort())
    Object.assign(process.env, S3_CREDENTIALS)
  })

  after(async () => {
    process.env = saved
    await proxy?.stop()
    await s3?.stop()
    await removeTempDirs()
  })

  const backend = (endpoint: string) => BACKENDS.create('s3', {bucket: S3_BUCKET, endpoint, 'force-path-style': true, 'key-prefix': 'inproc'})

  it('stops between steps when the signal aborts; the same deploy again publishes only the rest', async () => {
    const interrupt = new AbortController()
    let done = 0
    await assert.rejects(deployTree(tree, await backend(s3.endpoint), {
      concurrency: 1, signal: interrupt.signal,
      observer: {stepDone: () => void (++done === 3 && interrupt.abort())},
    }), (error: Error) => error instanceof RegError && error.code === 'INTERRUPTED' && /deploy interrupted/.test(error.message) && /run the same deploy again to resume/.test(error.hint ?? ''))
    assert.equal(done, 3, 'nothing ran after the abort')
    const resumed = await deployTree(tree, await backend(s3.endpoint), {concurrency: 1})
    assert.equal(resumed.plan.unchanged, 3, 'what went live before the abort stays')
    assert.ok(resumed.plan.uploads + resumed.plan.copies > 0)
    const again = await deployTree(tree, await backend(s3.endpoint))
    assert.equal(again.plan.uploads + again.plan.copies + again.plan.redirects, 0, 'the resumed deploy is complete')
  })

  it('SIGINT while an upload hangs: the process aborts the request and exits non-zero; a re-run completes', async () => {
    const release = proxy.hold('PUT')
    const args = [path.join(REPO_ROOT, 'bin', 'run.js'), 'deploy', tree, '--backend', 's3', '--bucket', S3_BUCKET, '--endpoint', proxy.endpoint, '--force-path-style', '--key-prefix', 'cli']
    const child = spawn(process.execPath, args, {env: {...process.env, ...S3_CREDENTIALS}, stdio: ['ignore', 'pipe', 'pipe']})
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString()))
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    try {
      for (let i = 0; i < 400 && proxy.held === 0; i++) await sleep(25)
      assert.ok(proxy.held > 0, 'the deploy reached an upload')
      child.kill('SIGINT')
      const code = await exited
      assert.notEqual(code, 0)
      assert.notEqual(code, null, 'it exited by itself, not killed by the signal')
      assert.match(stderr, /s3: deploy interrupted/)
    } finally {
      child.kill('SIGKILL')
      release()
    }
    const rerun = await runReg([...args.slice(1), '--json'], {env: S3_CREDENTIALS})
    assert.equal(rerun.code, 0, rerun.stderr)
  })
})
