// Blob offload (reg deploy --offload): blobs already public elsewhere are not uploaded, the host
// answers their URLs with a redirect there. Proven with real hosts and clients: an anonymous static
// location (another reg tree on nginx) and a token-auth distribution registry as locations, skopeo,
// podman and ctr pulling through the redirecting nginx (and Apache), bytes counted at every server.
import assert from 'node:assert/strict'
import {readdir, readFile} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {type Containerd, podmanPullDigest, run, skopeoCopyDigest, startContainerd} from './clients.js'
import {startDistribution, startTokenServer, writeHtpasswd} from './distribution.js'
import {startHeaderFileHost} from './header-file-server.js'
import {startFakeNetlify} from './netlify-api.js'
import {S3_BUCKET, S3_CREDENTIALS, startS3rver} from './s3rver.js'
import {freePort, makeServable, requireTool, type RunningHost, startApache, startNginx} from './static-hosts.js'
import {removeTempDirs, runReg, tempDir, type TinyImage, writeTinyOciLayout} from './support.js'

/** A server on 127.0.0.1 that forwards every request to `targetPort` and counts the body bytes of blob responses it passes on. */
interface CountingProxy {
  hostPort: string
  /** body bytes of 2xx GET answers for a blob digest */
  blobBytes(digest: string): number
  /** every answer for a blob digest, by status */
  blobAnswers(digest: string): number[]
  stop(): Promise<void>
}

async function startCountingProxy(targetPort: number): Promise<CountingProxy> {
  const bytes = new Map<string, number>()
  const answers = new Map<string, number[]>()
  const server = http.createServer((req, res) => {
    const digest = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '')?.[1]
    const upstream = http.request({host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers}, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      if (digest) answers.set(digest, [...(answers.get(digest) ?? []), answer.statusCode ?? 0])
      answer.on('data', (chunk: Buffer) => {
        if (digest && req.method === 'GET' && (answer.statusCode ?? 0) < 300) bytes.set(digest, (bytes.get(digest) ?? 0) + chunk.length)
      })
      answer.pipe(res)
    })
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  })
  const port = await freePort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()))
  return {
    hostPort: `127.0.0.1:${port}`,
    blobBytes: (digest) => bytes.get(digest) ?? 0,
    blobAnswers: (digest) => answers.get(digest) ?? [],
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}

/**
 * The token realm as Docker Hub's works for public images: a request without credentials gets an
 * anonymous token (here: forwarded to the test token server as its `anonymous` user).
 */
async function startAnonymousRealm(tokenRealm: string): Promise<{realm: string; stop(): Promise<void>}> {
  const target = new URL(tokenRealm)
  const server = http.createServer((req, res) => {
    const headers = {...req.headers, host: target.host, authorization: req.headers.authorization ?? `Basic ${Buffer.from('anonymous:anonymous').toString('base64')}`}
    const upstream = http.request({host: target.hostname, port: target.port, method: 'GET', path: `${target.pathname}${new URL(req.url ?? '/', 'http://x').search}`, headers}, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    upstream.on('error', () => res.destroy())
    upstream.end()
  })
  const port = await freePort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()))
  return {realm: `http://127.0.0.1:${port}/token`, stop: () => new Promise<void>((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })}
}

interface Blob {
  digest: string
  size: number
}

async function blobsOf(layout: string, image: TinyImage): Promise<Blob[]> {
  return Promise.all([image.configDigest, image.layerDigest].map(async (digest) => ({digest, size: (await readFile(path.join(layout, 'blobs/sha256', digest.slice(7)))).length})))
}

/** The blob files a local deploy stored. */
async function storedBlobs(out: string): Promise<string[]> {
  return (await readdir(path.join(out, '_registry/blobs')).catch(() => [] as string[])).filter((name) => name.startsWith('sha256:')).sort()
}

