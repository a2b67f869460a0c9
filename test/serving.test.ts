// Serving details users hit: CORS on every host that can send it (reg serve, nginx, Apache, the
// `_headers` of Netlify), checked with curl-like requests and by a real browser on another origin;
// nginx after a deploy that moves a tag (the reload it needs, its own pid file); the registry URL
// and pull line of `--public-url`; containerd's hosts.toml for a pull mirror, pulled through by ctr.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {access, mkdir, readFile, writeFile} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import nock from 'nock'
import type {Browser} from 'playwright-core'
import {launchChromium} from './browser.js'
import {BACKENDS} from '../plugins/index.js'
import {deployTree} from '../src/publish/deploy.js'
import {CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, CORS_MAX_AGE_SECONDS} from '../src/core/cors.js'
import {publicReadPolicy} from '../plugins/backend-s3/index.js'
import {explainS3Error, type S3Settings} from '../plugins/backend-s3/s3-backend.js'
import {run} from './clients.js'
import {startHeaderFileHost} from './header-file-server.js'
import {startFakeNetlify} from './netlify-api.js'
import {freePort, makeServable, requireTool, type RunningHost, startApache, startNginx, waitUntil} from './static-hosts.js'
import {removeTempDirs, runReg, startServe, tempDir, writeTinyOciLayout, type TinyImage} from './support.js'

const EXPOSED = 'Docker-Content-Digest, Docker-Distribution-API-Version, Content-Length, Content-Range, Content-Type, Accept-Ranges, ETag, Link, Location, WWW-Authenticate, OCI-Filters-Applied'

/** A tree holding one tiny image as team/app:1.0. */
async function treeOf(work: string, name: string, content: string): Promise<{tree: string; image: TinyImage}> {
  const layout = path.join(work, `layout-${name}`)
  const image = await writeTinyOciLayout(layout, {'app.txt': content}, '1')
  const tree = path.join(work, `tree-${name}`)
  const built = await runReg(['build', `oci:${layout}=team/app:1.0`, '-o', tree])
  assert.equal(built.code, 0, built.stderr)
  return {tree, image}
}

const manifestDigest = async (url: string) => (await fetch(`${url}/v2/team/app/manifests/1.0`, {headers: {Accept: 'application/vnd.oci.image.manifest.v1+json'}})).headers.get('docker-content-digest')

