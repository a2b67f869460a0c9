// reg verify against what reg's own backends serve: reg serve, nginx, Apache, s3rver (S3 through a
// host-style endpoint) and Netlify's rules (test/header-file-server.ts) pass for every client, with every tag and digest of the tree live and equal;
// reg deploy --verify (and verify: of a config target) runs it after a deploy; and a 1,000-tag
// registry is verified by a bounded sample (the time is printed, never asserted).
import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {makeManyTagsLayout} from '../bench/many-tags.js'
import type {VerifyReport} from '../src/verify/verify.js'
import {buildCoreFixtures, type CoreFixtures} from './fixtures.js'
import {startHeaderFileHost} from './header-file-server.js'
import {startFakeNetlify} from './netlify-api.js'
import {S3_BUCKET, S3_CREDENTIALS, startS3rver} from './s3rver.js'
import {freePort, makeServable, requireTool, type RunningHost} from './static-hosts.js'
import {deployToRealHost, removeTempDirs, runReg, startServe, tempDir} from './support.js'

interface Host {
  name: string
  start(fixtures: CoreFixtures, work: string): Promise<RunningHost>
}

const HOSTS: Host[] = [
  {
    name: 'reg serve',
    start: async (fixtures) => {
      const served = await startServe(fixtures.tree, [])
      return {url: served.url, hostPort: served.hostPort, stop: served.stop}
    },
  },
  {name: 'nginx', start: (fixtures, work) => deployToRealHost(fixtures.tree, 'nginx', path.join(work, 'nginx-public'))},
  {name: 'apache', start: (fixtures, work) => deployToRealHost(fixtures.tree, 'apache', path.join(work, 'apache-public'))},
  {
    // S3 through a host-style endpoint: s3rver behind a proxy that sends Host: reg-test.s3.amazonaws.com (test/s3rver.ts).
    name: 's3rver',
    start: async (fixtures, work) => {
      const s3 = await startS3rver(path.join(work, 's3rver'), await freePort())
      const result = await runReg(['deploy', fixtures.tree, '--backend', 's3', '--bucket', S3_BUCKET, '--endpoint', s3.endpoint, '--force-path-style'], {env: S3_CREDENTIALS})
      assert.equal(result.code, 0, result.stderr)
      return {url: s3.url, hostPort: s3.hostPort, stop: s3.stop}
    },
  },
  {
    // Netlify: the files and _headers/_redirects a deploy published (fake API), served by the rule interpreter.
    name: 'netlify (rules of _headers and _redirects)',
    start: async (fixtures) => {
      const fake = await startFakeNetlify()
      const result = await runReg(['deploy', fixtures.tree, '--backend', 'netlify', '--site', fake.siteName, '--api-url', fake.apiUrl], {env: {NETLIFY_AUTH_TOKEN: fake.token}})
      assert.equal(result.code, 0, result.stderr)
      const host = await startHeaderFileHost(fake.publishedFiles(), 'request-path')
      return {url: host.url, hostPort: host.hostPort, stop: async () => {
        await host.stop()
        await fake.stop()
      }}
    },
  },
]

function parseReport(stdout: string): VerifyReport {
  return JSON.parse(stdout) as VerifyReport
}

