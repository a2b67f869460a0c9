// `npm run bench:tags`: `reg build` of a registry's metadata at scale (issue 15).
//
// Generates the many-tags layout (bench/many-tags.ts: BENCH_TAGS 100,000 tags over 1,000
// repositories naming 20,000 image manifests, split into layouts under index.json's bound), then:
//   - `reg build` of all of it into a new tree: wall time and peak RSS;
//   - the same build again into that tree (nothing changed): wall time and peak RSS;
//   - registry.json's bytes, per object of the tree's URL space;
//   - `reg deploy TREE --backend nginx --dest OUT` of the tree: wall time and peak RSS;
//   - the same deploy again, nothing changed (no goal: a reference);
//   - `reg ls TREE`: loading the tree and listing its tags (no goal: a reference).
// Prints them against the goals, and `--json` prints the figures as JSON (the table on stderr).
//
// Knobs: the generator's (BENCH_TAGS, BENCH_REPOSITORIES, BENCH_MANIFESTS, ...; BENCH_TAGS=10000
// BENCH_REPOSITORIES=100 BENCH_MANIFESTS=2000 is a quick run), BENCH_REG (another bin/run.js),
// BENCH_TMPDIR, BENCH_KEEP=1 (keep the layout and tree), BENCH_LAYOUT (an existing layout made by
// bench/many-tags.ts with the same knobs: its JSON output file, to skip the generation).
import {mkdtemp, readFile, rm, stat} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {RegistryTree} from '../src/tree/registry-tree.js'
import {run} from './measure.js'
import {makeManyTagsLayout, type ManyTagsLayout, optionsFromEnv} from './many-tags.js'

const REPO = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const REG_BIN = path.resolve(process.env.BENCH_REG ?? path.join(REPO, 'bin', 'run.js'))
const JSON_OUT = process.argv.includes('--json')
const KEEP = process.env.BENCH_KEEP === '1'
const MB = 1e6
/** the goals of issue 15, stated for 100,000 tags: time scaled linearly for other sizes */
const GOALS = {buildSecondsPer100k: 20, peakRssBytes: 300 * MB, rebuildSeconds: 3, registryBytesPerObject: 300, deploySeconds: 5}

function say(line = ''): void {
  ;(JSON_OUT ? process.stderr : process.stdout).write(line + '\n')
}

/** Run reg to completion: wall time, output and peak RSS (bench/measure.ts). */
async function reg(args: string[], work: string): Promise<{seconds: number; peakRssBytes: number; stdout: string}> {
  const result = await run(process.execPath, [REG_BIN, ...args], {rss: true, work})
  return {seconds: result.seconds, peakRssBytes: result.peakRssBytes ?? 0, stdout: result.stdout}
}