describe('CORS on every host that can send it', () => {
  let work: string
  let image: TinyImage
  let tree: string
  let browser: Browser
  let page: http.Server
  let pageOrigin: string
  const hosts: Array<{name: string; host: RunningHost | {url: string; stop(): Promise<void>}}> = []

  before(async () => {
    work = await tempDir()
    ;({tree, image} = await treeOf(work, 'cors', 'cors\n'))
    requireTool('chromium')
    browser = await launchChromium()
    // The registry UI's origin: another port of 127.0.0.1 is another origin.
    page = http.createServer((_req, res) => res.writeHead(200, {'Content-Type': 'text/html'}).end('<!doctype html><title>registry ui</title>'))
    const port = await freePort()
    await new Promise<void>((resolve) => page.listen(port, '127.0.0.1', () => resolve()))
    pageOrigin = `http://127.0.0.1:${port}`
    const serve = await startServe(tree, [])
    hosts.push({name: 'reg serve', host: serve})
    for (const backend of ['nginx', 'apache'] as const) {
      const out = path.join(work, `out-${backend}`)
      const hostPort = await freePort()
      const flags = backend === 'nginx' ? ['--listen', `127.0.0.1:${hostPort}`, '--server-name', '127.0.0.1'] : []
      const deployed = await runReg(['deploy', tree, '--backend', backend, '--dest', out, ...flags])
      assert.equal(deployed.code, 0, deployed.stderr)
      await makeServable(out)
      hosts.push({name: backend, host: backend === 'nginx' ? await startNginx(out, hostPort) : await startApache(out, hostPort)})
    }
  })
  after(async () => {
    for (const {host} of hosts) await host.stop()
    await browser?.close()
    await new Promise((resolve) => page?.close(resolve))
    await removeTempDirs()
  })

  /** fetch() in the page, from its origin: what a browser registry UI does. An Authorization header makes it a preflighted request. */
  const browserFetch = async (url: string, headers: Record<string, string>) => {
    const tab = await browser.newPage()
    try {
      await tab.goto(pageOrigin)
      return await tab.evaluate(async ({url, headers}) => {
        try {
          const res = await fetch(url, {headers})
          const body = new Uint8Array(await res.arrayBuffer())
          return {status: res.status, digest: res.headers.get('docker-content-digest'), range: res.headers.get('content-range'), bytes: body.length, error: undefined}
        } catch (error) {
          return {status: 0, digest: null, range: null, bytes: 0, error: String(error)}
        }
      }, {url, headers})
    } finally {
      await tab.close()
    }
  }

  for (const name of ['reg serve', 'nginx', 'apache']) {
    it(`${name}: a preflight is answered 204 with what a page may do; GET, HEAD and 404s say who may read them`, async () => {
      const {url} = hosts.find((h) => h.name === name)!.host
      const preflight = await fetch(`${url}/v2/team/app/blobs/${image.layerDigest}`, {
        method: 'OPTIONS', headers: {Origin: pageOrigin, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization, range'},
      })
      assert.equal(preflight.status, 204)
      assert.equal(preflight.headers.get('access-control-allow-origin'), '*')
      assert.equal(preflight.headers.get('access-control-allow-methods'), 'GET, HEAD')
      assert.equal(preflight.headers.get('access-control-allow-headers'), CORS_ALLOW_HEADERS.join(', '))
      assert.equal(preflight.headers.get('access-control-max-age'), String(CORS_MAX_AGE_SECONDS))
      for (const [method, urlPath, status] of [['GET', '/v2/team/app/manifests/1.0', 200], ['HEAD', '/v2/team/app/manifests/1.0', 200], ['GET', '/v2/', 200], ['GET', '/v2/team/app/manifests/nope', 404], ['GET', `/v2/team/app/blobs/sha256:${'0'.repeat(64)}`, 404]] as const) {
        const res = await fetch(url + urlPath, {method, headers: {Origin: pageOrigin}})
        assert.equal(res.status, status, `${method} ${urlPath}`)
        assert.equal(res.headers.get('access-control-allow-origin'), '*', `${method} ${urlPath}`)
        assert.equal(res.headers.get('access-control-expose-headers'), EXPOSED, `${method} ${urlPath}`)
        await res.arrayBuffer()
      }
    })

    it(`${name}: a browser on another origin reads a blob range with a token, and the digest header`, async () => {
      const {url} = hosts.find((h) => h.name === name)!.host
      const blob = await browserFetch(`${url}/v2/team/app/blobs/${image.layerDigest}`, {Authorization: 'Bearer anonymous', Range: 'bytes=0-3'})
      assert.equal(blob.error, undefined)
      assert.equal(blob.status, 206)
      assert.equal(blob.bytes, 4)
      assert.match(blob.range ?? '', /^bytes 0-3\/\d+$/)
      assert.equal(blob.digest, image.layerDigest)
      const manifest = await browserFetch(`${url}/v2/team/app/manifests/1.0`, {Authorization: 'Bearer anonymous', Accept: 'application/vnd.oci.image.manifest.v1+json'})
      assert.equal(manifest.status, 200)
      assert.equal(manifest.digest, image.manifestDigest)
    })
  }

  it('reg serve --cors off: no CORS headers, OPTIONS is 405, and the browser is refused', async () => {
    const serve = await startServe(tree, ['--cors', 'off'])
    try {
      const res = await fetch(`${serve.url}/v2/team/app/manifests/1.0`, {headers: {Origin: pageOrigin}})
      assert.equal(res.headers.get('access-control-allow-origin'), null)
      assert.equal((await fetch(`${serve.url}/v2/`, {method: 'OPTIONS', headers: {Origin: pageOrigin, 'Access-Control-Request-Method': 'GET'}})).status, 405)
      const refused = await browserFetch(`${serve.url}/v2/team/app/manifests/1.0`, {})
      assert.match(refused.error ?? '', /TypeError: Failed to fetch/)
    } finally {
      await serve.stop()
    }
  })

  it('reg serve --cors ORIGIN lets only that origin read; a value that is not an origin is refused', async () => {
    const serve = await startServe(tree, ['--cors', pageOrigin])
    try {
      const res = await fetch(`${serve.url}/v2/team/app/manifests/1.0`, {headers: {Origin: pageOrigin}})
      assert.equal(res.headers.get('access-control-allow-origin'), pageOrigin)
      const allowed = await browserFetch(`${serve.url}/v2/team/app/manifests/1.0`, {Authorization: 'Bearer anonymous'})
      assert.equal(allowed.status, 200)
    } finally {
      await serve.stop()
    }
    const bad = await runReg(['serve', tree, '-p', '0', '--cors', 'https://ui.example/app'])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /--cors "https:\/\/ui\.example\/app" is not an origin, "\*" or "off"/)
    assert.match(bad.stderr, /an origin is scheme:\/\/host\[:port\] with no path, as a browser sends it: e\.g\. --cors https:\/\/ui\.example\.com, --cors "\*" \(the default\) or --cors off/)
    const badDeploy = await runReg(['deploy', tree, '--backend', 'nginx', '--dest', path.join(work, 'never'), '--cors', 'ui.example'])
    assert.equal(badDeploy.code, 1)
    assert.match(badDeploy.stderr, /--cors "ui\.example" is not an origin, "\*" or "off"/)
  })

  it('netlify: _headers gives every path the CORS headers (one rule, no conflicts), read through both header matchings; --cors off leaves them out', async () => {
    const fake = await startFakeNetlify()
    try {
      const deployTo = (...extra: string[]) => runReg(['deploy', tree, '--backend', 'netlify', '--site', fake.siteName, '--api-url', fake.apiUrl, '--json', ...extra], {env: {NETLIFY_AUTH_TOKEN: fake.token}})
      const deployed = await deployTo()
      assert.equal(deployed.code, 0, deployed.stderr)
      const headers = fake.publishedFiles().get('/_headers')?.toString('utf8') ?? ''
      assert.ok(headers.endsWith(`\n/*\n  Access-Control-Allow-Origin: *\n  Access-Control-Expose-Headers: ${EXPOSED}\n  Access-Control-Allow-Methods: GET, HEAD\n  Access-Control-Allow-Headers: ${CORS_ALLOW_HEADERS.join(', ')}\n  Access-Control-Max-Age: ${CORS_MAX_AGE_SECONDS}\n`), headers.slice(-600))
      for (const matching of ['request-path', 'rewritten-path'] as const) {
        // The interpreter refuses two rules setting one header: the CORS rule must not collide.
        const host = await startHeaderFileHost(fake.publishedFiles(), matching)
        try {
          for (const urlPath of [`/v2/team/app/blobs/${image.layerDigest}`, '/v2/team/app/manifests/1.0', '/v2/', '/v2/team/app/manifests/nope']) {
            const res = await fetch(host.url + urlPath, {headers: {Origin: pageOrigin}})
            assert.ok(res.status === 200 || res.status === 404, `${urlPath}: ${res.status}`)
            assert.equal(res.headers.get('access-control-allow-origin'), '*', `${matching} ${urlPath}`)
            assert.equal(res.headers.get('access-control-expose-headers'), EXPOSED, `${matching} ${urlPath}`)
          }
        } finally {
          await host.stop()
        }
      }
      const off = await deployTo('--cors', 'off')
      assert.equal(off.code, 0, off.stderr)
      assert.ok(!fake.publishedFiles().get('/_headers')?.toString('utf8').includes('Access-Control'))
    } finally {
      await fake.stop()
    }
  })
})

