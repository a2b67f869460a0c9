// `npm run bench:build` (and the first part of `npm run bench`): `reg build` against the seed-era
// baseline, measured in the same run, on N synthetic images sharing one big base layer.
//
//   baseline  `skopeo copy oci:LAYOUT:img-<i> dir:OUT/img-<i>` for each image, then hardlink the
//             blob files with the same digest name across the copies (what `cp -al` dedup gave us)
//   reg       `node bin/run.js build oci:LAYOUT=bench/app -o TREE --json`
//   sha256sum over the layout's unique blob files: the bytes reg has to hash
//
// Prints wall time (reg / baseline), reg's throughput (unique bytes / wall time) against
// sha256sum's, the tree's bytes on disk (distinct inodes) against the unique blob bytes, and reg's
// peak RSS, each with its goal and PASS/MISS. `--json` prints the figures as JSON on stdout (the
// table then goes to stderr). Not a test: it never fails on a MISS, only on a broken run.
//
// Each round also times reg's fixed cost: a build of a one-image layout of a few KiB (node's and the
// CLI's startup, the lock, the swap, the exit), so what the copy itself costs can be told apart.
//
// Environment: BENCH_IMAGES (8), BENCH_BASE_MB (400 MiB), BENCH_UNIQUE_MB (16 MiB), BENCH_ROUNDS (2:
// the contenders alternate their order each round), BENCH_REG (path of reg's bin/run.js),
// BENCH_KEEP=1 (keep the temporary directory), BENCH_TMPDIR (where it goes; default os.tmpdir()),
// BENCH_PROFILE=DIR (reg's builds run under `node --cpu-prof --cpu-prof-dir=DIR`; summarise with
// bench/profile-summary.ts).
import {createHash} from 'node:crypto'
import {createReadStream, existsSync} from 'node:fs'
import {link, lstat, mkdir, mkdtemp, readdir, readFile, rm, statfs, unlink} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {performance} from 'node:perf_hooks'
import {fileURLToPath} from 'node:url'
import {run, type Run} from './measure.js'
import {makeLayout} from './synthetic.js'
import type {BuildSummary} from '../src/tree/builder.js'

const JSON_OUT = process.argv.includes('--json')
const REPO = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const MiB = 1024 * 1024
const MB = 1e6

function numberFromEnv(name: string, fallback: number, integer = false): number {
  const text = process.env[name]
  if (text === undefined || text === '') return fallback
  const value = Number(text)
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new Error(`${name}=${text}: expected a positive ${integer ? 'integer' : 'number'}`)
  }
  return value
}

const IMAGES = numberFromEnv('BENCH_IMAGES', 8, true)
const BASE_MB = numberFromEnv('BENCH_BASE_MB', 400)
const UNIQUE_MB = numberFromEnv('BENCH_UNIQUE_MB', 16)
const ROUNDS = numberFromEnv('BENCH_ROUNDS', 2, true)
const REG_BIN = path.resolve(process.env.BENCH_REG ?? path.join(REPO, 'bin', 'run.js'))
const KEEP = process.env.BENCH_KEEP === '1'
const PROFILE_DIR = process.env.BENCH_PROFILE ? path.resolve(process.env.BENCH_PROFILE) : undefined
const NODE_FLAGS = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []
const GOALS = {timeRatio: 0.5, throughputRatio: 0.8, peakRssBytes: 250 * MB}

/** Progress and the table: stdout, or stderr when stdout carries the JSON. */
function say(line = ''): void {
  ;(JSON_OUT ? process.stderr : process.stdout).write(line + '\n')
}

/** Read files to /dev/null-equivalent so they sit in the page cache. */
async function warm(files: string[]): Promise<void> {
  for (const file of files) {
    await new Promise<void>((resolve, reject) => {
      createReadStream(file, {highWaterMark: MiB}).on('data', () => undefined).once('end', resolve).once('error', reject)
    })
  }
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256')
  await new Promise<void>((resolve, reject) => {
    createReadStream(file, {highWaterMark: MiB}).on('data', (c) => hash.update(c)).once('end', resolve).once('error', reject)
  })
  return 'sha256:' + hash.digest('hex')
}

