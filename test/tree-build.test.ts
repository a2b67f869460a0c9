// reg build: incremental and --clean builds, deterministic docker-archive conversion, atomic swaps.
import assert from 'node:assert/strict'
import {execFileSync, spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {mkdir, readdir, readFile, stat, truncate, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {after, describe, it} from 'node:test'
import type {TreeIndex} from '../src/tree/model.js'
import {EXAMPLE_LAYOUT, REPO_ROOT, removeTempDirs, runReg, tempDir, treeSnapshot, writeTinyOciLayout} from './support.js'
import {RegistryTree} from '../src/tree/registry-tree.js'

async function readIndex(tree: string): Promise<TreeIndex> {
  return (await RegistryTree.load(tree)).index
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  return 'sha256:' + hash.digest('hex')
}

describe('reg build', () => {
  after(removeTempDirs)

  it('adds to an existing tree, and --clean starts afresh', async () => {
    const work = await tempDir()
    const tree = path.join(work, 'tree')
    const other = path.join(work, 'other')
    await writeTinyOciLayout(other, {'o.txt': 'other\n'}, 'example.com/team/other:3')
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '-o', tree])).code, 0)
    const added = await runReg(['build', `oci:${other}`, '--prefix', 'acme', '-o', tree, '--json'])
    assert.equal(added.code, 0, added.stderr)
    const summary = JSON.parse(added.stdout) as {images: Array<{name: string; tag: string}>; repositories: number}
    assert.deepEqual(summary.images.map((i) => `${i.name}:${i.tag}`), ['acme/team/other:3'])
    assert.equal(summary.repositories, 2)
    assert.deepEqual(Object.keys((await readIndex(tree)).repositories).sort(), ['acme/team/other', 'examples/hello'])
    const clean = await runReg(['build', `oci:${other}`, '--clean', '-o', tree])
    assert.equal(clean.code, 0, clean.stderr)
    const index = await readIndex(tree)
    assert.deepEqual(Object.keys(index.repositories), ['team/other'])
    // nothing of the dropped image is left in the store
    const stored = new Set((await readdir(path.join(tree, 'blobs/sha256'))).map((h) => `sha256:${h}`))
    assert.deepEqual([...stored].sort(), [...new Set(index.objects.map((o) => o.digest))].sort())
  })

  it('lists what it built with reg ls', async () => {
    const tree = path.join(await tempDir(), 'tree')
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, `oci:${EXAMPLE_LAYOUT}=team/app:2`, '-o', tree])).code, 0)
    const ls = await runReg(['ls', tree, '--json'])
    assert.equal(ls.code, 0, ls.stderr)
    const listing = JSON.parse(ls.stdout) as {images: Array<{repository: string; tag: string; digest: string; platforms: string[]; size: number}>}
    const index = await readIndex(tree)
    assert.deepEqual(listing.images.map((i) => `${i.repository}:${i.tag}`), ['examples/hello:1.0', 'team/app:2'])
    const digest = index.repositories['team/app'].tags['2']
    const record = index.manifests[digest]
    assert.equal(listing.images[1].digest, digest)
    assert.deepEqual(listing.images[1].platforms, ['linux/amd64'])
    assert.equal(listing.images[1].size, record.size + record.blobs.reduce((s, b) => s + index.blobs[b].size, 0))
    const plain = await runReg(['ls', tree])
    assert.match(plain.stdout, new RegExp(`team/app:2\\t${digest}\\tlinux/amd64`))
  })

  it('turns a docker-archive into an OCI manifest: config (image ID) unchanged, layers verified and gzip-compressed deterministically', async () => {
    const work = await tempDir()
    const archive = path.join(work, 'saved.tar')
    execFileSync('skopeo', ['copy', '-q', `oci:${EXAMPLE_LAYOUT}:example.com/examples/hello:1.0`, `docker-archive:${archive}:example.com/team/saved:5`])
    const savedManifest = JSON.parse(execFileSync('tar', ['-xOf', archive, 'manifest.json'], {encoding: 'utf8'})) as Array<{Config: string}>
    const imageId = 'sha256:' + /([a-f0-9]{64})/.exec(savedManifest[0].Config)![1]
    const digests: string[] = []
    for (const name of ['one', 'two']) {
      const tree = path.join(work, name)
      const built = await runReg(['build', `docker-archive:${archive}`, '-o', tree])
      assert.equal(built.code, 0, built.stderr)
      const index = await readIndex(tree)
      const digest = index.repositories['team/saved'].tags['5']
      const manifest = JSON.parse(await readFile(path.join(tree, 'blobs/sha256', digest.slice(7)), 'utf8')) as {mediaType: string; config: {digest: string}; layers: Array<{mediaType: string; digest: string}>}
      assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json')
      assert.equal(manifest.config.digest, imageId)
      assert.equal(manifest.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip')
      // the gzip layer decompresses to the diff_id the config names
      const config = JSON.parse(await readFile(path.join(tree, 'blobs/sha256', imageId.slice(7)), 'utf8')) as {rootfs: {diff_ids: string[]}}
      const layerFile = path.join(tree, 'blobs/sha256', manifest.layers[0].digest.slice(7))
      const unzipped = path.join(work, `${name}.tar`)
      execFileSync('sh', ['-c', `gzip -dc '${layerFile}' > '${unzipped}'`])
      assert.equal(await sha256File(unzipped), config.rootfs.diff_ids[0])
      digests.push(digest)
    }
    assert.equal(digests[0], digests[1], 'a rebuild gives the same manifest digest')
  })

  it('a killed build leaves the previous tree serving, and the next build cleans up after it', async () => {
    const work = await tempDir()
    const tree = path.join(work, 'tree')
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '-o', tree])).code, 0)
    const before = await treeSnapshot(tree)
    // A source with a 1 GiB layer (a sparse file of zeros), so the build is still copying when killed.
    const big = path.join(work, 'big')
    await writeTinyOciLayout(big, {'x': 'x'}, 'big')
    const layer = path.join(work, 'layer.bin')
    await writeFile(layer, '')
    await truncate(layer, 1024 ** 3)
    const layerDigest = await sha256File(layer)
    const index = JSON.parse(await readFile(path.join(big, 'index.json'), 'utf8')) as {manifests: Array<{digest: string; size: number}>}
    const manifest = JSON.parse(await readFile(path.join(big, 'blobs/sha256', index.manifests[0].digest.slice(7)), 'utf8')) as {layers: Array<{digest: string; size: number}>}
    execFileSync('mv', [layer, path.join(big, 'blobs/sha256', layerDigest.slice(7))])
    manifest.layers[0] = {...manifest.layers[0], digest: layerDigest, size: 1024 ** 3}
    const manifestBytes = Buffer.from(JSON.stringify(manifest))
    const manifestDigest = 'sha256:' + createHash('sha256').update(manifestBytes).digest('hex')
    await writeFile(path.join(big, 'blobs/sha256', manifestDigest.slice(7)), manifestBytes)
    index.manifests[0] = {...index.manifests[0], digest: manifestDigest, size: manifestBytes.length}
    await writeFile(path.join(big, 'index.json'), JSON.stringify(index))

    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/run.js'), 'build', `oci:${big}=team/big`, '-o', tree], {stdio: 'ignore'})
    const staging = async () => (await readdir(work)).filter((n) => n.startsWith('tree.reg-staging-'))
    let copying = false
    for (let i = 0; i < 400 && !copying; i++) {
      await sleep(25)
      for (const s of await staging()) {
        const files = await readdir(path.join(work, s, 'blobs/sha256')).catch(() => [])
        for (const f of files.filter((n) => n.startsWith('.tmp-'))) {
          if ((await stat(path.join(work, s, 'blobs/sha256', f)).catch(() => undefined))?.size) copying = true
        }
      }
    }
    assert.ok(copying, 'the build never started copying the big layer')
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))
    assert.equal((await staging()).length, 1, 'the killed build left its staging directory')
    const afterKill = JSON.parse(await treeSnapshot(tree)) as {index: string; blobs: string[]}
    const expected = JSON.parse(before) as {index: string; blobs: string[]}
    assert.equal(afterKill.index, expected.index)
    assert.deepEqual(afterKill.blobs, expected.blobs)
    // the next build removes the dead build's staging directory, and one whose name gives no process
    // (pid 0 would ask about this process group, which is alive)
    await mkdir(path.join(work, 'tree.reg-staging-0-deadbeef'))
    const other = path.join(work, 'other')
    await writeTinyOciLayout(other, {'o.txt': 'o'}, 'o')
    assert.equal((await runReg(['build', `oci:${other}=team/o:1`, '-o', tree])).code, 0)
    assert.deepEqual(await staging(), [])
    assert.deepEqual(Object.keys((await readIndex(tree)).repositories).sort(), ['examples/hello', 'team/o'])
  })
})