describe('nginx after a deploy that moves a tag', () => {
  after(removeTempDirs)

  it('says how to reload (exact text) and serves the old manifest until then; --reload serves the new one; nginx.conf has its own pid file', async () => {
    const work = await tempDir()
    const first = await treeOf(work, 'first', 'first\n')
    const second = await treeOf(work, 'second', 'second\n')
    const out = path.join(work, 'out')
    const port = await freePort()
    const deploy = (tree: string, ...extra: string[]) => runReg(['deploy', tree, '--backend', 'nginx', '--dest', out, '--listen', `127.0.0.1:${port}`, '--server-name', '127.0.0.1', ...extra])
    const initial = await deploy(first.tree)
    assert.equal(initial.code, 0, initial.stderr)
    assert.ok(initial.stdout.includes(`nginx: start it with: nginx -p ${out} -c nginx.conf  (or include registry-maps.conf at http level and registry.conf in a server block of your nginx)\n`), initial.stdout)
    assert.match(await readFile(path.join(out, 'nginx.conf'), 'utf8'), /^pid nginx\.pid;$/m)
    await makeServable(out)
    const nginx = await startNginx(out, port)
    try {
      // The master's pid, in the deploy's directory: not /run/nginx.pid.
      const pid = Number(await readFile(path.join(out, 'nginx.pid'), 'utf8'))
      assert.ok(pid > 0)
      process.kill(pid, 0)
      assert.equal(await manifestDigest(nginx.url), first.image.manifestDigest)

      const moved = await deploy(second.tree)
      assert.equal(moved.code, 0, moved.stderr)
      assert.ok(moved.stdout.includes(`nginx: the tags changed: nginx serves the old ones until it reloads: nginx -p ${out} -c nginx.conf -s reload  (or deploy with --reload; nginx -s reload where your own nginx includes registry.conf)\n`), moved.stdout)
      assert.equal(await manifestDigest(nginx.url), first.image.manifestDigest, 'nginx has not read the new map yet')

      const unchanged = await deploy(second.tree)
      assert.equal(unchanged.code, 0, unchanged.stderr)
      assert.ok(!unchanged.stdout.includes('nginx: '), 'nothing changed since the last deploy: no note')

      const reloaded = await deploy(second.tree, '--reload')
      assert.equal(reloaded.code, 0, reloaded.stderr)
      assert.ok(reloaded.stdout.includes(`nginx: reloaded (nginx -p ${out} -c nginx.conf -s reload): it serves this deploy's tags\n`), reloaded.stdout)
      // A reload starts new workers and lets the old ones finish: wait for the new map, boundedly.
      await waitUntil('nginx serves the moved tag', async () => (await manifestDigest(nginx.url)) === second.image.manifestDigest)
    } finally {
      await nginx.stop()
    }
    const notRunning = await deploy(first.tree, '--reload')
    assert.equal(notRunning.code, 1)
    assert.ok(notRunning.stderr.includes(`--reload: nginx -p ${out} -c nginx.conf -s reload failed: open() "${out}/nginx.pid" failed (2: No such file or directory)`), notRunning.stderr)
    assert.ok(notRunning.stderr.includes(`the deploy is complete; start nginx with nginx -p ${out} -c nginx.conf, or reload the nginx that serves it yourself`), notRunning.stderr)
  })
})