interface Inventory {
  files: number
  /** distinct inodes (hardlinks counted once) */
  inodes: number
  /** apparent bytes of distinct inodes */
  bytes: number
  /** allocated bytes of distinct inodes (st_blocks × 512) */
  allocatedBytes: number
  /** bytes of distinct inodes whose content is one of the layout's blobs, each blob counted once */
  imageBytes: number
  /** layout blobs found */
  imageBlobs: number
  /** layout blobs stored in more than one inode (wasted copies), with the bytes they waste */
  duplicates: Array<{digest: string; copies: number}>
  duplicateBytes: number
  /** inodes that are not layout blobs: generated documents, indexes */
  other: Array<{file: string; bytes: number}>
}

/** What `dir` holds on disk, hardlinks counted once; every distinct inode is hashed to tell blobs from the rest. */
async function inventory(dir: string, blobs: ReadonlyMap<string, number>): Promise<Inventory> {
  const result: Inventory = {files: 0, inodes: 0, bytes: 0, allocatedBytes: 0, imageBytes: 0, imageBlobs: 0, duplicates: [], duplicateBytes: 0, other: []}
  const seenInodes = new Set<string>()
  const copies = new Map<string, number>()
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, {withFileTypes: true})) {
      const full = path.join(d, entry.name)
      if (entry.isDirectory()) {
        await walk(full)
        continue
      }
      if (!entry.isFile()) continue
      result.files++
      const info = await lstat(full, {bigint: true})
      const key = `${info.dev}:${info.ino}`
      if (seenInodes.has(key)) continue
      seenInodes.add(key)
      const size = Number(info.size)
      result.inodes++
      result.bytes += size
      result.allocatedBytes += Number(info.blocks) * 512
      const digest = await hashFile(full)
      if (blobs.get(digest) === size) {
        const n = (copies.get(digest) ?? 0) + 1
        copies.set(digest, n)
        if (n === 1) {
          result.imageBytes += size
          result.imageBlobs++
        } else result.duplicateBytes += size
      } else result.other.push({file: path.relative(dir, full), bytes: size})
    }
  }
  await walk(dir)
  result.duplicates = [...copies].filter(([, n]) => n > 1).map(([digest, n]) => ({digest, copies: n}))
  return result
}

/** The seed-era baseline: skopeo copy each image to dir:, then hardlink identical blobs (same digest name). */
async function baseline(layout: string, refs: string[], out: string, work: string) {
  await mkdir(out, {recursive: true})
  const start = performance.now()
  let skopeoPeakRss = 0
  for (const [i, ref] of refs.entries()) {
    const copy = await run('skopeo', ['copy', '--quiet', `oci:${layout}:${ref}`, `dir:${path.join(out, `img-${i}`)}`], {rss: true, work})
    skopeoPeakRss = Math.max(skopeoPeakRss, copy.peakRssBytes ?? 0)
  }
  const copied = performance.now()
  const first = new Map<string, string>()
  let linked = 0
  for (const i of refs.keys()) {
    const dir = path.join(out, `img-${i}`)
    for (const name of (await readdir(dir)).sort()) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue
      const file = path.join(dir, name)
      const original = first.get(name)
      if (!original) first.set(name, file)
      else {
        await unlink(file)
        await link(original, file)
        linked++
      }
    }
  }
  const end = performance.now()
  return {seconds: (end - start) / 1000, copySeconds: (copied - start) / 1000, linkSeconds: (end - copied) / 1000, linked, skopeoPeakRss}
}

