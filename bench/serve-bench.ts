// `npm run bench:serve`: `reg serve` against distribution 2.8 (Debian's docker-registry) and nginx
// serving a `reg deploy --backend nginx` of the same tree, all on 127.0.0.1, in the same run:
// BENCH_CLIENTS (8) concurrent full GETs of one BENCH_BLOB_MB (128) MiB incompressible blob, each a
// `curl` process of its own writing to /dev/null. The wall time of a download round is from the
// first spawn to the last exit; every curl must get 200 and exactly the blob's bytes.
//
// BENCH_ROUNDS (5) rounds; the contenders alternate their order each round (a warm-up round first,
// not counted), figures are medians. Prints reg / distribution and nginx / distribution.
// BENCH_PROFILE=DIR runs reg serve under `node --cpu-prof --cpu-prof-dir=DIR` (summarise the
// profile with bench/profile-summary.ts). Other knobs: BENCH_REG (another bin/run.js),
// BENCH_TMPDIR, BENCH_KEEP=1, `--json`. Not a test: it fails only on a broken run.
import {spawn} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {performance} from 'node:perf_hooks'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'
import {startDistribution} from '../test/distribution.js'
import {freePort, makeServable, requireTool, startNginx} from '../test/static-hosts.js'
import {makeLayout} from './synthetic.js'

const JSON_OUT = process.argv.includes('--json')
const REPO = path.dirname(path.dirname(fileURLToPath(import.meta.url)))

function numberFromEnv(name: string, fallback: number): number {
  const text = process.env[name]
  if (text === undefined || text === '') return fallback
  const value = Number(text)
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name}=${text}: expected a positive integer`)
  return value
}

const CLIENTS = numberFromEnv('BENCH_CLIENTS', 8)
const BLOB_MB = numberFromEnv('BENCH_BLOB_MB', 128)
const ROUNDS = numberFromEnv('BENCH_ROUNDS', 5)
const REG_BIN = path.resolve(process.env.BENCH_REG ?? path.join(REPO, 'bin', 'run.js'))
const PROFILE_DIR = process.env.BENCH_PROFILE ? path.resolve(process.env.BENCH_PROFILE) : undefined
const KEEP = process.env.BENCH_KEEP === '1'
const GOAL = 1.0

function say(line = ''): void {
  ;(JSON_OUT ? process.stderr : process.stdout).write(line + '\n')
}

function run(command: string, args: string[], options: {cwd?: string} = {}): Promise<{code: number; stdout: string; stderr: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.once('error', reject)
    child.once('close', (code) => resolve({code: code ?? -1, stdout, stderr}))
  })
}

async function mustRun(command: string, args: string[]): Promise<string> {
  const result = await run(command, args)
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr}`)
  return result.stdout
}

async function waitFor(url: string, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await fetch(url).then((r) => r.status < 500, () => false)) return
    await sleep(50)
  }
  throw new Error(`${what} did not answer on ${url}`)
}

/** `reg serve TREE` as its own process (profiled with BENCH_PROFILE); stop() ends it with SIGTERM so the profile is written. */
async function startRegServe(tree: string): Promise<{url: string; stop(): Promise<void>}> {
  const port = await freePort()
  const nodeFlags = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []
  const child = spawn(process.execPath, [...nodeFlags, REG_BIN, 'serve', tree, '-p', String(port)], {stdio: ['ignore', 'ignore', 'inherit']})
  const url = `http://127.0.0.1:${port}`
  await waitFor(`${url}/v2/`, 'reg serve')
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM')
      if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve))
    },
  }
}