const options = optionsFromEnv()
const work = await mkdtemp(path.join(process.env.BENCH_TMPDIR ?? os.tmpdir(), 'reg-tags-bench-'))
try {
  let layout: ManyTagsLayout
  if (process.env.BENCH_LAYOUT) {
    layout = JSON.parse(await readFile(process.env.BENCH_LAYOUT, 'utf8')) as ManyTagsLayout
    say(`layout: ${layout.sources.length} layout(s) from ${process.env.BENCH_LAYOUT}`)
  } else {
    say(`generating ${options.tags} tags / ${options.repositories} repositories / ${options.manifests} manifests in ${work} ...`)
    const start = performance.now()
    layout = await makeManyTagsLayout(path.join(work, 'layout'), options)
    say(`  ${layout.sources.length} layout(s), ${layout.blobs} blobs, ${(layout.blobBytes / MB).toFixed(1)} MB, in ${((performance.now() - start) / 1000).toFixed(1)} s`)
  }
  const tree = path.join(work, 'tree')
  // Plain output, as a user runs it (--json would add a summary naming every image to what is measured).
  const args = ['build', ...layout.sources, '-o', tree]
  say('reg build ...')
  const build = await reg(args, work)
  const summary = build.stdout.trim().split('\n').at(-1)?.replace(/^.*?: /, '') ?? ''
  say(`  ${build.seconds.toFixed(2)} s, peak RSS ${(build.peakRssBytes / MB).toFixed(0)} MB (${summary})`)
  const registry = path.join(tree, 'registry.json')
  const registryBytes = (await stat(registry)).size
  // Counted as the tree is loaded (whatever registry.json's format): the objects a backend publishes.
  const objects = (await RegistryTree.load(tree)).objects.length
  say('reg build again, nothing changed ...')
  const rebuild = await reg(args, work)
  say(`  ${rebuild.seconds.toFixed(2)} s, peak RSS ${(rebuild.peakRssBytes / MB).toFixed(0)} MB`)
  say('reg deploy --backend nginx ...')
  const deployArgs = ['deploy', tree, '--backend', 'nginx', '--dest', path.join(work, 'nginx')]
  const deploy = await reg(deployArgs, work)
  say(`  ${deploy.seconds.toFixed(2)} s, peak RSS ${(deploy.peakRssBytes / MB).toFixed(0)} MB`)
  say('reg deploy --backend nginx again, nothing changed ...')
  const redeploy = await reg(deployArgs, work)
  say(`  ${redeploy.seconds.toFixed(2)} s, peak RSS ${(redeploy.peakRssBytes / MB).toFixed(0)} MB`)
  say('reg ls ...')
  const ls = await reg(['ls', tree], work)
  say(`  ${ls.seconds.toFixed(2)} s, peak RSS ${(ls.peakRssBytes / MB).toFixed(0)} MB`)

  const scale = options.tags / 100_000
  const rows = [
    {figure: `build, ${options.tags} tags`, measured: `${build.seconds.toFixed(2)} s`, goal: `≤ ${(GOALS.buildSecondsPer100k * scale).toFixed(1)} s`, pass: build.seconds <= GOALS.buildSecondsPer100k * scale},
    {figure: 'build, peak RSS', measured: `${(build.peakRssBytes / MB).toFixed(0)} MB`, goal: `≤ ${GOALS.peakRssBytes / MB} MB`, pass: build.peakRssBytes <= GOALS.peakRssBytes},
    {figure: 'no-change rebuild', measured: `${rebuild.seconds.toFixed(2)} s, ${(rebuild.peakRssBytes / MB).toFixed(0)} MB`, goal: `≤ ${GOALS.rebuildSeconds} s`, pass: rebuild.seconds <= GOALS.rebuildSeconds},
    {figure: 'deploy --backend nginx', measured: `${deploy.seconds.toFixed(2)} s, ${(deploy.peakRssBytes / MB).toFixed(0)} MB`, goal: `≤ ${(GOALS.deploySeconds * scale).toFixed(1)} s, ${GOALS.peakRssBytes / MB} MB`, pass: deploy.seconds <= GOALS.deploySeconds * scale && deploy.peakRssBytes <= GOALS.peakRssBytes},
    {figure: 'no-change deploy (reference)', measured: `${redeploy.seconds.toFixed(2)} s, ${(redeploy.peakRssBytes / MB).toFixed(0)} MB`, goal: '—', pass: undefined},
    {figure: 'reg ls (reference)', measured: `${ls.seconds.toFixed(2)} s, ${(ls.peakRssBytes / MB).toFixed(0)} MB`, goal: '—', pass: undefined},
    {figure: 'registry.json per object', measured: `${registryBytes} B / ${objects} = ${(registryBytes / objects).toFixed(0)} B`, goal: `≤ ${GOALS.registryBytesPerObject} B`, pass: registryBytes / objects <= GOALS.registryBytesPerObject},
  ]
  say()
  say(`${'figure'.padEnd(28)} ${'measured'.padEnd(40)} ${'goal'.padEnd(18)} result`)
  say('-'.repeat(96))
  for (const row of rows) say(`${row.figure.padEnd(28)} ${row.measured.padEnd(40)} ${row.goal.padEnd(18)} ${row.pass === undefined ? '' : row.pass ? 'PASS' : 'MISS'}`)
  if (JSON_OUT) {
    console.log(JSON.stringify({
      config: {...options, reg: REG_BIN, layouts: layout.sources.length},
      build: {seconds: build.seconds, peakRssBytes: build.peakRssBytes},
      rebuild: {seconds: rebuild.seconds, peakRssBytes: rebuild.peakRssBytes},
      deployNginx: {seconds: deploy.seconds, peakRssBytes: deploy.peakRssBytes},
      redeployNginx: {seconds: redeploy.seconds, peakRssBytes: redeploy.peakRssBytes},
      ls: {seconds: ls.seconds, peakRssBytes: ls.peakRssBytes},
      registryJson: {bytes: registryBytes, objects, bytesPerObject: registryBytes / objects},
      goals: GOALS,
    }, null, 1))
  }
} finally {
  if (KEEP) say(`kept ${work}`)
  else await rm(work, {recursive: true, force: true})
}