/** what `reg build --json` prints */
type RegSummary = Pick<BuildSummary, 'images' | 'repositories' | 'tags' | 'blobs' | 'bytesStored' | 'bytesSavedByDedup' | 'bytesCopied'>

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`
const sync = () => run('sync', [])

// ---------------------------------------------------------------------------------------------

if (!existsSync(REG_BIN)) throw new Error(`${REG_BIN} not found (set BENCH_REG to reg's bin/run.js)`)
for (const tool of ['skopeo', 'sha256sum', 'sync']) {
  await run(tool, ['--version']).catch((error: Error) => {
    throw new Error(`${tool} is needed by this benchmark (${error.message.split('\n')[0]}); on Debian: apt-get install -y ${tool === 'skopeo' ? 'skopeo' : 'coreutils'}`)
  })
}
await run(process.execPath, [REG_BIN, 'build', '--help']).catch((error: Error) => {
  throw new Error(`reg does not run (${error.message.split('\n')[0]}); build it first: npm run build`)
})

const tmpRoot = process.env.BENCH_TMPDIR ?? os.tmpdir()
const work = await mkdtemp(path.join(tmpRoot, 'reg-build-bench-'))
let cleaned = false
const cleanup = async () => {
  if (cleaned) return
  cleaned = true
  if (KEEP) say(`kept ${work}`)
  else await rm(work, {recursive: true, force: true})
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanup().finally(() => process.exit(130)))
}