describe('--public-url: the registry URL and a docker pull line', () => {
  after(removeTempDirs)

  it('in the output and --json, from the flag or the config file\'s url; without it, HOST and how to name it', async () => {
    const work = await tempDir()
    const {tree} = await treeOf(work, 'url', 'url\n')
    const dest = path.join(work, 'public')
    const text = await runReg(['deploy', tree, '--backend', 'dir', '--dest', dest, '--public-url', 'https://registry.example.com/'])
    assert.equal(text.code, 0, text.stderr)
    assert.ok(text.stdout.endsWith('registry: https://registry.example.com\npull: docker pull registry.example.com/team/app:1.0\n'), text.stdout)
    const json = await runReg(['deploy', tree, '--backend', 'dir', '--dest', dest, '--public-url', 'http://127.0.0.1:8080', '--json'])
    assert.equal(json.code, 0, json.stderr)
    const report = JSON.parse(json.stdout) as {url?: string; pull?: string}
    assert.equal(report.url, 'http://127.0.0.1:8080')
    assert.equal(report.pull, 'docker pull 127.0.0.1:8080/team/app:1.0')
    const unknown = await runReg(['deploy', tree, '--backend', 'dir', '--dest', dest])
    assert.ok(unknown.stdout.endsWith('pull: docker pull HOST/team/app:1.0   (HOST: where the registry is served; --public-url https://HOST prints it here)\n'), unknown.stdout)
    assert.equal((JSON.parse((await runReg(['deploy', tree, '--backend', 'dir', '--dest', dest, '--json'])).stdout) as {url?: string}).url, undefined)

    await writeFile(path.join(work, 'reg.config.json'), JSON.stringify({url: 'https://cfg.example.com', targets: {site: {backend: 'dir', dest: 'public'}}}))
    const configured = await runReg(['deploy', tree, '--target', 'site', '--json'], {cwd: work})
    assert.equal(configured.code, 0, configured.stderr)
    assert.equal((JSON.parse(configured.stdout) as {pull?: string}).pull, 'docker pull cfg.example.com/team/app:1.0')

    const bad = await runReg(['deploy', tree, '--backend', 'dir', '--dest', dest, '--public-url', 'https://registry.example.com/sub'])
    assert.equal(bad.code, 1)
    assert.ok(bad.stderr.includes('--public-url "https://registry.example.com/sub" is not a registry URL'), bad.stderr)
    assert.ok(bad.stderr.includes('give the scheme and host a client pulls from, with no path: e.g. --public-url https://registry.example.com (the registry is served at its /v2/)'), bad.stderr)
  })
})

