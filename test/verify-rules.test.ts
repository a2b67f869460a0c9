// reg verify without real clients: the rule table and its documentation agree, samples are
// deterministic, bad arguments get clear errors, redirects are followed (and a loop is caught), and
// hostile answers stay bounded (a gzip bomb as a manifest is read at most MAX_MANIFEST_BYTES deep).
import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {gzipSync} from 'node:zlib'
import {startRegistryServer} from '../src/server/registry-server.js'
import {CLIENT_IDS, parseClients, RULES} from '../src/verify/rules.js'
import {sampleOf, type VerifyReport} from '../src/verify/verify.js'
import {REPO_ROOT, removeTempDirs, runReg, tempDir, writeTinyOciLayout} from './support.js'

describe('reg verify: the rule table', () => {
  it('docs/ARCHITECTURE.md lists every rule with the clients it fails and warns', async () => {
    const whole = await readFile(path.join(REPO_ROOT, 'docs/ARCHITECTURE.md'), 'utf8')
    const doc = whole.slice(whole.indexOf('reg verify: the rules of each client'))
    const clients = (list: readonly string[]) => (list.length === CLIENT_IDS.length ? 'all' : list.join(', ') || '—')
    for (const rule of RULES) {
      const row = doc.split('\n').find((line) => line.startsWith(`| \`${rule.id}\` |`))
      assert.ok(row, `${rule.id} has a row`)
      const cells = row.split(' | ')
      assert.equal(cells[2], clients(rule.breaks), `${rule.id}: fails`)
      assert.equal(cells[3], clients(rule.warns), `${rule.id}: warns`)
    }
    for (const rule of RULES) assert.ok(!rule.breaks.some((c) => rule.warns.includes(c)), `${rule.id}: a client is failed or warned, not both`)
  })

  it('a sample is deterministic, bounded, and the whole list when it is small', () => {
    const tags = Array.from({length: 1000}, (_, i) => `t${i}`)
    const a = sampleOf(tags, 20, (t) => t)
    assert.equal(a.length, 20)
    assert.deepEqual(sampleOf([...tags].reverse(), 20, (t) => t).sort(), [...a].sort(), 'the order of the input does not matter')
    assert.deepEqual(sampleOf(tags.slice(0, 5), 20, (t) => t), tags.slice(0, 5))
  })

  it('--client takes the six clients and their aliases, and refuses others', () => {
    assert.deepEqual(parseClients('skopeo,ctr,crane'), ['podman', 'containerd', 'crane'])
    assert.deepEqual(parseClients(undefined), [...CLIENT_IDS])
    assert.throws(() => parseClients('docker,helm'), /unknown client "helm"/)
  })
})

interface Front {
  url: string
  stop(): Promise<void>
}

/** A host in front of `target`: redirects blobs elsewhere, or loops, or answers a manifest with a gzip bomb. */
async function startFront(target: string, mode: 'redirect-blobs' | 'redirect-loop' | 'gzip-bomb'): Promise<Front> {
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20))
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/'
    if (mode !== 'gzip-bomb' && url.includes('/blobs/sha256:')) {
      res.writeHead(307, {Location: mode === 'redirect-loop' ? url : `${target}${url}`}).end()
      return
    }
    if (mode === 'gzip-bomb' && /\/manifests\/1$/.test(url) && req.method === 'GET') {
      res.writeHead(200, {'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Content-Encoding': 'gzip', 'Content-Length': String(bomb.length)}).end(bomb)
      return
    }
    const upstream = http.request(`${target}${url}`, {method: req.method, headers: req.headers}, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    upstream.on('error', () => res.destroy())
    upstream.end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const {port} = server.address() as {port: number}
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}

describe('reg verify: arguments, redirects, hostile answers', () => {
  let tree: string
  let registry: {url: string; close(): Promise<void>}

  before(async () => {
    const work = await tempDir('reg-verify-rules-')
    await writeTinyOciLayout(path.join(work, 'src'), {'app.txt': 'verify\n'}, '1')
    tree = path.join(work, 'tree')
    const built = await runReg(['build', '-o', tree, `oci:${path.join(work, 'src')}=team/app:1`])
    assert.equal(built.code, 0, built.stderr)
    registry = await startRegistryServer(tree, {port: 0})
  })
  after(async () => {
    await registry?.close()
    await removeTempDirs()
  })

  it('a URL that is not a registry root, or no http(s), is refused with what to type', async () => {
    for (const [url, message] of [['ftp://example.com', /is not an http\(s\) URL/], [`${registry.url}/team/app`, /a registry lives at the root of its host/], ['not a url', /is not a URL/]] as const) {
      const result = await runReg(['verify', url])
      assert.equal(result.code, 1, url)
      assert.match(result.stderr, message)
      assert.match(result.stderr, /hint:/)
    }
    const image = await runReg(['verify', registry.url, '--image', 'team/app'])
    assert.match(image.stderr, /--image "team\/app" has no tag/)
    const both = await runReg(['verify', registry.url, '--all', '--sample', '3'])
    assert.equal(both.code, 2, 'a flag error')
  })

  it('a nothing-listening URL fails every client, reachable', async () => {
    const closed = await startFront(registry.url, 'redirect-blobs')
    await closed.stop()
    const result = await runReg(['verify', closed.url, '--json'])
    const report = JSON.parse(result.stdout) as VerifyReport
    assert.equal(result.code, 1)
    assert.deepEqual(report.failing, [...CLIENT_IDS])
    assert.equal(report.findings[0].rule, 'reachable')
  })

  it('blobs redirected to a public host are followed and pass; a redirect loop is caught', async () => {
    const redirecting = await startFront(registry.url, 'redirect-blobs')
    const looping = await startFront(registry.url, 'redirect-loop')
    try {
      const ok = await runReg(['verify', redirecting.url, '--tree', tree, '--all', '--json'])
      assert.equal(ok.code, 0, ok.stderr)
      assert.equal((JSON.parse(ok.stdout) as VerifyReport).coverage.blobsStreamed, 2)
      const loop = await runReg(['verify', looping.url, '--tree', tree, '--json'])
      const report = JSON.parse(loop.stdout) as VerifyReport
      assert.equal(loop.code, 1)
      const finding = report.findings.find((f) => f.rule === 'redirect')
      assert.ok(finding, JSON.stringify(report.findings))
      assert.match(finding.message, /more than 10 redirects/)
      assert.equal(finding.redirects?.length, 10)
    } finally {
      await redirecting.stop()
      await looping.stop()
    }
  })

  it('a gzip bomb as a manifest is decoded at most MAX_MANIFEST_BYTES deep, and reported', async () => {
    const front = await startFront(registry.url, 'gzip-bomb')
    try {
      const result = await runReg(['verify', front.url, '--image', 'team/app:1', '--json'])
      const report = JSON.parse(result.stdout) as VerifyReport
      assert.equal(result.code, 1)
      assert.ok(report.findings.some((f) => f.rule === 'manifest-size' && /larger than 4194304 bytes/.test(f.message)), JSON.stringify(report.findings))
      assert.deepEqual(report.failing, ['containerd', 'podman'])
    } finally {
      await front.stop()
    }
  })
})
