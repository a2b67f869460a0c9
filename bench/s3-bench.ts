// `npm run bench:s3`: deploy the same ≥ 500 MB tree to s3rver with reg, `aws s3 sync` (Debian
// awscli) and `rclone sync --fast-list` (Debian rclone), first and no-change re-deploy, in the
// same run, each through a counting proxy: wall time, bytes sent, requests.
// Sizes: BENCH_IMAGES (4 big images: a 400 MiB shared base + 32 MiB each), BENCH_SMALL (300 tiny images);
// BENCH_BASE_MB=0 BENCH_UNIQUE_MB=128 BENCH_SMALL=50: no shared blobs (4 x 128 MiB + 50 small images).
// BENCH_PROFILE=DIR profiles reg's deploys.
import {spawn} from 'node:child_process'
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {performance} from 'node:perf_hooks'
import {type CountingProxy, S3_CREDENTIALS, startCountingProxy, startS3rver} from '../test/s3rver.js'
import {freePort} from '../test/static-hosts.js'
import {runReg} from '../test/support.js'
import {makeLayout} from './synthetic.js'

const IMAGES = Number(process.env.BENCH_IMAGES ?? 4)
const BASE_MB = Number(process.env.BENCH_BASE_MB ?? 400)
const UNIQUE_MB = Number(process.env.BENCH_UNIQUE_MB ?? 32)
const SMALL = Number(process.env.BENCH_SMALL ?? 300)
const REG_BIN = path.resolve(process.env.BENCH_REG ?? path.join(path.dirname(path.dirname(fileURLToPath(import.meta.url))), 'bin', 'run.js'))
/** BENCH_PROFILE=DIR: reg's deploys run under `node --cpu-prof --cpu-prof-dir=DIR` */
const PROFILE_DIR = process.env.BENCH_PROFILE ? path.resolve(process.env.BENCH_PROFILE) : undefined
const AWS = '/usr/bin/aws' // Debian's awscli; another `aws` may come first on PATH

interface Row {
  tool: string
  run: string
  seconds: number
  bytesSent: number
  requests: number
}

async function measured(proxy: CountingProxy, tool: string, run: string, command: () => Promise<void> | void): Promise<Row> {
  proxy.reset()
  const start = performance.now()
  await command()
  const seconds = (performance.now() - start) / 1000
  return {tool, run, seconds, bytesSent: proxy.requests.reduce((sum, r) => sum + r.bodyBytes, 0), requests: proxy.requests.length}
}

const work = await mkdtemp(path.join(os.tmpdir(), 'reg-bench-s3-'))
const stops: Array<() => Promise<void>> = []
try {
  console.log(`generating ${IMAGES} images (${BASE_MB} MiB shared base + ${UNIQUE_MB} MiB each, in 4 repositories) and ${SMALL} tiny images ...`)
  const layout = path.join(work, 'layout')
  await makeLayout(layout, {images: IMAGES, baseMb: BASE_MB, uniqueMb: UNIQUE_MB, smallImages: SMALL})
  const tree = path.join(work, 'tree')
  const built = await runReg(['build', `oci:${layout}`, '-o', tree])
  if (built.code !== 0) throw new Error(built.stderr)
  // The files aws and rclone sync: the same URL space as plain files (what `--backend dir` writes).
  const files = path.join(work, 'files')
  const dir = await runReg(['deploy', tree, '--backend', 'dir', '--dest', files])
  if (dir.code !== 0) throw new Error(dir.stderr)
  await rm(path.join(files, '.reg-state.json'))

  const s3 = await startS3rver(path.join(work, 's3rver'), await freePort())
  stops.push(s3.stop)
  const proxy = await startCountingProxy(s3.endpoint, await freePort())
  stops.push(proxy.stop)
  const env = {...process.env, ...S3_CREDENTIALS}
  for (const bucket of ['reg-bench', 'aws-bench', 'rclone-bench']) await fetch(`${s3.endpoint}/${bucket}`, {method: 'PUT'})
  const awsConfig = path.join(work, 'aws-config')
  await writeFile(awsConfig, '[default]\ns3 =\n  addressing_style = path\n')
  const awsEnv = {...env, AWS_CONFIG_FILE: awsConfig, AWS_SHARED_CREDENTIALS_FILE: '/dev/null'}
  const rcloneEnv: NodeJS.ProcessEnv = {
    ...env, RCLONE_CONFIG_BENCH_TYPE: 's3', RCLONE_CONFIG_BENCH_PROVIDER: 'Other', RCLONE_CONFIG_BENCH_ENDPOINT: proxy.endpoint,
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: 'S3RVER', RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: 'S3RVER', RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
  }
  delete rcloneEnv.AWS_CA_BUNDLE
  await mkdir(path.join(work, 'home'), {recursive: true})

  // Asynchronous: the counting proxy runs in this process and must keep answering. Every tool, reg
  // too, runs as a process of its own: none shares the proxy's event loop.
  const exec = (command: string, args: string[], childEnv: NodeJS.ProcessEnv) => new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, {env: childEnv, stdio: 'inherit'})
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited ${code}`))))
  })
  const regDeploy = () => exec(process.execPath, [...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []), REG_BIN, 'deploy', tree, '--backend', 's3', '--bucket', 'reg-bench', '--endpoint', proxy.endpoint, '--force-path-style', '--json'], {...process.env, ...env})
  const awsSync = () => exec(AWS, ['s3', 'sync', '--only-show-errors', '--endpoint-url', proxy.endpoint, files, 's3://aws-bench/'], awsEnv)
  const rcloneSync = () => exec('rclone', ['sync', '--fast-list', files, 'bench:rclone-bench'], rcloneEnv)
  const rows: Row[] = []
  for (const [tool, command] of [['reg deploy', regDeploy], ['aws s3 sync', awsSync], ['rclone sync --fast-list', rcloneSync]] as const) {
    rows.push(await measured(proxy, tool, 'first', command))
    rows.push(await measured(proxy, tool, 're-deploy', command))
  }
  const mb = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`
  console.log(`\n${'tool'.padEnd(26)}${'run'.padEnd(11)}${'wall'.padStart(9)}${'sent'.padStart(13)}${'requests'.padStart(10)}`)
  for (const r of rows) console.log(`${r.tool.padEnd(26)}${r.run.padEnd(11)}${`${r.seconds.toFixed(2)} s`.padStart(9)}${mb(r.bytesSent).padStart(13)}${String(r.requests).padStart(10)}`)
  const first = (tool: string) => rows.find((r) => r.tool === tool && r.run === 'first')!
  console.log(`\nfirst deploy, reg / aws: ${(first('reg deploy').seconds / first('aws s3 sync').seconds).toFixed(2)}x; reg / rclone: ${(first('reg deploy').seconds / first('rclone sync --fast-list').seconds).toFixed(2)}x (goal < 1 for both)`)
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => undefined)
  await rm(work, {recursive: true, force: true})
}
