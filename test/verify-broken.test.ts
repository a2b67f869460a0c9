// reg verify against deliberately broken hosts: small node:http servers that serve a real reg tree
// but break one thing each. Each break is caught with the clients it breaks named, and (ground
// truth) skopeo, podman and ctr are run against every host: reg's verdict for podman (skopeo's
// library too) and containerd must be what they actually did (pass ⇔ the pull got the tree's digest).
import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {gzipSync} from 'node:zlib'
import {RegistryTree} from '../src/tree/registry-tree.js'
import type {RegistryObject} from '../src/tree/model.js'
import type {VerifyReport} from '../src/verify/verify.js'
import {type Containerd, podmanPullDigest, skopeoCopyDigest, startContainerd} from './clients.js'
import {makeServable, requireTool} from './static-hosts.js'
import {removeTempDirs, runReg, tempDir, writeTinyIndexLayout, writeTinyOciLayout} from './support.js'

/** What a broken host does differently from a correct one. */
interface Breakage {
  /** status for URLs the tree has no object for (S3 without ListBucket: 403) */
  missingStatus?: number
  /** /v2/ answers 404 (an S3 bucket without a v2/ object) */
  noApiRoot?: boolean
  /** no tags/list and no _catalog (a registrish-style tree) */
  noLists?: boolean
  /** no Docker-Content-Digest anywhere (a host that cannot set headers) */
  noDigestHeader?: boolean
  /** every manifest served with this Content-Type */
  manifestType?: string
  /** JSON gzipped to clients that accept it, and every JSON answer without Content-Length (HEAD too) */
  gzipJson?: boolean
  /** this tag path carries the Docker-Content-Digest of another manifest (a retag the header did not follow) */
  staleDigest?: {path: string; digest: string}
}

interface BrokenHost {
  url: string
  hostPort: string
  stop(): Promise<void>
}

