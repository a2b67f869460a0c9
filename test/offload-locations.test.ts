// Offload locations are parsed and checked before anything is asked of them: a redirect is never
// built from text that a host configuration would read as syntax. Offload needs a host that can
// redirect, and works from a config file's target as from flags.
import assert from 'node:assert/strict'
import {createReadStream} from 'node:fs'
import {mkdir, readdir, readFile, stat, writeFile} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {nginxOffloadMap} from '../plugins/backend-nginx/config.js'
import {apacheOffloadRules} from '../plugins/backend-apache/config.js'
import {offloadedObject, offloadRedirects, offloadTarget, parseOffloadClients, parseOffloadLocation} from '../src/publish/offload.js'
import {freePort} from './static-hosts.js'
import {removeTempDirs, runReg, tempDir, type TinyImage, writeTinyOciLayout} from './support.js'

const DIGEST = `sha256:${'ab'.repeat(32)}`

describe('offload locations', () => {
  it('docker://HOST/NAME and http(s)://HOST/NAME are registry layouts; {digest} and {hex} fill a URL', () => {
    const hub = parseOffloadLocation('docker://registry.example:5000/library/debian')
    assert.deepEqual(hub.registry, {host: 'registry.example:5000', plainHttp: false, repository: 'library/debian'})
    assert.equal(hub.blobUrl(DIGEST), `https://registry.example:5000/v2/library/debian/blobs/${DIGEST}`)
    const plain = parseOffloadLocation('http://127.0.0.1:8080/base/app/')
    assert.deepEqual(plain.registry, {host: '127.0.0.1:8080', plainHttp: true, repository: 'base/app'})
    assert.equal(plain.blobUrl(DIGEST), `http://127.0.0.1:8080/v2/base/app/blobs/${DIGEST}`)
    const bucket = parseOffloadLocation('https://Bucket.Example/layout/blobs/sha256/{hex}')
    assert.equal(bucket.registry, undefined)
    assert.equal(bucket.blobUrl(DIGEST), `https://bucket.example/layout/blobs/sha256/${'ab'.repeat(32)}`)
    assert.equal(parseOffloadLocation('https://b.example/x/{digest}').blobUrl(DIGEST), `https://b.example/x/${DIGEST}`)
  })

  it('refuses what a redirect cannot be built from: other schemes, credentials, queries, quotes, spaces, $, %, unknown placeholders, bad names', () => {
    const refused: Array<[string, RegExp]> = [
      ['ftp://h.example/a', /only docker:\/\/, https:\/\/ and http:\/\/ locations/],
      ['file:///etc/passwd', /only docker:\/\//],
      ['https://user:secret@h.example/a', /credentials cannot be part of a location/],
      ['https://h.example/a?x=1', /no query or fragment/],
      ['https://h.example/a#x', /no query or fragment/],
      ['https://h.example/a"b', /only letters, digits/],
      ['https://h.example/a;return 200 x', /not a URL|only letters, digits/],
      ['https://h.example/$host/{digest}', /only letters, digits/],
      ['https://h.example/a%20b/{digest}', /only letters, digits/],
      ["https://h.example/a'b/{digest}", /only letters, digits/],
      ['https://h.example/{name}/{digest}', /the only placeholders are \{digest\} and \{hex\}/],
      ['https://h.example/{name}', /the only placeholders/],
      ['https://h.example/', /name the repository/],
      ['https://h.example/Team/App', /component "Team" is not allowed/],
      ['https://h.example/a/../b', /only letters, digits|not allowed/],
      ['not a url', /not a URL/],
      ['http:/h.example/a', /write it as SCHEME:\/\/HOST\[:PORT\]\/PATH/],
      ['http://a.example\\@b.example/n', /write it as SCHEME/],
      ['http://a.example\\b/n', /write it as SCHEME/],
      ['https://[::1]:5000/n', /write it as SCHEME/],
    ]
    for (const [spec, why] of refused) {
      assert.throws(() => parseOffloadLocation(spec), (error: Error) => {
        assert.match(error.message, new RegExp(`^--offload ${JSON.stringify(spec).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `))
        assert.match(error.message, why, spec)
        return true
      }, spec)
    }
  })

  it('a redirect target is checked again where it is written: a valid digest and a URL of the safe alphabet', () => {
    assert.equal(offloadTarget(DIGEST, 'https://h.example/v2/a/blobs/x'), 'https://h.example/v2/a/blobs/x')
    assert.throws(() => offloadTarget('sha256:../../x', 'https://h.example/x'), /internal: refusing the offload redirect/)
    assert.throws(() => offloadTarget(DIGEST, 'https://h.example/x" always; return 200 "y'), /internal: refusing/)
    assert.throws(() => offloadTarget(DIGEST, 'javascript:alert(1)'), /internal: refusing/)
    const blob = {path: `v2/a/blobs/${DIGEST}`, class: 'blob' as const, repository: 'a', digest: DIGEST, size: 3, headers: {}}
    // A Location smuggled into a routed object's headers by anything else is refused, not rendered.
    assert.throws(() => offloadRedirects([{...blob, headers: {Location: 'https://h.example/$host'}}]), /internal: refusing/)
    const redirects = offloadRedirects([offloadedObject(blob, 'https://h.example/v2/b/blobs/x')])
    assert.deepEqual([...redirects], [[DIGEST, 'https://h.example/v2/b/blobs/x']])
    assert.deepEqual(nginxOffloadMap(redirects).slice(5, 9), ['map $reg_uri_blob $reg_offload {', '    default "";', `    "${DIGEST}" "https://h.example/v2/b/blobs/x";`, '}'])
    assert.match(apacheOffloadRules(redirects), new RegExp(`RewriteRule "\\^v2/\\.\\+/blobs/${DIGEST}\\$" "https://h\\.example/v2/b/blobs/x" \\[R=302,L\\]`))
  })

  it('--offload-clients takes known clients only', () => {
    assert.deepEqual(parseOffloadClients(undefined), ['containerd', 'docker-containerd', 'docker', 'podman', 'skopeo', 'cri-o'])
    assert.deepEqual(parseOffloadClients(['containerd', 'containerd']), ['containerd'])
    assert.throws(() => parseOffloadClients(['crictl']), /--offload-clients: unknown client "crictl"/)
  })
})

describe('reg deploy --offload (hosts and config targets)', () => {
  let work: string
  let layout: string
  let image: TinyImage
  let tree: string
  let layoutHost: http.Server
  let location: string

  before(async () => {
    work = await tempDir('reg-offload-loc-')
    layout = path.join(work, 'layout')
    image = await writeTinyOciLayout(layout, {'a.txt': 'offload me\n'.repeat(100)}, '1')
    tree = path.join(work, 'tree')
    assert.equal((await runReg(['build', `oci:${layout}:1=team/app:1`, '-o', tree])).code, 0)
    // An OCI layout served as files is a folder of blobs: https://…/blobs/sha256/{hex}.
    layoutHost = http.createServer(async (req, res) => {
      // Redirects: to the blob (followed), to itself (endless), to another scheme.
      const redirect = /^\/(via|loop|file)\/sha256:([a-f0-9]{64})$/.exec(req.url ?? '')
      if (redirect) {
        const target = {via: `/blobs/sha256/${redirect[2]}`, loop: req.url ?? '', file: 'file:///etc/passwd'}[redirect[1] as 'via' | 'loop' | 'file']
        return res.writeHead(302, {Location: target}).end()
      }
      const hex = /^\/blobs\/sha256\/([a-f0-9]{64})$/.exec(req.url ?? '')?.[1]
      const file = hex ? path.join(layout, 'blobs/sha256', hex) : undefined
      const size = file ? await stat(file).then((s) => s.size, () => undefined) : undefined
      if (!file || size === undefined) return res.writeHead(404).end()
      res.writeHead(200, {'Content-Length': size})
      if (req.method === 'HEAD') return res.end()
      createReadStream(file).pipe(res)
    })
    const port = await freePort()
    await new Promise<void>((resolve) => layoutHost.listen(port, '127.0.0.1', () => resolve()))
    location = `http://127.0.0.1:${port}/blobs/sha256/{hex}`
  })
  after(async () => {
    layoutHost.closeAllConnections()
    await new Promise((resolve) => layoutHost.close(resolve))
    await removeTempDirs()
  })

  it('a host that cannot redirect (dir) is refused before anything is written', async () => {
    const out = path.join(work, 'dir-out')
    const result = await runReg(['deploy', tree, '--backend', 'dir', '--dest', out, '--offload', location])
    assert.equal(result.code, 1)
    assert.equal(result.stderr.trim(), [
      'reg: error: --offload: dir cannot answer a blob\'s URL with a redirect to another host',
      '  hint: offload with a backend that can: nginx (a 302 in registry.conf), apache (a RewriteRule [R=302] in .htaccess), netlify (a 302 rule in _redirects), s3 (a website redirect object, answered 301 by the bucket\'s website endpoint)',
    ].join('\n'))
    assert.deepEqual(await readdir(out).catch(() => []), [])
  })

  it('a config target\'s offload and offload-clients are used as the flags are; --dry-run keeps no verdict', async () => {
    const out = path.join(work, 'nginx-out')
    const config = path.join(work, 'reg.config.json')
    await writeFile(config, JSON.stringify({targets: {prod: {backend: 'nginx', dest: out, offload: [location], 'offload-clients': ['containerd', 'podman']}}}))
    const dry = await runReg(['deploy', tree, '--config', config, '--target', 'prod', '--dry-run', '--json'])
    assert.equal(dry.code, 0, dry.stderr)
    assert.equal((JSON.parse(dry.stdout) as {offload: {locations: Array<{blobs: number}>}}).offload.locations[0].blobs, 2)
    await assert.rejects(stat(path.join(out, '.reg-offload.json')), 'a dry run writes no verdict')
    const result = await runReg(['deploy', tree, '--config', config, '--target', 'prod'])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, new RegExp(`^offload ${location.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: 2 blobs \\(\\d+ bytes\\) served from there; every client can follow it$`, 'm'))
    const maps = await readFile(path.join(out, 'registry-maps.conf'), 'utf8')
    for (const digest of [image.configDigest, image.layerDigest]) {
      assert.ok(maps.includes(`"${digest}" "${location.replace('{hex}', digest.slice(7))}";`), digest)
    }
    assert.deepEqual(await readdir(path.join(out, '_registry/blobs')).catch(() => []), [])
  })

  it('a damaged offload state is refused with what to do, and nothing is written', async () => {
    const out = path.join(work, 'damaged-out')
    await mkdir(out, {recursive: true})
    await writeFile(path.join(out, '.reg-offload.json'), '{"verdicts": {"x": {"sha256:00": {"size": 1, "access": "anonymous"}}}}')
    const result = await runReg(['deploy', tree, '--backend', 'nginx', '--dest', out, '--offload', location])
    assert.equal(result.code, 1)
    assert.equal(result.stderr.trim(), `reg: error: ${path.join(out, '.reg-offload.json')} is corrupt\n  hint: delete it: the next deploy checks every offloaded blob again`)
    assert.deepEqual((await readdir(out)).sort(), ['.reg-offload.json'])
  })

  it('a location\'s redirects are followed to the blob, at most 5 hops and only to http(s)', async () => {
    const base = location.replace('/blobs/sha256/{hex}', '')
    const offload = async (prefix: string) => {
      const result = await runReg(['deploy', tree, '--backend', 'nginx', '--dest', path.join(work, `redirect-${prefix}`), '--json', '--offload', `${base}/${prefix}/{digest}`])
      assert.equal(result.code, 0, result.stderr)
      return (JSON.parse(result.stdout) as {offload: {locations: Array<{blobs: number}>; rejected: Array<{why: string}>}}).offload
    }
    assert.equal((await offload('via')).locations[0].blobs, 2)
    for (const prefix of ['loop', 'file']) {
      const report = await offload(prefix)
      assert.equal(report.locations[0].blobs, 0, prefix)
      assert.deepEqual(report.rejected.map((r) => r.why), ['answered 302', 'answered 302'], prefix)
    }
  })
})