describe('reg deploy --offload', () => {
  let work: string
  let baseLayout: string
  let ownLayout: string
  let base: TinyImage
  let own: TinyImage
  let baseBlobs: Blob[]
  let ownBlobs: Blob[]
  let appTree: string
  const stops: Array<() => Promise<void>> = []
  /** the static location: the base image's tree on nginx, behind a counting proxy */
  let staticLocation: CountingProxy
  /** the token-protected location: distribution behind a token server, behind a counting proxy */
  let tokenLocation: CountingProxy
  let containerd: Containerd
  /** the scopes the token server was asked for, in order */
  let tokenRequests: string[]

  before(async () => {
    for (const tool of ['skopeo', 'podman', 'ctr', 'containerd', 'nginx', 'apache2', 'docker-registry']) requireTool(tool)
    work = await tempDir('reg-offload-')
    await makeServable(work)
    baseLayout = path.join(work, 'base-layout')
    ownLayout = path.join(work, 'own-layout')
    base = await writeTinyOciLayout(baseLayout, {'etc/os-release': 'NAME="offload base"\n', 'base.txt': 'base layer\n'.repeat(4096)}, '1')
    own = await writeTinyOciLayout(ownLayout, {'app.txt': 'the app\'s own layer\n'.repeat(512)}, '1')
    baseBlobs = await blobsOf(baseLayout, base)
    ownBlobs = await blobsOf(ownLayout, own)

    // The static location: another reg tree holding the base image, deployed to nginx.
    const baseTree = path.join(work, 'base-tree')
    assert.equal((await runReg(['build', `oci:${baseLayout}:1=library/base:1`, '-o', baseTree])).code, 0)
    const baseOut = path.join(work, 'base-public')
    const basePort = await freePort()
    const deployed = await runReg(['deploy', baseTree, '--backend', 'nginx', '--dest', baseOut, '--listen', `127.0.0.1:${basePort}`])
    assert.equal(deployed.code, 0, deployed.stderr)
    await makeServable(baseOut)
    const baseHost = await startNginx(baseOut, basePort)
    stops.push(() => baseHost.stop())
    staticLocation = await startCountingProxy(basePort)
    stops.push(() => staticLocation.stop())

    // The token-protected location: distribution with a token server that hands out anonymous tokens.
    const token = await startTokenServer(path.join(work, 'token'), await freePort(), {anonymous: 'anonymous'})
    stops.push(() => token.stop())
    tokenRequests = token.requests
    const realm = await startAnonymousRealm(token.realm)
    stops.push(() => realm.stop())
    const registryPort = await freePort()
    const registry = await startDistribution(path.join(work, 'distribution'), registryPort, {token: {realm: realm.realm, certificate: token.certificate}})
    stops.push(() => registry.stop())
    await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${baseLayout}:1`, `docker://${registry.hostPort}/library/base:1`])
    tokenLocation = await startCountingProxy(registryPort)
    stops.push(() => tokenLocation.stop())

    // The tree deployed with offload: the base image, and an image with blobs of its own.
    appTree = path.join(work, 'app-tree')
    const built = await runReg(['build', `oci:${baseLayout}:1=team/app:1`, `oci:${ownLayout}:1=team/own:1`, '-o', appTree])
    assert.equal(built.code, 0, built.stderr)
    containerd = await startContainerd(path.join(work, 'containerd'))
    stops.push(() => containerd.stop())
  })

  after(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined)
    await removeTempDirs()
  })

  /** `reg deploy appTree --backend nginx` with `flags`, then nginx serving it behind a counting proxy. */
  async function deployOffloading(name: string, flags: string[]): Promise<{out: string; report: Record<string, any>; host: CountingProxy}> {
    const out = path.join(work, name)
    const port = await freePort()
    const result = await runReg(['deploy', appTree, '--backend', 'nginx', '--dest', out, '--listen', `127.0.0.1:${port}`, '--json', ...flags])
    assert.equal(result.code, 0, result.stderr)
    await makeServable(out)
    const nginx: RunningHost = await startNginx(out, port)
    stops.push(() => nginx.stop())
    const host = await startCountingProxy(port)
    stops.push(() => host.stop())
    return {out, report: JSON.parse(result.stdout) as Record<string, any>, host}
  }

  it('an anonymous static location: every client pulls through the redirect, the host serves none of the offloaded bytes', async () => {
    const location = `http://${staticLocation.hostPort}/library/base`
    const {out, report, host} = await deployOffloading('static-offload', ['--offload', location])
    assert.deepEqual(report.offload.locations, [{location, access: 'anonymous', clients: ['containerd', 'docker-containerd', 'docker', 'podman', 'skopeo', 'cri-o'], blobs: 2, bytes: baseBlobs[0].size + baseBlobs[1].size}])
    assert.deepEqual(report.offload.rejected, [])
    // The first deploy hashed each offloaded blob once, at the location.
    assert.equal(report.offload.bytesVerified, baseBlobs[0].size + baseBlobs[1].size)
    for (const blob of baseBlobs) assert.equal(staticLocation.blobBytes(blob.digest), blob.size, `reg downloaded ${blob.digest} once to check it`)
    // Only the image's own blobs were uploaded.
    assert.deepEqual(await storedBlobs(out), ownBlobs.map((b) => b.digest).sort())

    assert.equal(await skopeoCopyDigest(host.hostPort, 'team/app:1', path.join(work, 'skopeo-static')), base.manifestDigest)
    assert.equal(await podmanPullDigest(path.join(work, 'podman-static'), `${host.hostPort}/team/app:1`), base.manifestDigest)
    assert.equal(await containerd.pull(`${host.hostPort}/team/app:1`), base.manifestDigest)
    assert.equal(await skopeoCopyDigest(host.hostPort, 'team/own:1', path.join(work, 'skopeo-own')), own.manifestDigest)

    for (const blob of baseBlobs) {
      assert.equal(host.blobBytes(blob.digest), 0, `the offloading host served no byte of ${blob.digest}`)
      assert.ok(host.blobAnswers(blob.digest).length > 0 && host.blobAnswers(blob.digest).every((status) => status === 302), `${blob.digest}: ${host.blobAnswers(blob.digest)}`)
    }
    // The layer came from the location: once for reg's check, then once per client that downloaded it (each pulled once).
    const layer = baseBlobs[1]
    assert.equal(staticLocation.blobBytes(layer.digest), layer.size * 4)
    assert.equal(host.blobBytes(ownBlobs[1].digest), ownBlobs[1].size, 'the image\'s own layer came from the host')

    assert.equal((await fetch(`http://${host.hostPort}/.reg-offload.json`)).status, 404, 'the verdicts are not served')
    // The next deploy keeps the verdicts: nothing is downloaded again.
    const again = await runReg(['deploy', appTree, '--backend', 'nginx', '--dest', out, '--json', '--offload', location])
    assert.equal(again.code, 0, again.stderr)
    assert.equal((JSON.parse(again.stdout) as Record<string, any>).offload.bytesVerified, 0)
    assert.equal(staticLocation.blobBytes(layer.digest), layer.size * 4)

    // reg verify follows the redirects as a client does, and hashes every blob where it lands.
    const verified = await runReg(['verify', `http://${host.hostPort}`, '--tree', appTree, '--all'])
    assert.equal(verified.code, 0, verified.stdout + verified.stderr)
    assert.equal(staticLocation.blobBytes(layer.digest), layer.size * 5)
    assert.equal(host.blobBytes(layer.digest), 0)
  })

  it('a blob whose copy at the location has the wrong size or the wrong bytes is uploaded, not offloaded', async () => {
    const [config, layer] = baseBlobs
    // A folder of blobs that lies: the config one byte short, the layer the right size with other bytes.
    const liar = http.createServer((req, res) => {
      const digest = /^\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '')?.[1]
      const body = digest === config.digest ? Buffer.alloc(config.size - 1, 1) : digest === layer.digest ? Buffer.alloc(layer.size, 7) : undefined
      if (!body) return res.writeHead(404).end()
      res.writeHead(200, {'Content-Length': body.length}).end(req.method === 'HEAD' ? undefined : body)
    })
    const port = await freePort()
    await new Promise<void>((resolve) => liar.listen(port, '127.0.0.1', () => resolve()))
    stops.push(() => new Promise<void>((resolve) => liar.close(() => resolve())))
    const location = `http://127.0.0.1:${port}/blobs/{digest}`
    const {out, report, host} = await deployOffloading('liar-offload', ['--offload', location])
    assert.deepEqual(report.offload.locations, [{location, access: 'unused', clients: [], blobs: 0, bytes: 0}])
    assert.deepEqual(report.offload.rejected.map((r: {digest: string; why: string}) => [r.digest, r.why]).sort(), [
      [config.digest, `${config.size - 1} bytes there, ${config.size} in the tree`],
      [layer.digest, 'its bytes there are not this digest'],
    ].sort())
    assert.deepEqual(await storedBlobs(out), [...baseBlobs, ...ownBlobs].map((b) => b.digest).sort())
    assert.doesNotMatch(await readFile(path.join(out, 'registry-maps.conf'), 'utf8'), /sha256:[a-f0-9]{64}" "http/)
    assert.equal(await skopeoCopyDigest(host.hostPort, 'team/app:1', path.join(work, 'skopeo-liar')), base.manifestDigest)
    assert.equal(host.blobBytes(layer.digest), layer.size, 'the host served the layer itself')

    // Locations are asked in order: a later one that has the right bytes takes what the liar could not.
    const good = `http://${staticLocation.hostPort}/library/base`
    const both = await runReg(['deploy', appTree, '--backend', 'nginx', '--dest', path.join(work, 'liar-then-good'), '--json', '--offload', location, '--offload', good])
    assert.equal(both.code, 0, both.stderr)
    const bothReport = (JSON.parse(both.stdout) as Record<string, any>).offload
    assert.deepEqual(bothReport.locations.map((l: {blobs: number}) => l.blobs), [0, 2])
    assert.deepEqual(bothReport.rejected, [], 'nothing was uploaded instead')
  })

  it('a token-protected registry: refused unless --offload-clients names only clients that follow a token challenge; then ctr pulls, skopeo and podman fail', async () => {
    const location = `http://${tokenLocation.hostPort}/library/base`
    const refused = await runReg(['deploy', appTree, '--backend', 'nginx', '--dest', path.join(work, 'token-refused'), '--offload', location])
    assert.equal(refused.code, 1)
    assert.equal(refused.stderr.trim(), [
      `reg: error: --offload ${location} asks for a token (a Bearer challenge): docker, podman, skopeo, cri-o cannot follow a redirect there, so they could not pull the blobs offloaded to it`,
      '  hint: pass --offload-clients containerd,docker-containerd if only those clients pull from this registry, or offload to a location that answers without a token (a static registry or a bucket)',
    ].join('\n'))
    assert.deepEqual(await storedBlobs(path.join(work, 'token-refused')), [], 'nothing was written')
    const stillRefused = await runReg(['deploy', appTree, '--backend', 'nginx', '--dest', path.join(work, 'token-refused'), '--offload', location, '--offload-clients', 'containerd,podman'])
    assert.equal(stillRefused.code, 1)
    assert.match(stillRefused.stderr, /podman cannot follow a redirect there/)

    const {out, report, host} = await deployOffloading('token-offload', ['--offload', location, '--offload-clients', 'containerd,docker-containerd'])
    assert.deepEqual(report.offload.locations, [{location, access: 'token', clients: ['containerd', 'docker-containerd'], blobs: 2, bytes: baseBlobs[0].size + baseBlobs[1].size}])
    assert.deepEqual(await storedBlobs(out), ownBlobs.map((b) => b.digest).sort())
    const layer = baseBlobs[1]
    const before = tokenLocation.blobBytes(layer.digest)
    const tokensBefore = tokenRequests.length

    assert.equal(await containerd.pull(`${host.hostPort}/team/app:1`), base.manifestDigest)
    assert.equal(tokenLocation.blobBytes(layer.digest), before + layer.size, 'ctr fetched the layer from the registry, with a token')
    assert.deepEqual(tokenRequests.slice(tokensBefore), ['repository:library/base:pull'], 'ctr answered the challenge after the redirect')
    // containers/image follows the redirect without answering the registry's challenge: 401
    // ("unable to retrieve auth token: invalid username/password: unauthorized: authentication required").
    await assert.rejects(skopeoCopyDigest(host.hostPort, 'team/app:1', path.join(work, 'skopeo-token')), /401|unauthorized|authentication required/i)
    await assert.rejects(podmanPullDigest(path.join(work, 'podman-token'), `${host.hostPort}/team/app:1`), /401|unauthorized|authentication required/i)
    assert.equal(tokenLocation.blobBytes(layer.digest), before + layer.size, 'skopeo and podman got no byte of the layer')
    assert.equal(tokenRequests.length, tokensBefore + 1, 'skopeo and podman never asked the realm for a token after the redirect')
    for (const blob of baseBlobs) assert.equal(host.blobBytes(blob.digest), 0)

    // reg verify says the same as the clients did: containerd pulls, podman (skopeo) does not.
    const verified = await runReg(['verify', `http://${host.hostPort}`, '--tree', appTree, '--all', '--json'])
    assert.equal(verified.code, 1, verified.stderr)
    const verdict = JSON.parse(verified.stdout) as {failing: string[]; verdicts: Record<string, {failedRules: string[]}>}
    assert.deepEqual(verdict.failing.sort(), ['crane', 'docker', 'podman'])
    assert.deepEqual(verdict.verdicts.podman.failedRules, ['redirect-token'])
    assert.deepEqual(verdict.verdicts.containerd.failedRules, [])
  })

  it('apache: the same redirects in .htaccess', async () => {
    const out = path.join(work, 'apache-offload')
    const location = `http://${staticLocation.hostPort}/library/base`
    const result = await runReg(['deploy', appTree, '--backend', 'apache', '--dest', out, '--offload', location])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, new RegExp(`offload ${location}: 2 blobs \\(\\d+ bytes\\) served from there; every client can follow it`))
    assert.deepEqual(await storedBlobs(out), ownBlobs.map((b) => b.digest).sort())
    await makeServable(out)
    const apache = await startApache(out, await freePort())
    stops.push(() => apache.stop())
    assert.equal((await fetch(`${apache.url}/.reg-offload.json`)).status, 404, 'the verdicts are not served')
    const layer = baseBlobs[1]
    const before = staticLocation.blobBytes(layer.digest)
    assert.equal(await skopeoCopyDigest(apache.hostPort, 'team/app:1', path.join(work, 'skopeo-apache')), base.manifestDigest)
    assert.equal(staticLocation.blobBytes(layer.digest), before + layer.size)
  })

  it('netlify: a 302 rule per offloaded blob URL, first in _redirects; nothing of those blobs is uploaded', async () => {
    const fake = await startFakeNetlify()
    stops.push(() => fake.stop())
    const location = `http://${staticLocation.hostPort}/library/base`
    const result = await runReg(['deploy', appTree, '--backend', 'netlify', '--site', fake.siteName, '--api-url', fake.apiUrl, '--json', '--offload', location], {env: {NETLIFY_AUTH_TOKEN: fake.token, XDG_CACHE_HOME: path.join(work, 'cache')}})
    assert.equal(result.code, 0, result.stderr)
    const files = fake.publishedFiles()
    for (const blob of baseBlobs) assert.ok(!files.has(`/_registry/blobs/${blob.digest}`), `${blob.digest} not deployed`)
    for (const blob of ownBlobs) assert.ok(files.has(`/_registry/blobs/${blob.digest}`), `${blob.digest} deployed`)
    const rules = (files.get('/_redirects')?.toString('utf8') ?? '').split('\n')
    assert.deepEqual(rules.slice(1, 4), [
      '# blobs served from elsewhere (reg deploy --offload)',
      ...baseBlobs.map((b) => `/v2/team/app/blobs/${b.digest}  http://${staticLocation.hostPort}/v2/library/base/blobs/${b.digest}  302`).sort(),
    ])
    const host = await startHeaderFileHost(files, 'request-path')
    stops.push(() => host.stop())
    const layer = baseBlobs[1]
    const before = staticLocation.blobBytes(layer.digest)
    assert.equal(await skopeoCopyDigest(host.hostPort, 'team/app:1', path.join(work, 'skopeo-netlify')), base.manifestDigest)
    assert.equal(staticLocation.blobBytes(layer.digest), before + layer.size)
    assert.ok(host.log.filter((r) => r.path.endsWith(layer.digest)).every((r) => r.status === 302))
  })

  it('s3 (website endpoint): a redirect object per offloaded blob URL, answered 301 to the location', async () => {
    const s3 = await startS3rver(path.join(work, 's3rver'), await freePort(), {website: true})
    stops.push(() => s3.stop())
    const location = `http://${staticLocation.hostPort}/library/base`
    const env = {...S3_CREDENTIALS, XDG_CACHE_HOME: path.join(work, 'cache')}
    const deploy = () => runReg(['deploy', appTree, '--backend', 's3', '--bucket', S3_BUCKET, '--endpoint', s3.endpoint, '--force-path-style', '--json', '--offload', location], {env})
    const result = await deploy()
    assert.equal(result.code, 0, result.stderr)
    const report = JSON.parse(result.stdout) as {plan: {redirects: number; bytesToUpload: number}; offload: {locations: Array<{blobs: number}>}}
    assert.equal(report.plan.redirects, 2)
    assert.equal(report.offload.locations[0].blobs, 2)
    const xml = await (await fetch(`${s3.endpoint}/${S3_BUCKET}?list-type=2&max-keys=1000`, {headers: {'x-amz-content-sha256': 'UNSIGNED-PAYLOAD'}})).text()
    const sizes = new Map([...xml.matchAll(/<Key>([^<]+)<\/Key>.*?<Size>(\d+)<\/Size>/gs)].map((m) => [m[1], Number(m[2])]))
    for (const blob of baseBlobs) assert.equal(sizes.get(`v2/team/app/blobs/${blob.digest}`), 0, `${blob.digest} is a redirect object`)
    for (const blob of ownBlobs) assert.equal(sizes.get(`v2/team/own/blobs/${blob.digest}`), blob.size)
    const layer = baseBlobs[1]
    // s3rver takes the bucket from the Host header as sent (fetch would lowercase it).
    const answer = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({host: '127.0.0.1', port: Number(s3.hostPort.split(':')[1]), path: `/v2/team/app/blobs/${layer.digest}`, headers: {Host: s3.hostPort}}, resolve).on('error', reject)
    })
    answer.resume()
    assert.equal(answer.statusCode, 301)
    assert.equal(answer.headers.location, `http://${staticLocation.hostPort}/v2/library/base/blobs/${layer.digest}`)
    const before = staticLocation.blobBytes(layer.digest)
    assert.equal(await skopeoCopyDigest(s3.hostPort, 'team/app:1', path.join(work, 'skopeo-s3')), base.manifestDigest)
    assert.equal(staticLocation.blobBytes(layer.digest), before + layer.size)
    // A second deploy writes the two redirect objects again (a listing cannot tell where one points) and uploads nothing.
    const again = JSON.parse((await deploy()).stdout) as {result: {uploaded: number; copied: number; redirected: number}}
    assert.deepEqual([again.result.uploaded, again.result.copied, again.result.redirected], [0, 0, 2])
  })

  for (const backend of ['nginx', 'apache'] as const) {
    it(`${backend} with --private: an offloaded blob of a private repository is redirected only after the credentials are checked`, async () => {
      const out = path.join(work, `private-${backend}`)
      const htpasswd = await writeHtpasswd(path.join(work, `users-${backend}`), 'reader', 'secret')
      const port = await freePort()
      const location = `http://${staticLocation.hostPort}/library/base`
      const flags = backend === 'nginx' ? ['--listen', `127.0.0.1:${port}`] : []
      const result = await runReg(['deploy', appTree, '--backend', backend, '--dest', out, ...flags, '--auth-file', htpasswd, '--private', 'team/app', '--offload', location])
      assert.equal(result.code, 0, result.stderr)
      await makeServable(out)
      // Apache: the modules and override Basic auth in .htaccess needs (as test/auth-hosts.test.ts starts it).
      const modules = '/usr/lib/apache2/modules'
      const site = `${['authn_core', 'authn_file', 'auth_basic', 'authz_user'].map((m) => `LoadModule ${m}_module ${modules}/mod_${m}.so`).join('\n')}
DocumentRoot ${out}
<Directory ${out}>
    AllowOverride FileInfo AuthConfig
    Require all granted
</Directory>`
      const host = backend === 'nginx' ? await startNginx(out, port) : await startApache(out, port, site)
      stops.push(() => host.stop())
      const layer = baseBlobs[1]
      const url = `${host.url}/v2/team/app/blobs/${layer.digest}`
      const anonymous = await fetch(url, {redirect: 'manual'})
      assert.equal(anonymous.status, 401, 'no redirect without credentials')
      assert.equal(anonymous.headers.get('location'), null)
      const wrong = await fetch(url, {redirect: 'manual', headers: {Authorization: `Basic ${Buffer.from('reader:wrong').toString('base64')}`}})
      assert.equal(wrong.status, 401)
      const reader = await fetch(url, {redirect: 'manual', headers: {Authorization: `Basic ${Buffer.from('reader:secret').toString('base64')}`}})
      assert.equal(reader.status, 302)
      assert.equal(reader.headers.get('location'), `http://${staticLocation.hostPort}/v2/library/base/blobs/${layer.digest}`)
      // A blob the tree does not have is still BLOB_UNKNOWN, and a public repository's blobs are served.
      const unknown = await fetch(`${host.url}/v2/team/own/blobs/sha256:${'0'.repeat(64)}`)
      assert.equal(unknown.status, 404)
      assert.match(await unknown.text(), /BLOB_UNKNOWN/)
      assert.equal((await fetch(`${host.url}/v2/team/own/blobs/${ownBlobs[1].digest}`)).status, 200)
    })
  }
})
