// reg serve --push: real clients push (skopeo copy, podman push, ctr push) into the tree; what they
// pushed is pulled back (skopeo, ctr) with the same digests and deploys; bad uploads and uploads cut
// by a crash never become visible.
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {readdir, readFile, stat, writeFile} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {setTimeout as sleep} from 'node:timers/promises'
import {startRegistryServer} from '../src/server/registry-server.js'
import {type Containerd, podmanPrivateState, run, skopeoCopyDigest, skopeoInspectDigest, startContainerd} from './clients.js'
import {buildCoreFixtures} from './fixtures.js'
import {writeHtpasswd} from './distribution.js'
import {requireTool} from './static-hosts.js'
import {removeTempDirs, runReg, type ServeProcess, startServe, tempDir, writeTinyIndexLayout, writeTinyOciLayout} from './support.js'

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex')

describe('reg serve --push', () => {
  let work: string
  let server: ServeProcess
  let containerd: Containerd
  let single: {manifestDigest: string}
  let multi: {indexDigest: string}

  before(async () => {
    for (const tool of ['skopeo', 'podman', 'ctr']) requireTool(tool)
    work = await tempDir()
    single = await writeTinyOciLayout(path.join(work, 'single'), {'a.txt': 'pushed\n'}, '1.0')
    multi = await writeTinyIndexLayout(path.join(work, 'multi'), ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], 'multi')
    server = await startServe(path.join(work, 'tree'), ['--push'])
    containerd = await startContainerd(path.join(work, 'containerd'))
  })
  after(async () => {
    await containerd?.stop()
    await server?.stop()
    await removeTempDirs()
  })

  it('skopeo pushes an image and a multi-arch index; skopeo and ctr pull them back, digests unchanged', async () => {
    await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${path.join(work, 'single')}:1.0`, `docker://${server.hostPort}/team/app:1.0`])
    await run('skopeo', ['copy', '-q', '--all', '--dest-tls-verify=false', `oci:${path.join(work, 'multi')}:multi`, `docker://${server.hostPort}/team/multi:3`])
    assert.equal(await skopeoInspectDigest(server.hostPort, 'team/app:1.0'), single.manifestDigest)
    assert.equal(await skopeoInspectDigest(server.hostPort, 'team/multi:3'), multi.indexDigest)
    assert.equal(await containerd.pull(`${server.hostPort}/team/multi:3`, {allPlatforms: true}), multi.indexDigest)
    const ls = await runReg(['ls', path.join(work, 'tree'), '--json'])
    assert.deepEqual((JSON.parse(ls.stdout) as {images: Array<{repository: string; tag: string}>}).images.map((i) => `${i.repository}:${i.tag}`), ['team/app:1.0', 'team/multi:3'])
  })

  it('podman pushes (chunked uploads), two clients pushing the same blobs at once both succeed', async () => {
    const podman = podmanPrivateState(path.join(work, 'podman'))
    await run('podman', [...podman, 'pull', '-q', '--tls-verify=false', `${server.hostPort}/team/app:1.0`])
    await Promise.all([
      run('podman', [...podman, 'push', '-q', '--tls-verify=false', `${server.hostPort}/team/app:1.0`, `${server.hostPort}/podman/a:1`]),
      run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${path.join(work, 'single')}:1.0`, `docker://${server.hostPort}/skopeo/b:1`]),
    ])
    assert.equal(await skopeoInspectDigest(server.hostPort, 'podman/a:1'), single.manifestDigest)
    assert.equal(await skopeoInspectDigest(server.hostPort, 'skopeo/b:1'), single.manifestDigest)
    assert.equal(await containerd.pull(`${server.hostPort}/podman/a:1`), single.manifestDigest)
  })

  it('refuses a manifest whose blobs are missing, and an upload whose bytes do not match its digest', async () => {
    await writeFile(path.join(work, 'huge'), Buffer.alloc(5 * 1024 * 1024, 0x20))
    const missing = sha('never pushed')
    const manifest = JSON.stringify({schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: {mediaType: 'application/vnd.oci.image.config.v1+json', digest: missing, size: 12}, layers: []})
    const refused = await fetch(`${server.url}/v2/team/bad/manifests/1`, {method: 'PUT', body: manifest, headers: {'Content-Type': 'application/vnd.oci.image.manifest.v1+json'}})
    assert.equal(refused.status, 400)
    assert.equal(((await refused.json()) as {errors: Array<{code: string}>}).errors[0].code, 'MANIFEST_BLOB_UNKNOWN')
    assert.equal((await fetch(`${server.url}/v2/team/bad/tags/list`)).status, 404)
    const huge = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PUT', '--data-binary', `@${path.join(work, 'huge')}`, `${server.url}/v2/team/bad/manifests/2`])
    assert.equal(huge, '413', 'a manifest over 4 MiB is refused without reading it all')
    // monolithic upload with a wrong digest: refused, and nothing under either digest
    const bad = await fetch(`${server.url}/v2/team/app/blobs/uploads/?digest=${sha('other bytes')}`, {method: 'POST', body: 'these bytes'})
    assert.equal(bad.status, 400)
    assert.equal((await fetch(`${server.url}/v2/team/app/blobs/${sha('other bytes')}`, {method: 'HEAD'})).status, 404)
    assert.equal((await fetch(`${server.url}/v2/team/app/blobs/${sha('these bytes')}`, {method: 'HEAD'})).status, 404)
    // a chunked upload that never finishes is never visible
    const started = await fetch(`${server.url}/v2/team/app/blobs/uploads/`, {method: 'POST'})
    assert.equal(started.status, 202)
    const location = started.headers.get('location')!
    const patched = await fetch(server.url + location, {method: 'PATCH', body: 'half of it', headers: {'Content-Range': '0-9'}})
    assert.equal(patched.status, 202)
    assert.equal(patched.headers.get('range'), '0-9')
    assert.equal((await fetch(`${server.url}/v2/team/app/blobs/${sha('half of it')}`, {method: 'HEAD'})).status, 404)
    const finished = await fetch(`${server.url}${location}?digest=${sha('half of it, and the rest')}`, {method: 'PUT', body: ', and the rest'})
    assert.equal(finished.status, 201)
    assert.equal(finished.headers.get('docker-content-digest'), sha('half of it, and the rest'))
    // cross-repository mount of a blob the registry has
    const mounted = await fetch(`${server.url}/v2/other/repo/blobs/uploads/?mount=${sha('half of it, and the rest')}&from=team/app`, {method: 'POST'})
    assert.equal(mounted.status, 201)
  })

  it('--push-auth: pushing needs a user of the htpasswd file, reading does not; --allow-delete removes tags', async () => {
    const htpasswd = await writeHtpasswd(path.join(work, 'htpasswd'), 'pusher', 'pass-word')
    const guarded = await startServe(path.join(work, 'guarded'), ['--push', '--push-auth', htpasswd, '--allow-delete'])
    try {
      const ref = `docker://${guarded.hostPort}/team/app:1.0`
      await assert.rejects(run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${path.join(work, 'single')}:1.0`, ref]), /401|unauthorized|authentication required/i)
      await assert.rejects(run('skopeo', ['copy', '-q', '--dest-tls-verify=false', '--dest-creds', 'pusher:wrong', `oci:${path.join(work, 'single')}:1.0`, ref]), /401|unauthorized|authentication required/i)
      await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', '--dest-creds', 'pusher:pass-word', `oci:${path.join(work, 'single')}:1.0`, ref])
      assert.equal(await skopeoInspectDigest(guarded.hostPort, 'team/app:1.0'), single.manifestDigest, 'reads stay anonymous')
      const basic = 'Basic ' + Buffer.from('pusher:pass-word').toString('base64')
      assert.equal((await fetch(`${guarded.url}/v2/team/app/manifests/1.0`, {method: 'DELETE'})).status, 401)
      assert.equal((await fetch(`${guarded.url}/v2/team/app/manifests/1.0`, {method: 'DELETE', headers: {Authorization: basic}})).status, 202)
      assert.equal((await fetch(`${guarded.url}/v2/team/app/manifests/1.0`)).status, 404)
    } finally {
      await guarded.stop()
    }
    const notAllowed = await fetch(`${server.url}/v2/team/app/manifests/1.0`, {method: 'DELETE'})
    assert.equal(notAllowed.status, 405, 'without --allow-delete')
  })

  it('ctr pushes every core fixture; skopeo pulls them back, digests identical; reg deploy --backend dir publishes them', async () => {
    const fixtures = await buildCoreFixtures(path.join(work, 'fixtures'))
    const source = await startRegistryServer(fixtures.tree, {port: 0})
    const tree = path.join(work, 'ctr-pushed')
    const target = await startServe(tree, ['--push'])
    try {
      for (const image of fixtures.images) {
        await containerd.push(`${source.url.replace('http://', '')}/${image.name}:${image.tag}`, `${target.hostPort}/ctr/${image.name}:${image.tag}`)
        const copy = path.join(work, 'ctr-copies', `${image.name}_${image.tag}`.replaceAll('/', '_'))
        assert.equal(await skopeoCopyDigest(target.hostPort, `ctr/${image.name}:${image.tag}`, copy), image.digest, `${image.name}:${image.tag}`)
      }
    } finally {
      await target.stop()
      await source.close()
    }
    const out = path.join(work, 'ctr-deployed')
    const deployed = await runReg(['deploy', tree, '--backend', 'dir', '--dest', out])
    assert.equal(deployed.code, 0, deployed.stderr)
    for (const image of fixtures.images) {
      assert.equal(sha(await readFile(path.join(out, 'v2', 'ctr', image.name, 'manifests', image.tag))), image.digest)
    }
  })

  it('a server killed mid-upload leaves no partial blob; restarted, it takes a fresh push', async () => {
    const tree = path.join(work, 'crash')
    const blob = randomBytes(4 << 20)
    const digest = sha(blob)
    const half = blob.length / 2
    const crashing = await startServe(tree, ['--push'])
    const started = await fetch(`${crashing.url}/v2/team/crash/blobs/uploads/`, {method: 'POST'})
    assert.equal(started.status, 202)
    const location = new URL(started.headers.get('location')!, crashing.url)
    // A chunked upload whose PATCH is still sending when the server dies.
    const patch = http.request(location, {method: 'PATCH', headers: {'Content-Type': 'application/octet-stream', 'Content-Range': `0-${blob.length - 1}`, 'Content-Length': blob.length}})
    patch.on('error', () => undefined)
    patch.write(blob.subarray(0, half))
    const partial = path.join(`${tree}.reg-uploads`, location.pathname.split('/').pop()!)
    let received = 0
    for (let i = 0; i < 200 && received < half; i++) {
      await sleep(25)
      received = await stat(partial).then((s) => s.size, () => 0)
    }
    assert.equal(received, half, 'the server had half of the blob when it was killed')
    await crashing.kill()
    patch.destroy()
    const restarted = await startServe(tree, ['--push'])
    try {
      assert.equal((await fetch(`${restarted.url}/v2/team/crash/blobs/${digest}`, {method: 'HEAD'})).status, 404)
      const stored = await readdir(path.join(tree, 'blobs', 'sha256'))
      assert.ok(!stored.includes(digest.slice(7)), 'no such file in the blob store')
      assert.deepEqual(stored.filter((f) => f.startsWith('.tmp-')), [])
      const fresh = await fetch(`${restarted.url}/v2/team/crash/blobs/uploads/?digest=${digest}`, {method: 'POST', body: new Uint8Array(blob)})
      assert.equal(fresh.status, 201)
      const head = await fetch(`${restarted.url}/v2/team/crash/blobs/${digest}`, {method: 'HEAD'})
      assert.equal(head.status, 200)
      assert.equal(head.headers.get('docker-content-digest'), digest)
      await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${path.join(work, 'single')}:1.0`, `docker://${restarted.hostPort}/team/crash:1`])
      assert.equal(await skopeoInspectDigest(restarted.hostPort, 'team/crash:1'), single.manifestDigest)
    } finally {
      await restarted.stop()
    }
  })

  it('without --push the server stays read-only', async () => {
    const readOnly = await startServe(path.join(work, 'tree'), [])
    try {
      const res = await fetch(`${readOnly.url}/v2/team/app/blobs/uploads/`, {method: 'POST'})
      assert.equal(res.status, 405)
      assert.equal(((await res.json()) as {errors: Array<{code: string}>}).errors[0].code, 'UNSUPPORTED')
      assert.equal(await skopeoInspectDigest(readOnly.hostPort, 'team/app:1.0'), single.manifestDigest)
    } finally {
      await readOnly.stop()
    }
  })
})