try {
  const layoutDir = path.join(work, 'layout')
  say(`generating ${IMAGES} images in ${layoutDir}: a ${BASE_MB} MiB shared base layer + a ${UNIQUE_MB} MiB layer each ...`)
  const genStart = performance.now()
  const layout = await makeLayout(layoutDir, {images: IMAGES, baseMb: BASE_MB, uniqueMb: UNIQUE_MB, ref: (i) => `img-${i}`})
  say(`  ${layout.blobFiles.length} blobs, ${mib(layout.uniqueBytes)} unique, ${mib(layout.logicalBytes)} logical, in ${((performance.now() - genStart) / 1000).toFixed(1)} s`)
  if (layout.logicalBytes < 500 * MB) say(`  note: logical bytes below the 500 MB the requirement asks for (a quick run)`)
  const tinyLayoutDir = path.join(work, 'tiny-layout')
  await makeLayout(tinyLayoutDir, {images: 1, baseMb: 4 / 1024, uniqueMb: 4 / 1024, ref: () => 'tiny'})
  const index = JSON.parse(await readFile(path.join(layoutDir, 'index.json'), 'utf8')) as {manifests: Array<{digest: string; size: number}>}
  const manifestBytes = index.manifests.reduce((sum, m) => sum + m.size, 0)
  const fs = await statfs(work)
  const needed = layout.logicalBytes + 2 * layout.uniqueBytes
  if (fs.bavail * fs.bsize < needed) say(`  warning: ${mib(fs.bavail * fs.bsize)} free in ${work}, the baseline alone needs about ${mib(layout.logicalBytes)}`)

  const shaSeconds: number[] = []
  const opensslSeconds: number[] = []
  const HAVE_OPENSSL = await run('openssl', ['version']).then(() => true, () => false)
  let rebuild: {seconds: number; bytesCopied: number} | undefined
  const baselineRuns: Array<Awaited<ReturnType<typeof baseline>>> = []
  const regRuns: Run[] = []
  const fixedSeconds: number[] = []
  let summary: RegSummary | undefined
  let baselineDisk: Inventory | undefined
  let treeDisk: Inventory | undefined
  const orders: string[] = []

  const runBaseline = async (round: number) => {
    const out = path.join(work, `baseline-${round}`)
    await sync()
    await warm(layout.blobFiles)
    const result = await baseline(layoutDir, layout.refs, out, work)
    baselineRuns.push(result)
    say(`  baseline  ${result.seconds.toFixed(2)} s (skopeo copies ${result.copySeconds.toFixed(2)} s, hardlink pass ${result.linkSeconds.toFixed(2)} s, ${result.linked} files linked)`)
    baselineDisk ??= await inventory(out, layout.blobs)
    await rm(out, {recursive: true, force: true})
  }
  const runReg = async (round: number) => {
    const tree = path.join(work, `tree-${round}`)
    await sync()
    await warm(layout.blobFiles)
    const result = await run(process.execPath, [...NODE_FLAGS, REG_BIN, 'build', `oci:${layoutDir}=bench/app`, '-o', tree, '--json'], {rss: true, work})
    regRuns.push(result)
    try {
      summary = JSON.parse(result.stdout) as RegSummary
    } catch {
      throw new Error(`reg build --json printed no JSON on stdout:\n${result.stdout.slice(0, 2000)}`)
    }
    say(`  reg build ${result.seconds.toFixed(2)} s, peak RSS ${((result.peakRssBytes ?? 0) / MB).toFixed(1)} MB`)
    if (result.stderr.trim()) say(`  reg build stderr: ${result.stderr.trim().split('\n').slice(0, 5).join(' | ')}`)
    if (!treeDisk) {
      treeDisk = await inventory(tree, layout.blobs)
      // Once, not a goal: the same build again into the existing tree (nothing new to copy).
      await sync()
      const again = await run(process.execPath, [REG_BIN, 'build', `oci:${layoutDir}=bench/app`, '-o', tree, '--json'], {work})
      rebuild = {seconds: again.seconds, bytesCopied: (JSON.parse(again.stdout) as RegSummary).bytesCopied}
      say(`  reg build again into the same tree (no change): ${again.seconds.toFixed(2)} s, bytesCopied ${rebuild.bytesCopied}`)
    }
    await rm(tree, {recursive: true, force: true})
    // reg's fixed cost, right after: the same command on a layout of a few KiB.
    const tinyTree = path.join(work, `tiny-tree-${round}`)
    await sync()
    const tiny = await run(process.execPath, [REG_BIN, 'build', `oci:${tinyLayoutDir}=bench/tiny`, '-o', tinyTree, '--json'], {work})
    fixedSeconds.push(tiny.seconds)
    say(`  reg build of a few KiB (fixed cost) ${tiny.seconds.toFixed(2)} s`)
    await rm(tinyTree, {recursive: true, force: true})
  }

  for (let round = 0; round < ROUNDS; round++) {
    const regFirst = round % 2 === 1
    orders.push(regFirst ? 'reg, baseline' : 'baseline, reg')
    say(`round ${round + 1}/${ROUNDS} (sha256sum, then ${orders.at(-1)}; sync and page cache warmed before each):`)
    await sync()
    await warm(layout.blobFiles)
    const sha = await run('sha256sum', layout.blobFiles)
    const wrong = sha.stdout.trim().split('\n').filter((line) => {
      const [hex, file] = line.split(/\s+\*?/)
      return path.basename(file) !== hex
    })
    if (wrong.length > 0) throw new Error(`sha256sum disagrees with the generator: ${wrong.join('; ')}`)
    shaSeconds.push(sha.seconds)
    say(`  sha256sum ${sha.seconds.toFixed(2)} s`)
    if (HAVE_OPENSSL) {
      const ossl = await run('openssl', ['dgst', '-sha256', ...layout.blobFiles])
      opensslSeconds.push(ossl.seconds)
      say(`  openssl dgst -sha256 ${ossl.seconds.toFixed(2)} s (reference only)`)
    }
    if (regFirst) {
      await runReg(round)
      await runBaseline(round)
    } else {
      await runBaseline(round)
      await runReg(round)
    }
  }
  if (!summary || !treeDisk || !baselineDisk) throw new Error('no run completed')

  // Figures: medians over the rounds; peak RSS is the largest seen.
  const regSeconds = median(regRuns.map((r) => r.seconds))
  const baselineSeconds = median(baselineRuns.map((r) => r.seconds))
  const shaMedian = median(shaSeconds)
  const shaMBs = layout.uniqueBytes / MB / shaMedian
  const regMBs = layout.uniqueBytes / MB / regSeconds
  const peakRss = Math.max(...regRuns.map((r) => r.peakRssBytes ?? 0))
  const allBlobsOnce = treeDisk.imageBlobs === layout.blobs.size && treeDisk.duplicates.length === 0
  const otherBytes = treeDisk.other.reduce((sum, o) => sum + o.bytes, 0)

  // Sanity of reg's own account (not goals, but wrong numbers are worth a line).
  const notes: string[] = []
  const expectedCopied = layout.uniqueBytes - manifestBytes
  if (summary.images.length !== IMAGES) notes.push(`reg reported ${summary.images.length} images, expected ${IMAGES}`)
  const tags = summary.images.map((i) => `${i.name}:${i.tag}`).sort()
  const wantTags = layout.refs.map((r) => `bench/app:${r}`).sort()
  if (JSON.stringify(tags) !== JSON.stringify(wantTags)) notes.push(`reg published ${tags.join(', ')}; expected ${wantTags.join(', ')}`)
  if (summary.bytesCopied !== expectedCopied) notes.push(`reg's bytesCopied ${summary.bytesCopied} ≠ unique layer + config bytes ${expectedCopied}`)
  if (summary.bytesStored !== layout.uniqueBytes) notes.push(`reg's bytesStored ${summary.bytesStored} ≠ unique blob bytes ${layout.uniqueBytes}`)
  if (summary.blobs !== layout.blobs.size - index.manifests.length) notes.push(`reg's blobs ${summary.blobs} ≠ ${layout.blobs.size - index.manifests.length} layers and configs`)
  if (treeDisk.duplicates.length > 0) notes.push(`tree stores ${treeDisk.duplicates.length} blobs more than once (${treeDisk.duplicateBytes} bytes wasted)`)
  if (treeDisk.imageBlobs !== layout.blobs.size) notes.push(`tree holds ${treeDisk.imageBlobs} of the layout's ${layout.blobs.size} blobs`)

  const goals = [
    {
      figure: 'wall time, reg build / baseline',
      value: `${regSeconds.toFixed(2)} s / ${baselineSeconds.toFixed(2)} s = ${(regSeconds / baselineSeconds).toFixed(3)}×`,
      goal: `≤ ${GOALS.timeRatio}×`,
      pass: regSeconds / baselineSeconds <= GOALS.timeRatio,
    },
    {
      figure: 'throughput, reg vs sha256sum',
      value: `${regMBs.toFixed(0)} MB/s vs ${shaMBs.toFixed(0)} MB/s = ${(regMBs / shaMBs).toFixed(3)}×`,
      goal: `≥ ${GOALS.throughputRatio}×`,
      pass: regMBs / shaMBs >= GOALS.throughputRatio,
    },
    {
      figure: 'image bytes on disk (tree) vs unique bytes',
      value: `${treeDisk.imageBytes + treeDisk.duplicateBytes} vs ${layout.uniqueBytes} (+${otherBytes} B of tree metadata)`,
      goal: 'equal',
      pass: allBlobsOnce && treeDisk.imageBytes === layout.uniqueBytes,
    },
    {
      figure: 'peak RSS of reg build',
      value: `${(peakRss / MB).toFixed(1)} MB`,
      goal: `< ${GOALS.peakRssBytes / MB} MB`,
      pass: peakRss < GOALS.peakRssBytes,
    },
  ]

  say()
  say(`${IMAGES} images, ${layout.blobFiles.length} blobs: ${layout.logicalBytes} logical bytes (${mib(layout.logicalBytes)}), ${layout.uniqueBytes} unique (${mib(layout.uniqueBytes)})`)
  say(`${ROUNDS} round(s), order alternating (${orders.join(' | ')}); before each contender: sync, then every layout blob read so the page cache is warm; figures are medians`)
  say(`baseline: skopeo copy to dir: ×${IMAGES} + hardlink pass; leaves ${baselineDisk.bytes} bytes in ${baselineDisk.inodes} inodes; skopeo peak RSS ${(Math.max(...baselineRuns.map((b) => b.skopeoPeakRss)) / MB).toFixed(1)} MB`)
  say(`reg: ${summary.repositories} repositories, ${summary.tags} tags, ${summary.blobs} blobs, bytesStored ${summary.bytesStored}, bytesCopied ${summary.bytesCopied}, bytesSavedByDedup ${summary.bytesSavedByDedup}`)
  say(`tree: ${treeDisk.files} files, ${treeDisk.inodes} inodes, ${treeDisk.bytes} bytes (${treeDisk.allocatedBytes} allocated); besides the blobs: ${treeDisk.other.map((o) => `${o.file} ${o.bytes} B`).join(', ') || 'nothing'}`)
  if (opensslSeconds.length > 0) {
    const osslMBs = layout.uniqueBytes / MB / median(opensslSeconds)
    say(`reference: openssl dgst -sha256 (the SHA-256 code node uses) ${osslMBs.toFixed(0)} MB/s; reg reaches ${(regMBs / osslMBs).toFixed(3)}× of it`)
  }
  const fixed = median(fixedSeconds)
  if (fixed < regSeconds) {
    const netMBs = layout.uniqueBytes / MB / (regSeconds - fixed)
    const versus = opensslSeconds.length > 0 ? `, ${(netMBs / (layout.uniqueBytes / MB / median(opensslSeconds))).toFixed(3)}× of openssl` : ''
    say(`reg's fixed cost (a build of a few KiB): ${fixed.toFixed(2)} s; net of it, reg copies at ${netMBs.toFixed(0)} MB/s${versus} (not a goal: where the time goes)`)
  }
  if (rebuild) say(`no-change rebuild into the existing tree: ${rebuild.seconds.toFixed(2)} s, bytesCopied ${rebuild.bytesCopied}`)
  say(`peak RSS measured with ${regRuns[0].rssMethod}; MB = 10^6 bytes, MiB = 2^20`)
  say()
  const widths = [44, 58, 8]
  say(`${'figure'.padEnd(widths[0])} ${'measured'.padEnd(widths[1])} ${'goal'.padEnd(widths[2])} result`)
  say('-'.repeat(widths[0] + widths[1] + widths[2] + 10))
  for (const g of goals) say(`${g.figure.padEnd(widths[0])} ${g.value.padEnd(widths[1])} ${g.goal.padEnd(widths[2])} ${g.pass ? 'PASS' : 'MISS'}`)
  for (const note of notes) say(`note: ${note}`)

  if (JSON_OUT) {
    process.stdout.write(JSON.stringify({
      config: {images: IMAGES, baseMiB: BASE_MB, uniqueMiB: UNIQUE_MB, rounds: ROUNDS, orders, cache: 'sync + page cache warmed before each contender', reg: REG_BIN},
      bytes: {logical: layout.logicalBytes, unique: layout.uniqueBytes, blobs: layout.blobs.size},
      sha256sum: {seconds: shaSeconds, medianSeconds: shaMedian, mbPerSecond: shaMBs},
      openssl: opensslSeconds.length > 0 ? {seconds: opensslSeconds, mbPerSecond: layout.uniqueBytes / MB / median(opensslSeconds)} : undefined,
      rebuild,
      baseline: {runs: baselineRuns, medianSeconds: baselineSeconds, disk: baselineDisk},
      reg: {runs: regRuns.map((r) => ({seconds: r.seconds, peakRssBytes: r.peakRssBytes})), medianSeconds: regSeconds, fixedCostSeconds: fixedSeconds, mbPerSecond: regMBs, peakRssBytes: peakRss, rssMethod: regRuns[0].rssMethod, summary: {...summary, images: summary.images.length}, disk: treeDisk},
      goals, notes,
    }, null, 2) + '\n')
  }
} finally {
  await cleanup()
}
