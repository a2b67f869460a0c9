// `npm run bench`: reg build against the seed-era baseline (skopeo copy each image to dir:, then
// hardlink identical blobs), in the same run, on N synthetic images sharing one big base layer.
// Prints wall time ratio, throughput against sha256sum over the same bytes, bytes on disk against
// unique blob bytes, and peak RSS. Sizes: BENCH_IMAGES (8), BENCH_BASE_MB (400), BENCH_UNIQUE_MB (16).
import {execFileSync, spawn} from 'node:child_process'
import {link, mkdir, mkdtemp, readdir, readFile, rm, stat, unlink} from 'node:fs/promises'
import {bigImageRef, makeLayout} from './synthetic.js'
import os from 'node:os'
import path from 'node:path'
import {performance} from 'node:perf_hooks'
import {fileURLToPath} from 'node:url'

const IMAGES = Number(process.env.BENCH_IMAGES ?? 8)
const BASE_MB = Number(process.env.BENCH_BASE_MB ?? 400)
const UNIQUE_MB = Number(process.env.BENCH_UNIQUE_MB ?? 16)
const REPO = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const MB = 1024 * 1024

/** Run a command, timing it and sampling its peak resident set (VmHWM) from /proc. */
async function measure(command: string, args: string[]): Promise<{seconds: number; peakRssMb: number; stdout: string}> {
  const start = performance.now()
  const child = spawn(command, args, {stdio: ['ignore', 'pipe', 'inherit']})
  let stdout = ''
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
  let peakKb = 0
  const sample = async () => {
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '')
    const hwm = /VmHWM:\s+(\d+)/.exec(status)
    if (hwm) peakKb = Math.max(peakKb, Number(hwm[1]))
  }
  const timer = setInterval(() => void sample(), 20)
  const code: number = await new Promise((resolve) => child.once('exit', (c) => resolve(c ?? 1)))
  clearInterval(timer)
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${code}`)
  return {seconds: (performance.now() - start) / 1000, peakRssMb: peakKb / 1024, stdout}
}

/** Bytes of distinct inodes under `dir`: what it really occupies, hardlinks counted once. */
async function bytesOnDisk(dir: string): Promise<number> {
  const seen = new Map<number, number>()
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, {withFileTypes: true})) {
      const full = path.join(d, entry.name)
      if (entry.isDirectory()) await walk(full)
      else if (entry.isFile()) {
        const info = await stat(full)
        seen.set(info.ino, info.size)
      }
    }
  }
  await walk(dir)
  return [...seen.values()].reduce((a, b) => a + b, 0)
}

/** The seed-era baseline: skopeo copy each image to dir:, then hardlink identical blobs (same digest name). */
async function baseline(layout: string, out: string): Promise<number> {
  await mkdir(out, {recursive: true})
  const start = performance.now()
  for (let i = 0; i < IMAGES; i++) execFileSync('skopeo', ['copy', '-q', `oci:${layout}:${bigImageRef(i)}`, `dir:${path.join(out, `img-${i}`)}`])
  const first = new Map<string, string>()
  for (let i = 0; i < IMAGES; i++) {
    const dir = path.join(out, `img-${i}`)
    for (const name of await readdir(dir)) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue
      const file = path.join(dir, name)
      const original = first.get(name)
      if (!original) first.set(name, file)
      else {
        await unlink(file)
        await link(original, file)
      }
    }
  }
  return (performance.now() - start) / 1000
}

const work = await mkdtemp(path.join(os.tmpdir(), 'reg-bench-'))
try {
  console.log(`generating ${IMAGES} images: a ${BASE_MB} MiB shared base layer + ${UNIQUE_MB} MiB each ...`)
  const layout = path.join(work, 'layout')
  const {uniqueBytes, blobFiles} = await makeLayout(layout, {images: IMAGES, baseMb: BASE_MB, uniqueMb: UNIQUE_MB})
  const logicalBytes = IMAGES * (BASE_MB + UNIQUE_MB) * MB
  // Warm the page cache for both contenders, and measure sha256sum over the same bytes.
  execFileSync('sh', ['-c', `cat ${blobFiles.map((f) => `'${f}'`).join(' ')} > /dev/null`])
  const shaStart = performance.now()
  execFileSync('sha256sum', blobFiles, {stdio: 'ignore'})
  const shaSeconds = (performance.now() - shaStart) / 1000

  const baselineSeconds = await baseline(layout, path.join(work, 'baseline'))
  const baselineDisk = await bytesOnDisk(path.join(work, 'baseline'))
  await rm(path.join(work, 'baseline'), {recursive: true, force: true})
  execFileSync('sh', ['-c', `cat ${blobFiles.map((f) => `'${f}'`).join(' ')} > /dev/null`])
  const tree = path.join(work, 'tree')
  const reg = await measure(process.execPath, [path.join(REPO, 'bin', 'run.js'), 'build', `oci:${layout}=bench/app`, '-o', tree, '--json'])
  const summary = JSON.parse(reg.stdout) as {bytesStored: number; blobs: number}
  // The tree also stores the small documents it generates (tags lists, catalog, /v2/): not image bytes.
  const treeIndex = JSON.parse(await readFile(path.join(tree, 'registry.json'), 'utf8')) as {objects: Array<{class: string; digest: string; size: number}>}
  const generated = new Map(treeIndex.objects.filter((o) => !['blob', 'digest-manifest', 'tag-manifest'].includes(o.class)).map((o) => [o.digest, o.size]))
  const regDisk = (await bytesOnDisk(path.join(tree, 'blobs'))) - [...generated.values()].reduce((a, b) => a + b, 0)

  const shaMBs = uniqueBytes / MB / shaSeconds
  const regMBs = uniqueBytes / MB / reg.seconds
  const rows: Array<[string, string, string, boolean]> = [
    ['wall time: reg build / baseline', `${reg.seconds.toFixed(2)} s / ${baselineSeconds.toFixed(2)} s = ${(reg.seconds / baselineSeconds).toFixed(3)}x`, '<= 0.5x', reg.seconds / baselineSeconds <= 0.5],
    ['throughput: reg (unique bytes / wall) vs sha256sum', `${regMBs.toFixed(0)} MB/s vs ${shaMBs.toFixed(0)} MB/s = ${(regMBs / shaMBs).toFixed(2)}x`, '>= 0.8x', regMBs / shaMBs >= 0.8],
    ['image bytes on disk (tree) vs unique blob bytes', `${regDisk} vs ${uniqueBytes}`, 'equal', regDisk === uniqueBytes],
    ['peak RSS of reg build', `${reg.peakRssMb.toFixed(0)} MB`, '< 250 MB', reg.peakRssMb < 250],
  ]
  console.log(`\nlogical bytes ${(logicalBytes / MB).toFixed(0)} MiB over ${IMAGES} images, unique ${(uniqueBytes / MB).toFixed(0)} MiB in ${blobFiles.length} blobs; page cache warmed before each contender`)
  console.log(`baseline (skopeo copy to dir: + hardlinks) leaves ${(baselineDisk / MB).toFixed(0)} MiB on disk; reg's tree stores ${summary.blobs} blobs`)
  for (const [what, value, goal, ok] of rows) console.log(`${what.padEnd(52)} ${value.padEnd(48)} goal ${goal.padEnd(9)} ${ok ? 'PASS' : 'MISS'}`)
  if (process.argv.includes('--json')) console.log(JSON.stringify({regSeconds: reg.seconds, baselineSeconds, shaSeconds, uniqueBytes, regDisk, peakRssMb: reg.peakRssMb}))
} finally {
  await rm(work, {recursive: true, force: true})
}
