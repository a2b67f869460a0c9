// reg verify against Cloudflare's own local runtime: the generated Worker over the R2 bucket a deploy
// filled (`wrangler dev`), and a Pages deployment as the Pages API received it (`wrangler pages
// dev`). Every tag and digest of the tree is live with the tree's bytes and no client's rule fails;
// the warnings seen are asserted, each with the reason it is one.
import assert from 'node:assert/strict'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import nock from 'nock'
import type {VerifyReport} from '../src/verify/verify.js'
import {buildCoreFixtures, type CoreFixtures} from './fixtures.js'
import {requireTool} from './static-hosts.js'
import {removeTempDirs, runReg, tempDir} from './support.js'
import {deployThroughR2, fakePagesApi, PAGES_ACCOUNT, PAGES_PROJECT, PAGES_TOKEN, type RunningWrangler, startUploadedWorker, startWrangler, writePagesDeployment} from './wrangler.js'

/** `reg verify URL --tree DIR --all --json`: the report, with what every --tree run must show; only the clients `failing` fail. */
async function verifyAll(url: string, fixtures: CoreFixtures, failing: string[] = []): Promise<VerifyReport> {
  const result = await runReg(['verify', url, '--tree', fixtures.tree, '--all', '--json'])
  const report = JSON.parse(result.stdout) as VerifyReport
  if (failing.length === 0) assert.deepEqual(report.findings.filter((f) => f.severity === 'fail'), [], 'no finding fails a client')
  assert.deepEqual(report.failing, failing)
  assert.equal(result.code, failing.length === 0 ? 0 : 1, result.stderr)
  for (const client of report.clients) assert.equal(report.verdicts[client].verdict === 'fail', failing.includes(client), client)
  assert.deepEqual(report.tree, {missing: [], stale: []})
  assert.equal(report.coverage.tags, fixtures.images.length)
  assert.equal(report.coverage.blobsStreamed, report.coverage.blobs, '--all hashes every blob')
  assert.deepEqual(report.rules.filter((r) => !r.checked).map((r) => r.id), [], 'every rule was checked')
  return report
}

const warnings = (report: VerifyReport) => [...new Set(report.findings.filter((f) => f.severity === 'warn').map((f) => f.rule))].sort()

describe('reg verify against the Cloudflare local servers', () => {
  let work: string
  let fixtures: CoreFixtures

  before(async () => {
    requireTool('skopeo')
    work = await tempDir()
    fixtures = await buildCoreFixtures(work)
  })
  after(() => removeTempDirs())

  it('the Worker (wrangler dev over the R2 bucket the deploy filled): every client passes, no warning', async (t) => {
    const persist = path.join(work, 'r2-state')
    const [uploaded] = await deployThroughR2(work, persist, [{tree: fixtures.tree, args: []}])
    const worker: RunningWrangler = await startUploadedWorker(path.join(work, 'worker'), persist, uploaded)
    try {
      const report = await verifyAll(worker.url, fixtures)
      t.diagnostic(`worker: ${report.coverage.requests} requests; warnings: ${report.findings.map((f) => `${f.rule} (${f.seen})`).join('; ') || 'none'}`)
      assert.deepEqual(warnings(report), [])
      assert.deepEqual(worker.problems(), [], worker.output())
    } finally {
      await worker.stop()
    }
  })

  // Pages' asset server (wrangler pages dev) sends every file chunked, without Content-Length, and no
  // _headers rule can give one. oras refuses a manifest of unknown length (oras-go
  // registry/remote/repository.go: "unknown response Content-Length"): verify's rule stands (the client
  // wins; oras is not installed here to run). skopeo, podman and ctr pull every fixture through the
  // same layout (test/deploy-cloudflare-pages.test.ts), and verify passes them, as every other client.
  it('Pages (wrangler pages dev over the deployment): every client but oras passes; oras fails on tags GET without Content-Length only', async (t) => {
    nock.disableNetConnect()
    nock.enableNetConnect('127.0.0.1')
    const api = fakePagesApi()
    try {
      const result = await runReg(['deploy', fixtures.tree, '--backend', 'cloudflare-pages', '--project', PAGES_PROJECT, '--account-id', PAGES_ACCOUNT], {env: {CLOUDFLARE_API_TOKEN: PAGES_TOKEN}})
      assert.equal(result.code, 0, result.stderr)
    } finally {
      nock.cleanAll()
      nock.enableNetConnect()
    }
    const out = path.join(work, 'pages-output')
    await writePagesDeployment(api, api.deployments[0], out)
    const pages = await startWrangler(['pages', 'dev', out, '--compatibility-date', '2025-01-01', '--persist-to', path.join(work, 'pages-state')], work)
    try {
      const report = await verifyAll(pages.url, fixtures, ['oras'])
      const failed = report.findings.filter((f) => f.severity === 'fail')
      assert.deepEqual([...new Set(failed.map((f) => f.rule))], ['get-content-length'])
      for (const finding of failed) {
        assert.equal(finding.method, 'GET')
        assert.equal(finding.seen, 'no Content-Length')
        assert.match(finding.url, /\/manifests\/[^/:]+$/, 'a tag')
      }
      assert.ok(failed.length > 0 && failed.length <= fixtures.images.length)
      t.diagnostic(`pages: GET without Content-Length for ${failed.length} of ${fixtures.images.length} tags: ${failed.map((f) => new URL(f.url).pathname).join(', ')}`)
      const warned = report.findings.filter((f) => f.severity === 'warn')
      t.diagnostic(`pages: ${report.coverage.requests} requests; warnings: ${warned.map((f) => `${f.rule} (${new URL(f.url).pathname}: ${f.seen})`).join('; ') || 'none'}`)
      // Warnings, each by design of Pages: HEAD without a length (its asset server again), no Range
      // (a whole 200), and a tag's final answer is its manifest's content-addressed URL, immutable
      // (the 302 that leads there carries the tags' max-age).
      assert.deepEqual(warnings(report), ['cache-headers', 'head-content-length', 'range'])
      for (const finding of report.findings.filter((f) => f.rule === 'cache-headers')) assert.ok(finding.redirects?.length, `${finding.url}: reached through a redirect`)
      assert.deepEqual(pages.problems(), [], pages.output())
    } finally {
      await pages.stop()
    }
  })
})