describe('S3: the bucket policy reg prints', () => {
  it('grants s3:GetObject on the objects and s3:ListBucket on the bucket (missing keys 404, not 403), and says why', () => {
    const settings = {provider: 's3', bucket: 'my-registry'} as S3Settings
    const refused = Object.assign(new Error('The bucket does not allow ACLs'), {name: 'AccessControlListNotSupported'})
    const error = explainS3Error(refused, settings) as Error & {hint?: string}
    assert.equal(error.message, 's3 bucket my-registry refuses ACLs (new buckets have Object Ownership "bucket owner enforced")')
    assert.equal(error.hint, `run with --acl none and make the bucket public with this bucket policy (s3:ListBucket makes a missing key 404, not 403, as clients expect; it lets anyone list the bucket's keys):
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "PublicRead",
      "Effect": "Allow",
      "Principal": "*",
      "Action": "s3:GetObject",
      "Resource": "arn:aws:s3:::my-registry/*"
    },
    {
      "Sid": "PublicListSoMissingKeysAre404",
      "Effect": "Allow",
      "Principal": "*",
      "Action": "s3:ListBucket",
      "Resource": "arn:aws:s3:::my-registry"
    }
  ]
}`)
    assert.deepEqual(publicReadPolicy('my-registry'), JSON.parse(error.hint!.slice(error.hint!.indexOf('{'))))
  })
})