/** A static host for `tree` with one thing broken: objects, headers and Range as a reg host serves them, then the break. */
async function startBrokenHost(tree: RegistryTree, breakage: Breakage): Promise<BrokenHost> {
  const server = http.createServer((req, res) => {
    void (async () => {
      let key = new URL(req.url ?? '/', 'http://host').pathname.replace(/^\/+/, '')
      if (key === 'v2') key = 'v2/'
      const object: RegistryObject | undefined = tree.objectsByPath.get(key)
      const hidden = object && ((breakage.noApiRoot && object.class === 'api-root') || (breakage.noLists && (object.class === 'tags-list' || object.class === 'catalog')))
      if (!object || hidden) {
        const status = breakage.missingStatus ?? 404
        res.writeHead(status, {'Content-Type': 'application/xml'})
        res.end(req.method === 'HEAD' ? undefined : `<Error><Code>${status === 404 ? 'NoSuchKey' : 'AccessDenied'}</Code></Error>`)
        return
      }
      const headers: Record<string, string> = {...object.headers}
      const isManifest = object.class === 'tag-manifest' || object.class === 'digest-manifest'
      if (breakage.noDigestHeader) delete headers['Docker-Content-Digest']
      if (breakage.manifestType && isManifest) headers['Content-Type'] = breakage.manifestType
      if (breakage.staleDigest && key === breakage.staleDigest.path) headers['Docker-Content-Digest'] = breakage.staleDigest.digest
      let body = await readFile(tree.fileOf(object))
      if (breakage.gzipJson && /json/.test(headers['Content-Type'] ?? '')) {
        if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
          body = gzipSync(body)
          headers['Content-Encoding'] = 'gzip'
        }
        headers['Transfer-Encoding'] = 'chunked'
        res.writeHead(200, headers)
        res.end(req.method === 'HEAD' ? undefined : body)
        return
      }
      const range = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''))
      if (object.class === 'blob') headers['Accept-Ranges'] = 'bytes'
      if (range && object.class === 'blob' && Number(range[1]) < body.length) {
        const start = Number(range[1])
        const end = Math.min(range[2] ? Number(range[2]) : body.length - 1, body.length - 1)
        res.writeHead(206, {...headers, 'Content-Range': `bytes ${start}-${end}/${body.length}`, 'Content-Length': String(end - start + 1)})
        res.end(req.method === 'HEAD' ? undefined : body.subarray(start, end + 1))
        return
      }
      res.writeHead(200, {...headers, 'Content-Length': String(body.length)})
      res.end(req.method === 'HEAD' ? undefined : body)
    })().catch(() => res.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const {port} = server.address() as {port: number}
  return {
    url: `http://127.0.0.1:${port}`, hostPort: `127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}

interface Case {
  name: string
  breakage: (old: string) => Breakage
  /** rules the report must have found broken */
  rules: string[]
  /** the clients reg must say would fail, exactly */
  failing: string[]
  /** clients that must at least be warned (they still pull) */
  warned?: string[]
}

const ALL = ['docker', 'containerd', 'podman', 'crane', 'oras', 'regctl']

const CASES: Case[] = [
  {name: 'a correct host', breakage: () => ({}), rules: [], failing: []},
  {name: 'a registrish-style tree (no tags/list, no _catalog, no Docker-Content-Digest)', breakage: () => ({noLists: true, noDigestHeader: true}), rules: ['tag-head-digest', 'tags-list', 'catalog'], failing: [], warned: ['containerd', 'podman', 'crane', 'oras', 'regctl']},
  {name: 'an S3 bucket without a v2/ object (404 on /v2/)', breakage: () => ({noApiRoot: true}), rules: ['api-root'], failing: ['podman', 'crane']},
  {name: 'a host that answers 403 for missing keys', breakage: () => ({missingStatus: 403}), rules: ['missing-404', 'referrers'], failing: ['oras', 'regctl']},
  {name: 'a proxy that gzips JSON and drops Content-Length', breakage: () => ({gzipJson: true}), rules: ['head-content-length', 'get-content-length'], failing: ['oras'], warned: ['containerd', 'crane']},
  // The tree holds a multi-platform index too: crane reads a mistyped image manifest anyway, but not a mistyped index.
  {name: 'manifests served as application/octet-stream', breakage: () => ({manifestType: 'application/octet-stream'}), rules: ['manifest-content-type', 'index-content-type'], failing: ALL},
  {name: 'manifests served as application/json', breakage: () => ({manifestType: 'application/json'}), rules: ['manifest-content-type', 'index-content-type'], failing: ALL},
  {name: 'a tag whose Docker-Content-Digest is stale after a retag', breakage: (old) => ({staleDigest: {path: 'v2/team/app/manifests/1', digest: old}}), rules: ['tag-digest-header'], failing: ['containerd', 'oras', 'regctl']},
]

describe('reg verify: broken hosts are caught, and the verdicts match the real clients', () => {
  let work: string
  let tree: RegistryTree
  let containerd: Containerd
  /** team/app:1 (what clients must get) and the manifest team/app:old, which :1 named before the retag */
  let current: string
  let old: string

  before(async () => {
    for (const tool of ['skopeo', 'podman', 'ctr', 'containerd']) requireTool(tool)
    work = await tempDir('reg-verify-broken-')
    await makeServable(work)
    const before = await writeTinyOciLayout(path.join(work, 'src-old'), {'app.txt': 'before the retag\n'}, 'old')
    const after = await writeTinyOciLayout(path.join(work, 'src-new'), {'app.txt': 'after the retag\n'}, '1')
    await writeTinyIndexLayout(path.join(work, 'src-multi'), ['linux/amd64', 'linux/arm64'], '1')
    const dir = path.join(work, 'tree')
    const built = await runReg(['build', '-o', dir, `oci:${path.join(work, 'src-old')}=team/app:old`, `oci:${path.join(work, 'src-new')}=team/app:1`, `oci:${path.join(work, 'src-multi')}=team/multi:1`])
    assert.equal(built.code, 0, built.stderr)
    tree = await RegistryTree.load(dir)
    current = after.manifestDigest
    old = before.manifestDigest
    containerd = await startContainerd(path.join(work, 'containerd'))
  })
  after(async () => {
    await containerd?.stop()
    await removeTempDirs()
  })

  for (const [i, testCase] of CASES.entries()) {
    it(`${testCase.name}: ${testCase.failing.length ? `${testCase.failing.join(', ')} named` : testCase.warned ? `${testCase.warned.join(', ')} warned` : 'passes'}; skopeo, podman and ctr agree`, async (t) => {
      const host = await startBrokenHost(tree, testCase.breakage(old))
      try {
        const result = await runReg(['verify', host.url, '--tree', tree.dir, '--all', '--json'])
        const report = JSON.parse(result.stdout) as VerifyReport
        const broken = report.rules.filter((r) => r.broken > 0).map((r) => r.id)
        for (const rule of testCase.rules) assert.ok(broken.includes(rule as never), `${rule} is found broken (found: ${broken.join(', ')})`)
        assert.deepEqual(report.failing, testCase.failing, `failing clients; findings: ${JSON.stringify(report.findings, null, 1)}`)
        for (const client of testCase.warned ?? []) assert.equal(report.verdicts[client as 'oras'].verdict, 'warn', `${client} is warned`)
        assert.equal(result.code, testCase.failing.length ? 1 : 0, result.stderr)
        if (testCase.failing.length) assert.match(result.stderr, new RegExp(`${testCase.failing.join(', ')} would fail against`))
        // Ground truth: what the real clients do against the same host.
        const ref = 'team/app:1'
        const errors: string[] = []
        const pulled = (digest: Promise<string>) => digest.then((d) => d === current, (error: Error) => {
          errors.push(error.message.slice(-300))
          return false
        })
        const skopeo = await pulled(skopeoCopyDigest(host.hostPort, ref, path.join(work, 'copies', String(i))))
        const podman = await pulled(podmanPullDigest(path.join(work, 'podman'), `${host.hostPort}/${ref}`))
        const ctr = await pulled(containerd.pull(`${host.hostPort}/${ref}`))
        t.diagnostic(`real clients got the tree's digest: ${JSON.stringify({skopeo, podman, ctr})}${errors.length ? `; ${errors.join(' | ')}` : ''}`)
        const passes = (client: 'podman' | 'containerd') => report.verdicts[client].verdict !== 'fail'
        assert.deepEqual({skopeo, podman, ctr}, {skopeo: passes('podman'), podman: passes('podman'), ctr: passes('containerd')}, 'the real clients did what reg said they would')
      } finally {
        await host.stop()
      }
    })
  }

  it('without --tree or --image, a host without _catalog is refused with what to do', async () => {
    const host = await startBrokenHost(tree, {noLists: true})
    try {
      const result = await runReg(['verify', host.url])
      assert.equal(result.code, 1)
      assert.match(result.stderr, /_catalog does not list its repositories/)
      assert.match(result.stderr, /--image NAME:TAG/)
      const named = await runReg(['verify', host.url, '--image', 'team/app:1', '--client', 'podman,containerd'])
      assert.equal(named.code, 0, named.stderr)
      assert.match(named.stdout, /warn tags-list/)
    } finally {
      await host.stop()
    }
  })
})