describe('the tree as an OCI layout, and referrers', () => {
  after(removeTempDirs)

  it('is a valid OCI image layout that skopeo reads by name:tag', async () => {
    const tree = path.join(await tempDir(), 'tree')
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}=team/app:1.0`, '-o', tree])).code, 0)
    const digest = (await readIndex(tree)).repositories['team/app'].tags['1.0']
    const inspected = JSON.parse(execFileSync('skopeo', ['inspect', `oci:${tree}:team/app:1.0`], {encoding: 'utf8'})) as {Digest: string}
    assert.equal(inspected.Digest, digest)
  })

  it('serves an artifact that names a subject under the subject\'s referrers URL', async () => {
    const work = await tempDir()
    const layout = path.join(work, 'layout')
    const image = await writeTinyOciLayout(layout, {'a.txt': 'a'}, '1.0')
    const put = async (bytes: Buffer) => {
      const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex')
      await writeFile(path.join(layout, 'blobs/sha256', digest.slice(7)), bytes)
      return {digest, size: bytes.length}
    }
    const subjectSize = (await stat(path.join(layout, 'blobs/sha256', image.manifestDigest.slice(7)))).size
    const empty = await put(Buffer.from('{}'))
    const signature = await put(Buffer.from('signature bytes'))
    const artifact = await put(Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.example.signature',
      config: {mediaType: 'application/vnd.oci.empty.v1+json', ...empty},
      layers: [{mediaType: 'application/octet-stream', ...signature}],
      subject: {mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.manifestDigest, size: subjectSize},
    })))
    const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as {manifests: unknown[]}
    index.manifests.push({mediaType: 'application/vnd.oci.image.manifest.v1+json', ...artifact, annotations: {'org.opencontainers.image.ref.name': 'sha256-' + image.manifestDigest.slice(7) + '.sig'}})
    await writeFile(path.join(layout, 'index.json'), JSON.stringify(index))
    const tree = path.join(work, 'tree')
    const built = await runReg(['build', `oci:${layout}=team/app`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    const referrers = (await readIndex(tree)).objects.find((o) => o.path === `v2/team/app/referrers/${image.manifestDigest}`)
    assert.ok(referrers, 'a referrers object for the subject')
    assert.equal(referrers.headers['Content-Type'], 'application/vnd.oci.image.index.v1+json')
    const body = JSON.parse(await readFile(path.join(tree, 'blobs/sha256', referrers.digest.slice(7)), 'utf8')) as {manifests: Array<{digest: string; artifactType: string}>}
    assert.deepEqual(body.manifests.map((m) => [m.digest, m.artifactType]), [[artifact.digest, 'application/vnd.example.signature']])
  })
})