describe('S3: the bucket CORS configuration where the endpoint cannot or may not', () => {
  const saved = {...process.env}
  after(async () => {
    nock.cleanAll()
    nock.enableNetConnect()
    process.env = saved
    await removeTempDirs()
  })

  /** An endpoint that takes every object and answers the bucket's CORS configuration with `status` and `code`. */
  const endpoint = (origin: string, status: number, code: string) => nock(origin).persist()
    .get(/[?&]cors/).reply(status, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>no</Message></Error>`, {'Content-Type': 'application/xml'})
    .get(/\/\.reg-state\.json/).reply(404, '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>no</Message></Error>', {'Content-Type': 'application/xml'})
    .get(/.*/).reply(200, '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>', {'Content-Type': 'application/xml'})
    .put(/.*/).reply(function () {
      return this.req.headers['x-amz-copy-source'] ? [200, '<CopyObjectResult><ETag>"x"</ETag></CopyObjectResult>'] : [200, '', {ETag: '"x"'}]
    })

  it('no bucket CORS API (501 NotImplemented): the deploy completes with a note; AccessDenied: what to grant, or --cors off', async () => {
    const {tree} = await treeOf(await tempDir(), 'nock', 'nock\n')
    Object.assign(process.env, {AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret', AWS_REGION: 'us-east-1'})
    delete process.env.AWS_PROFILE
    nock.disableNetConnect()
    endpoint('http://no-cors.example.invalid', 501, 'NotImplemented')
    const report = await deployTree(tree, await BACKENDS.create('s3', {bucket: 'reg', endpoint: 'http://no-cors.example.invalid', 'force-path-style': true}))
    assert.deepEqual(report.messages, ['s3: this endpoint has no bucket CORS API (NotImplemented): browsers on other origins cannot read the registry; pass --cors off to skip this step'])
    endpoint('http://denied.example.invalid', 403, 'AccessDenied')
    await assert.rejects(deployTree(tree, await BACKENDS.create('s3', {bucket: 'reg', endpoint: 'http://denied.example.invalid', 'force-path-style': true, retries: 0})), (error: Error & {hint?: string}) => {
      assert.equal(error.message, 's3 bucket reg: may not read or set its CORS configuration (AccessDenied)')
      assert.equal(error.hint, 'grant s3:GetBucketCORS and s3:PutBucketCORS on the bucket, or pass --cors off (browsers on other origins then cannot read the registry)')
      return true
    })
    const off = await deployTree(tree, await BACKENDS.create('s3', {bucket: 'reg', endpoint: 'http://denied.example.invalid', 'force-path-style': true, cors: 'off'}))
    assert.deepEqual(off.messages, [], '--cors off: the bucket configuration is not asked for')
    nock.cleanAll()
    nock.enableNetConnect()
  })
})

describe('containerd: a pull mirror', () => {
  after(removeTempDirs)

  it('--mirror-of prints the hosts.toml; --containerd-hosts writes it, and ctr pulls docker.io/team/app:1.0 through nginx with --hosts-dir', async () => {
    const work = await tempDir()
    const {tree, image} = await treeOf(work, 'mirror', 'mirror\n')
    const out = path.join(work, 'out')
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const expected = `# Generated by reg: containerd pulls docker.io images through the registry at ${url} first.
# Put it at <config_path>/docker.io/hosts.toml (containerd's registry config_path, e.g. /etc/containerd/certs.d; ctr --hosts-dir).
server = "https://registry-1.docker.io"

[host."${url}"]
  capabilities = ["pull", "resolve"]
`
    const nginxFlags = ['--backend', 'nginx', '--dest', out, '--listen', `127.0.0.1:${port}`, '--server-name', '127.0.0.1']
    const noUrl = await runReg(['deploy', tree, ...nginxFlags, '--mirror-of', 'docker.io'])
    assert.equal(noUrl.code, 1)
    assert.ok(noUrl.stderr.includes('--mirror-of docker.io needs the registry\'s URL'), noUrl.stderr)
    assert.ok(noUrl.stderr.includes('pass --public-url https://HOST (where clients reach this registry), or set url in the config file'), noUrl.stderr)
    await assert.rejects(access(out), 'refused before anything was written')
    const badName = await runReg(['deploy', tree, ...nginxFlags, '--public-url', url, '--mirror-of', '../etc'])
    assert.equal(badName.code, 1)
    assert.ok(badName.stderr.includes('--mirror-of "../etc" is not a registry host name'), badName.stderr)

    const printed = await runReg(['deploy', tree, ...nginxFlags, '--public-url', url, '--mirror-of', 'docker.io'])
    assert.equal(printed.code, 0, printed.stderr)
    assert.ok(printed.stdout.includes(`containerd: docker.io/hosts.toml (in containerd's config_path, e.g. /etc/containerd/certs.d) for pulls of docker.io through ${url}:\n${expected}`), printed.stdout)
    const hostsDir = path.join(work, 'certs.d')
    const written = await runReg(['deploy', tree, ...nginxFlags, '--public-url', url, '--containerd-hosts', hostsDir])
    assert.equal(written.code, 0, written.stderr)
    const file = path.join(hostsDir, 'docker.io', 'hosts.toml')
    assert.ok(written.stdout.includes(`containerd: wrote ${file}: pulls of docker.io go through ${url} first\n`), written.stdout)
    assert.equal(await readFile(file, 'utf8'), expected)

    await makeServable(out)
    const nginx = await startNginx(out, port)
    const containerdDir = path.join(work, 'containerd')
    await mkdir(containerdDir, {recursive: true})
    await writeFile(path.join(containerdDir, 'config.toml'), 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
    const address = path.join(containerdDir, 'containerd.sock')
    const containerd = spawn(requireTool('containerd'), ['--config', path.join(containerdDir, 'config.toml'), '--root', path.join(containerdDir, 'root'), '--state', path.join(containerdDir, 'state'), '--address', address], {stdio: 'ignore'})
    try {
      requireTool('ctr')
      await waitUntil(`containerd answers on ${address}`, () => run('ctr', ['--address', address, 'version'], 5000).then(() => true, () => false), {attempts: 100, intervalMs: 100})
      const ctr = (...args: string[]) => run('ctr', ['--address', address, '--namespace', 'reg-mirror', ...args])
      // No network here: the pull can only succeed through the mirror.
      await ctr('images', 'pull', '--hosts-dir', hostsDir, 'docker.io/team/app:1.0')
      const listing = await ctr('images', 'ls')
      const line = listing.split('\n').find((l) => l.split(/\s+/)[0] === 'docker.io/team/app:1.0')
      assert.equal(line?.split(/\s+/)[2], image.manifestDigest, listing)
    } finally {
      containerd.kill('SIGTERM')
      await new Promise((resolve) => (containerd.exitCode === null ? containerd.once('exit', resolve) : resolve(undefined)))
      await nginx.stop()
    }
  })
})
