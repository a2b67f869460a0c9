// `npm run bench:plan`: planning a deploy against a host that already holds 1,000,000 objects (issue 15).
//
// Builds the many-tags tree (bench/many-tags.ts; default here 100,000 tags / 1,000 repositories /
// 20,000 manifests), then serves a simulated S3 bucket that lists BENCH_LISTING (1,000,000) objects:
// every object of the tree, as a previous deploy left it (same size, the MD5 ETag S3 gives a single-part
// upload), and stale objects of other repositories up to the count. The listing is generated page by
// page as S3 does (ListObjectsV2, 1,000 keys a page, continuation tokens), so the server holds nothing.
// Then `reg deploy TREE --backend s3 --prune --dry-run` against it, wall time and peak RSS: the whole
// path of a real deploy's planning (the SDK's paginated listing and XML parsing, the diff, the prune
// list), without sending anything. Goal: ≤ 30 s and ≤ 1 GB.
//
// Knobs: the generator's (BENCH_TAGS ...), BENCH_LISTING, BENCH_REG, BENCH_TMPDIR, BENCH_KEEP=1,
// BENCH_LAYOUT (as bench:tags), `--json`; BENCH_PROFILE=DIR runs the deploy under `node --cpu-prof
// --cpu-prof-dir=DIR` (summarise with bench/profile-summary.ts).
import {createHash} from 'node:crypto'
import {readFile, mkdtemp, rm} from 'node:fs/promises'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {RegistryTree} from '../src/tree/registry-tree.js'
import {makeManyTagsLayout, type ManyTagsLayout, optionsFromEnv} from './many-tags.js'
import {run} from './measure.js'

const REPO = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const REG_BIN = path.resolve(process.env.BENCH_REG ?? path.join(REPO, 'bin', 'run.js'))
const JSON_OUT = process.argv.includes('--json')
const LISTING = Number(process.env.BENCH_LISTING ?? 1_000_000)
const PAGE = 1000
const MB = 1e6
const GOALS = {seconds: 30, peakRssBytes: 1000 * MB}
const PROFILE_DIR = process.env.BENCH_PROFILE ? path.resolve(process.env.BENCH_PROFILE) : undefined

function say(line = ''): void {
  ;(JSON_OUT ? process.stderr : process.stdout).write(line + '\n')
}

interface Listed {
  key: string
  size: number
  etag: string
}

/** The bucket's keys in S3's order (UTF-8 binary order: for these ASCII keys, code unit order). */
async function listingOf(tree: RegistryTree, total: number): Promise<Listed[]> {
  const listed: Listed[] = []
  for (const object of tree.objects) {
    // A mutable object's ETag is compared with the MD5 of the tree's file; the rest by key and size.
    const etag = object.class === 'blob' || object.class === 'digest-manifest'
      ? '0'.repeat(32)
      : createHash('md5').update(await readFile(tree.fileOf(object))).digest('hex')
    listed.push({key: object.path, size: object.size, etag})
  }
  for (let i = 0; listed.length < total; i++) {
    listed.push({key: `v2/stale/r${i % 5000}/manifests/t${i}`, size: 500 + (i % 100), etag: createHash('md5').update(String(i)).digest('hex')})
  }
  return listed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
}

const xmlEscape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/**
 * ListObjectsV2 over `listed`, 1,000 keys a page; anything else is 404 NoSuchKey (no state object yet).
 * The pages of `v2/` are rendered before the deploy starts: a real bucket does not use this machine's
 * CPU, so the server's own work must not count in reg's time.
 */
function simulatedBucket(listed: Listed[]): http.Server {
  const rendered = new Map<string, Buffer>()
  const render = (prefix: string, token: string | null): Buffer => {
    const cacheKey = `${prefix}\n${token ?? ''}`
    let body = rendered.get(cacheKey)
    if (!body) {
      body = Buffer.from(renderPage(listed, prefix, token))
      rendered.set(cacheKey, body)
    }
    return body
  }
  for (let token: string | null = null, first = true; first || token !== null; first = false) {
    const body = render('v2/', token).toString()
    token = /<NextContinuationToken>(\d+)<\/NextContinuationToken>/.exec(body)?.[1] ?? null
  }
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://bucket')
    if (req.method !== 'GET' || url.searchParams.get('list-type') !== '2') {
      res.writeHead(404, {'content-type': 'application/xml'}).end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>none</Message></Error>')
      return
    }
    res.writeHead(200, {'content-type': 'application/xml'})
    res.end(render(url.searchParams.get('prefix') ?? '', url.searchParams.get('continuation-token')))
  })
}