describe('reg verify: what reg deploys passes for every client', () => {
  let work: string
  let fixtures: CoreFixtures

  before(async () => {
    for (const tool of ['skopeo', 'nginx', 'apache2']) requireTool(tool)
    work = await tempDir('reg-verify-hosts-')
    await makeServable(work)
    fixtures = await buildCoreFixtures(work)
  })
  after(() => removeTempDirs())

  for (const host of HOSTS) {
    it(`${host.name}: every tag and digest of the tree live and equal, no client fails`, async (t) => {
      const running = await host.start(fixtures, work)
      try {
        const result = await runReg(['verify', running.url, '--tree', fixtures.tree, '--all', '--json'])
        const report = parseReport(result.stdout)
        assert.deepEqual(report.findings.filter((f) => f.severity === 'fail'), [], 'no finding fails a client')
        assert.equal(result.code, 0, result.stderr)
        for (const client of report.clients) assert.notEqual(report.verdicts[client].verdict, 'fail', client)
        assert.deepEqual(report.tree, {missing: [], stale: []})
        assert.equal(report.coverage.tags, fixtures.images.length)
        assert.equal(report.coverage.blobsStreamed, report.coverage.blobs, '--all hashes every blob')
        const unchecked = report.rules.filter((r) => !r.checked).map((r) => r.id)
        assert.deepEqual(unchecked, [], 'every rule was checked')
        t.diagnostic(`${host.name}: ${report.coverage.requests} requests; warnings: ${report.findings.map((f) => `${f.rule} (${f.seen})`).join('; ') || 'none'}`)
        // The text report: the matrix and a verdict line per client.
        const text = await runReg(['verify', running.url, '--image', 'team/multi:multi', '--client', 'containerd,podman'])
        assert.equal(text.code, 0, text.stderr)
        assert.match(text.stdout, /^rule +containerd +podman +others$/m)
        assert.match(text.stdout, /^containerd +(pass|warn)/m)
      } finally {
        await running.stop()
      }
    })
  }

  it('reg deploy --verify (from a config target) checks the live registry after the deploy; a registry that is not the tree fails the deploy', async () => {
    const s3 = await startS3rver(path.join(work, 's3rver-deploy'), await freePort())
    const other = await startServe(fixtures.tree, [])
    try {
      const config = path.join(work, 'reg.config.json')
      await writeFile(config, JSON.stringify({targets: {live: {backend: 's3', bucket: S3_BUCKET, endpoint: s3.endpoint, 'force-path-style': true, verify: s3.url}}}))
      const deployed = await runReg(['deploy', fixtures.tree, '--config', config, '--target', 'live', '--json'], {env: S3_CREDENTIALS})
      assert.equal(deployed.code, 0, deployed.stderr)
      const report = JSON.parse(deployed.stdout) as {verify?: VerifyReport}
      assert.ok(report.verify, 'the deploy report carries the verification')
      assert.deepEqual(report.verify.failing, [])
      assert.deepEqual(report.verify.tree, {missing: [], stale: []})

      // The same deploy, verified against a registry serving another tree: its tags are missing there.
      const small = path.join(work, 'small-tree')
      assert.equal((await runReg(['build', '-o', small, `oci:${path.join(work, 'src-single')}:1.0=elsewhere/app:1`])).code, 0)
      const wrong = await runReg(['deploy', small, '--backend', 'dir', '--dest', path.join(work, 'dir-public'), '--verify', other.url])
      assert.equal(wrong.code, 1)
      assert.match(wrong.stdout, /FAIL content-live: elsewhere\/app:1 answered 404/)
      assert.match(wrong.stderr, /docker, containerd, podman, crane, oras, regctl would fail against/)
    } finally {
      await other.stop()
      await s3.stop()
    }
  })
})

describe('reg verify: a 1,000-tag registry, sampled', () => {
  after(() => removeTempDirs())

  it('checks a bounded, deterministic sample: the requests do not grow with the tags', async (t) => {
    requireTool('nginx')
    const work = await tempDir('reg-verify-many-')
    await makeServable(work)
    const layout = await makeManyTagsLayout(path.join(work, 'layout'), {tags: 1000, repositories: 50, manifests: 250, layers: 40, bases: 5, layerBytes: 2048})
    const tree = path.join(work, 'tree')
    const built = await runReg(['build', '-o', tree, ...layout.sources])
    assert.equal(built.code, 0, built.stderr)
    const host = await deployToRealHost(tree, 'nginx', path.join(work, 'public'))
    try {
      const runs: Array<{what: string; ms: number; report: VerifyReport}> = []
      for (const args of [[], [], ['--all']]) {
        const started = process.hrtime.bigint()
        const result = await runReg(['verify', host.url, '--tree', tree, '--json', ...args])
        const ms = Number(process.hrtime.bigint() - started) / 1e6
        assert.equal(result.code, 0, result.stderr)
        runs.push({what: args.join(' ') || 'sampled', ms, report: parseReport(result.stdout)})
      }
      const [first, second, all] = runs.map((r) => r.report)
      assert.equal(first.coverage.tagsKnown, 1000)
      assert.equal(first.coverage.tags, 20)
      assert.deepEqual(first.findings.filter((f) => f.severity === 'fail'), [])
      assert.equal(second.coverage.requests, first.coverage.requests, 'the same sample twice')
      assert.equal(all.coverage.tags, 1000)
      assert.ok(first.coverage.requests * 10 < all.coverage.requests, `a sample is a small part of the work (${first.coverage.requests} requests of ${all.coverage.requests})`)
      for (const run of runs) t.diagnostic(`${run.what}: ${run.report.coverage.tags} tags, ${run.report.coverage.requests} requests, ${run.ms.toFixed(0)} ms`)
    } finally {
      await host.stop()
    }
  })
})