/** CLIENTS curl processes fetching `url` at once; seconds from the first spawn to the last exit. */
async function downloadRound(url: string, size: number): Promise<number> {
  const start = performance.now()
  const results = await Promise.all(Array.from({length: CLIENTS}, () => run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', url])))
  const seconds = (performance.now() - start) / 1000
  for (const result of results) {
    if (result.code !== 0 || result.stdout !== `200 ${size}`) throw new Error(`curl ${url} (${result.stderr}): exit ${result.code}, ${result.stdout} (expected 200 ${size})`)
  }
  return seconds
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

for (const tool of ['curl', 'docker-registry', 'nginx']) requireTool(tool)
const work = await mkdtemp(path.join(process.env.BENCH_TMPDIR ?? os.tmpdir(), 'reg-bench-serve-'))
const stops: Array<() => Promise<void>> = []
try {
  say(`generating an OCI layout with one ${BLOB_MB} MiB incompressible layer ...`)
  const layout = path.join(work, 'layout')
  const generated = await makeLayout(layout, {images: 1, baseMb: BLOB_MB, uniqueMb: 1 / 16})
  const [blobDigest, blobSize] = [...generated.blobs].find(([, size]) => size === BLOB_MB * 1024 * 1024)!
  const repository = 'bench/serve'
  const tree = path.join(work, 'tree')
  await mustRun(process.execPath, [REG_BIN, 'build', `oci:${layout}=${repository}`, '-o', tree])
  const blobPath = `/v2/${repository}/blobs/${blobDigest}`

  const nginxPort = await freePort()
  const nginxOut = path.join(work, 'nginx')
  await mustRun(process.execPath, [REG_BIN, 'deploy', tree, '--backend', 'nginx', '--dest', nginxOut, '--listen', `127.0.0.1:${nginxPort}`])
  await makeServable(nginxOut)
  const nginx = await startNginx(nginxOut, nginxPort)
  stops.push(nginx.stop)

  const distributionPort = await freePort()
  const distribution = await startDistribution(path.join(work, 'distribution'), distributionPort)
  stops.push(distribution.stop)
  // The blob as it is, by plain HTTP (a monolithic upload): skopeo would compress the layer on the way.
  const started = await fetch(`http://${distribution.hostPort}/v2/${repository}/blobs/uploads/`, {method: 'POST'})
  const location = new URL(started.headers.get('location') ?? '', `http://${distribution.hostPort}`)
  location.searchParams.set('digest', blobDigest)
  await mustRun('curl', ['-sf', '-H', 'Content-Type: application/octet-stream', '-T', `${path.join(layout, 'blobs', 'sha256', blobDigest.slice(7))}`, location.href])

  const reg = await startRegServe(tree)
  stops.push(reg.stop)

  const contenders: Array<{name: string; url: string}> = [
    {name: 'reg serve', url: reg.url + blobPath},
    {name: 'distribution', url: `http://${distribution.hostPort}${blobPath}`},
    {name: 'nginx', url: nginx.url + blobPath},
  ]
  const times = new Map<string, number[]>(contenders.map((c) => [c.name, []]))
  say(`${CLIENTS} concurrent downloads of ${blobDigest.slice(0, 19)}… (${blobSize} bytes), ${ROUNDS} rounds after a warm-up`)
  for (const contender of contenders) say(`  ${contender.name}: ${contender.url}`)
  for (const contender of contenders) await downloadRound(contender.url, blobSize)
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? contenders : [...contenders].reverse()
    const line: string[] = []
    for (const contender of order) {
      const seconds = await downloadRound(contender.url, blobSize)
      times.get(contender.name)!.push(seconds)
      line.push(`${contender.name} ${seconds.toFixed(2)} s`)
    }
    say(`  round ${round + 1}: ${line.join(', ')}`)
  }
  const medians = Object.fromEntries(contenders.map((c) => [c.name, median(times.get(c.name)!)]))
  const regRatio = medians['reg serve'] / medians.distribution
  const nginxRatio = medians.nginx / medians.distribution
  const totalMiB = (CLIENTS * blobSize) / 2 ** 20
  say()
  for (const c of contenders) say(`${c.name.padEnd(14)} median ${medians[c.name].toFixed(2)} s  (${(totalMiB / medians[c.name]).toFixed(0)} MiB/s)`)
  say(`reg / distribution    ${regRatio.toFixed(2)}x  goal ≤ ${GOAL.toFixed(1)}x  ${regRatio <= GOAL ? 'PASS' : 'MISS'}`)
  say(`nginx / distribution  ${nginxRatio.toFixed(2)}x`)
  if (JSON_OUT) process.stdout.write(JSON.stringify({clients: CLIENTS, blobBytes: blobSize, rounds: ROUNDS, seconds: Object.fromEntries(times), medians, regRatio, nginxRatio}, null, 2) + '\n')
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => undefined)
  if (KEEP) say(`kept ${work}`)
  else await rm(work, {recursive: true, force: true})
}