function renderPage(listed: Listed[], prefix: string, token: string | null): string {
  let start = Number(token ?? 0)
  if (token === null) {
    start = listed.findIndex((item) => item.key.startsWith(prefix))
    if (start < 0) start = listed.length
  }
  const page: Listed[] = []
  let i = start
  for (; i < listed.length && page.length < PAGE && listed[i].key.startsWith(prefix); i++) page.push(listed[i])
  const more = i < listed.length && listed[i].key.startsWith(prefix)
  const contents = page.map((item) => `<Contents><Key>${xmlEscape(item.key)}</Key><LastModified>2026-11-01T00:00:00.000Z</LastModified><ETag>&quot;${item.etag}&quot;</ETag><Size>${item.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`).join('')
  return `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bench</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${page.length}</KeyCount><MaxKeys>${PAGE}</MaxKeys><IsTruncated>${more}</IsTruncated>${contents}${more ? `<NextContinuationToken>${i}</NextContinuationToken>` : ''}</ListBucketResult>`
}

const options = optionsFromEnv()
const work = await mkdtemp(path.join(process.env.BENCH_TMPDIR ?? os.tmpdir(), 'reg-plan-bench-'))
const server = simulatedBucket([])
try {
  let layout: ManyTagsLayout
  if (process.env.BENCH_LAYOUT) {
    layout = JSON.parse(await readFile(process.env.BENCH_LAYOUT, 'utf8')) as ManyTagsLayout
  } else {
    say(`generating ${options.tags} tags / ${options.repositories} repositories / ${options.manifests} manifests ...`)
    layout = await makeManyTagsLayout(path.join(work, 'layout'), options)
  }
  const treeDir = path.join(work, 'tree')
  say('reg build ...')
  const build = await run(process.execPath, [REG_BIN, 'build', ...layout.sources, '-o', treeDir], {work})
  if (build.stderr.trim()) say(build.stderr.trim())
  const tree = await RegistryTree.load(treeDir)
  say(`simulating a bucket of ${LISTING.toLocaleString('en')} objects (${tree.objects.length.toLocaleString('en')} of them the tree's) ...`)
  const listed = await listingOf(tree, LISTING)
  const bucket = simulatedBucket(listed)
  await new Promise<void>((resolve) => bucket.listen(0, '127.0.0.1', resolve))
  const port = (bucket.address() as AddressInfo).port
  const env = {...process.env, AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench'}
  say('reg deploy --backend s3 --prune --dry-run ...')
  const deploy = await run(process.execPath, [...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []), REG_BIN, 'deploy', treeDir, '--backend', 's3', '--bucket', 'bench', '--endpoint', `http://127.0.0.1:${port}`, '--force-path-style', '--region', 'us-east-1', '--prune', '--dry-run', '--json'], {rss: true, work, env})
  bucket.close()
  if (deploy.stderr.trim()) say(deploy.stderr.trim().split('\n').slice(-5).join('\n'))
  const report = JSON.parse(deploy.stdout) as Record<string, unknown>
  const figures = {
    listedObjects: LISTING,
    treeObjects: tree.objects.length,
    seconds: deploy.seconds,
    peakRssBytes: deploy.peakRssBytes ?? 0,
    report,
  }
  say()
  say('| figure | measured | goal |')
  say('|---|---|---|')
  say(`| plan against ${LISTING.toLocaleString('en')} listed objects: wall time | ${figures.seconds.toFixed(1)} s | ≤ ${GOALS.seconds} s |`)
  say(`| peak RSS | ${(figures.peakRssBytes / MB).toFixed(0)} MB | ≤ ${GOALS.peakRssBytes / MB} MB |`)
  // The plan must be right, not only fast: the tree's objects unchanged, nothing sent, every stale one pruned.
  const plan = report.plan as {uploads: number; copies: number; deletes: number; unchanged: number}
  const right = plan.uploads === 0 && plan.copies === 0 && plan.unchanged === tree.objects.length && plan.deletes === LISTING - tree.objects.length
  say(`| plan: unchanged / sent / pruned | ${plan.unchanged} / ${plan.uploads + plan.copies} / ${plan.deletes} | ${tree.objects.length} / 0 / ${LISTING - tree.objects.length} ${right ? '(right)' : '(WRONG)'} |`)
  if (!right) process.exitCode = 1
  if (JSON_OUT) process.stdout.write(JSON.stringify(figures, null, 2) + '\n')
} finally {
  server.close()
  if (process.env.BENCH_KEEP !== '1') await rm(work, {recursive: true, force: true})
  else say(`kept ${work}`)
}
