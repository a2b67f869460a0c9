// Hostile input against the shared core (issue 12): descriptors that lie about stored blobs, graphs
// that explode, names that are object-prototype members, a tampered registry.json, outputs that would
// delete the user's files, and the README's Apache virtual host. Each case failed before its fix.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {mkdir, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {MAX_GRAPH_NODES} from '../src/core/limits.js'
import {startRegistryServer} from '../src/server/registry-server.js'
import {BlobStore} from '../src/tree/blob-store.js'
import {GraphIngester} from '../src/tree/ingest.js'
import {OciLayoutSource} from '../src/sources/oci-layout.js'
import {RegistryTree} from '../src/tree/registry-tree.js'
import {freePort, makeServable, requireTool, startApache} from './static-hosts.js'
import {REPO_ROOT, removeTempDirs, runReg, tempDir, treeSnapshot, writeTinyOciLayout} from './support.js'

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex')
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'

/** A hand-made OCI layout: put blobs, then name entries in index.json. */
async function layout(dir: string): Promise<{put(bytes: Buffer | string): Promise<{digest: string; size: number}>; index(entries: Array<{mediaType: string; digest: string; size: number; ref: string}>): Promise<void>}> {
  await mkdir(path.join(dir, 'blobs', 'sha256'), {recursive: true})
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({imageLayoutVersion: '1.0.0'}))
  return {
    async put(bytes) {
      const buffer = Buffer.from(bytes)
      await writeFile(path.join(dir, 'blobs', 'sha256', sha(buffer).slice(7)), buffer)
      return {digest: sha(buffer), size: buffer.length}
    },
    async index(entries) {
      await writeFile(path.join(dir, 'index.json'), JSON.stringify({schemaVersion: 2, mediaType: OCI_INDEX, manifests:
        entries.map(({ref, ...d}) => ({...d, annotations: {'org.opencontainers.image.ref.name': ref}}))}))
    },
  }
}

function imageManifest(config: {digest: string; size: number}, layers: Array<{digest: string; size: number}>): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: {mediaType: 'application/vnd.oci.image.config.v1+json', ...config},
    layers: layers.map((l) => ({mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l})),
  }))
}

describe('hostile input against the core', () => {
  let work: string
  before(async () => {
    work = await tempDir('reg-sec-core-')
  })
  after(removeTempDirs)

  it('a descriptor cannot change the size of a blob the tree already has (build)', async () => {
    const tree = path.join(work, 'size-tree')
    const honest = path.join(work, 'size-honest')
    const image = await writeTinyOciLayout(honest, {'a.txt': 'shared layer\n'}, 'team/app:1')
    assert.equal((await runReg(['build', `oci:${honest}`, '-o', tree])).code, 0)
    const before = await treeSnapshot(tree)
    const layerSize = (await stat(path.join(honest, 'blobs', 'sha256', image.layerDigest.slice(7)))).size

    const liar = path.join(work, 'size-liar')
    const l = await layout(liar)
    const config = await l.put(JSON.stringify({os: 'linux', architecture: 'amd64', rootfs: {type: 'layers', diff_ids: []}}))
    const manifest = await l.put(imageManifest(config, [{digest: image.layerDigest, size: 1}]))
    await l.index([{mediaType: OCI_MANIFEST, ...manifest, ref: 'other/app:1'}])
    const result = await runReg(['build', `oci:${liar}`, '-o', tree])
    assert.notEqual(result.code, 0, result.stdout)
    assert.match(result.stderr, new RegExp(`blob ${image.layerDigest} is listed with size 1, but the stored blob has ${layerSize} bytes`))
    assert.match(result.stderr, /other\/app:1/, 'the error names the image')
    assert.equal(await treeSnapshot(tree), before, 'the tree changed')
  })

  it('two descriptors of one blob in one build must agree', async () => {
    const dir = path.join(work, 'size-pair')
    const l = await layout(dir)
    const layer = await l.put('a layer of eleven+ bytes')
    const config = await l.put(JSON.stringify({os: 'linux', architecture: 'amd64'}))
    const good = await l.put(imageManifest(config, [layer]))
    const bad = await l.put(imageManifest(config, [{digest: layer.digest, size: layer.size + 5}]))
    await l.index([{mediaType: OCI_MANIFEST, ...good, ref: 'pair/a:1'}, {mediaType: OCI_MANIFEST, ...bad, ref: 'pair/b:1'}])
    const result = await runReg(['build', `oci:${dir}`, '-o', path.join(work, 'size-pair-tree')])
    assert.notEqual(result.code, 0)
    assert.match(result.stderr, /is listed with size \d+, but the stored blob has \d+ bytes/)
  })

  it('an index DAG of 100 × 3 (the same child listed 100 times, 3 deep) is walked once per digest', async () => {
    const dir = path.join(work, 'dag')
    const l = await layout(dir)
    const layer = await l.put('dag layer')
    const config = await l.put(JSON.stringify({os: 'linux', architecture: 'amd64'}))
    let child = {mediaType: OCI_MANIFEST, ...(await l.put(imageManifest(config, [layer])))}
    for (let level = 0; level < 3; level++) {
      child = {mediaType: OCI_INDEX, ...(await l.put(JSON.stringify({schemaVersion: 2, mediaType: OCI_INDEX, manifests: Array.from({length: 100}, () => child)})))}
    }
    await l.index([{...child, ref: 'dag/app:1'}])
    // Count what the walk asks of the store: linear in the distinct digests (6), not 100^3.
    const store = new BlobStore(path.join(work, 'dag-tree'))
    await store.init()
    let lookups = 0
    const has = store.has.bind(store)
    store.has = async (digest: string) => {
      if (++lookups > 1000) throw new Error('the graph walk asked the store more than 1000 times for 6 digests')
      return has(digest)
    }
    const index = {manifests: {}, blobs: {}}
    const record = await new GraphIngester(store, index).ingest(new OciLayoutSource('dag', dir), child, 'dag/app:1')
    assert.equal(record.kind, 'index')
    assert.deepEqual(record.children.length, 1, 'a child listed 100 times is one child')
    assert.equal(Object.keys(index.manifests).length, 4)
    assert.ok(lookups <= 20, `${lookups} store lookups for 6 digests`)
    // And the CLI builds it.
    const built = await runReg(['build', `oci:${dir}`, '-o', path.join(work, 'dag-cli'), '--json'])
    assert.equal(built.code, 0, built.stderr)
  })

  it(`a graph reaching more than ${MAX_GRAPH_NODES} nodes is refused before anything is read`, async () => {
    const dir = path.join(work, 'wide')
    const l = await layout(dir)
    const config = await l.put(JSON.stringify({os: 'linux', architecture: 'amd64'}))
    const layers = Array.from({length: MAX_GRAPH_NODES + 1}, (_, i) => ({digest: sha(Buffer.from(`missing ${i}`)), size: 10}))
    const manifest = await l.put(imageManifest(config, layers))
    await l.index([{mediaType: OCI_MANIFEST, ...manifest, ref: 'wide/app:1'}])
    const result = await runReg(['build', `oci:${dir}`, '-o', path.join(work, 'wide-tree')])
    assert.notEqual(result.code, 0)
    assert.match(result.stderr, new RegExp(`reaches more than ${MAX_GRAPH_NODES} manifests and blobs`))
  })

  it('a deeply nested platform is not copied into registry.json', async () => {
    const dir = path.join(work, 'nested')
    const l = await layout(dir)
    const layer = await l.put('nested layer')
    const config = await l.put(JSON.stringify({os: 'linux', architecture: 'amd64'}))
    const image = await l.put(imageManifest(config, [layer]))
    let deep: unknown = 'x'
    for (let i = 0; i < 3000; i++) deep = {a: deep}
    const platform = {os: 'linux', architecture: 'amd64', 'os.features': [deep], extra: deep, variant: 'v'.repeat(100_000)}
    const indexBytes = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{mediaType: OCI_MANIFEST, ...image, platform}]}))
    const index = await l.put(indexBytes)
    await l.index([{mediaType: OCI_INDEX, ...index, ref: 'nested/app:1'}])
    const tree = path.join(work, 'nested-tree')
    const built = await runReg(['build', `oci:${dir}`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    const size = (await stat(path.join(tree, 'registry.json'))).size
    assert.ok(size < 20_000, `registry.json is ${size} bytes for one image`)
    const saved = JSON.parse(await readFile(path.join(tree, 'registry.json'), 'utf8')) as {manifests: Record<string, {platform?: unknown}>}
    assert.deepEqual(saved.manifests[image.digest].platform, {os: 'linux', architecture: 'amd64'})
  })

  it('tags and repositories named like object members (__proto__, constructor, hasOwnProperty) are ordinary', async () => {
    const dir = path.join(work, 'proto')
    const l = await layout(dir)
    const layer = await l.put('proto layer')
    const config = await l.put(JSON.stringify({os: 'linux', architecture: 'amd64'}))
    const image = await l.put(imageManifest(config, [layer]))
    const refs = ['constructor:__proto__', 'constructor:constructor', 'hasownproperty:hasOwnProperty', 'team/tostring:toString', 'team/app:valueOf']
    await l.index(refs.map((ref) => ({mediaType: OCI_MANIFEST, ...image, ref})))
    const tree = path.join(work, 'proto-tree')
    const built = await runReg(['build', `oci:${dir}`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    const listed = JSON.parse((await runReg(['ls', tree, '--json'])).stdout) as {images: Array<{repository: string; tag: string}>}
    assert.deepEqual(listed.images.map((i) => `${i.repository}:${i.tag}`).sort(), [...refs].sort())
    // And a rebuild (the index read back from disk) keeps them.
    assert.equal((await runReg(['build', `oci:${dir}`, '-o', tree])).code, 0)
    const server = await startRegistryServer(tree, {port: 0})
    try {
      const tags = await (await fetch(`${server.url}/v2/constructor/tags/list`)).json() as {tags: string[]}
      assert.deepEqual(tags.tags, ['__proto__', 'constructor'])
      for (const ref of refs) {
        const [name, tag] = ref.split(':')
        const res = await fetch(`${server.url}/v2/${name}/manifests/${tag}`, {method: 'HEAD'})
        assert.equal(res.status, 200, ref)
        assert.equal(res.headers.get('docker-content-digest'), image.digest)
      }
      assert.equal((await fetch(`${server.url}/v2/team/app/manifests/toString`, {method: 'HEAD'})).status, 404)
    } finally {
      await server.close()
    }
  })

  describe('a damaged or tampered registry.json is refused when loaded', () => {
    let tree: string
    let original: string
    before(async () => {
      tree = path.join(work, 'tamper-tree')
      await writeTinyOciLayout(path.join(work, 'tamper-src'), {'t.txt': 'tamper\n'}, 'team/app:1')
      assert.equal((await runReg(['build', `oci:${path.join(work, 'tamper-src')}`, '-o', tree])).code, 0)
      original = await readFile(path.join(tree, 'registry.json'), 'utf8')
    })

    type State = {blobs: Record<string, unknown>; repositories: Record<string, {tags: Record<string, string>}>; manifests: Record<string, Record<string, unknown>>}
    // Objects (paths, headers) are derived from the state, never read: tampering has only the state to work on.
    const cases: Array<[string, (index: State) => void, RegExp]> = [
      ['a blob digest key that walks out of the store', (i) => {
        const [digest] = Object.keys(i.blobs)
        i.blobs['sha256:../../../../../../../../etc/passwd'] = i.blobs[digest]
        delete i.blobs[digest]
      }, /is not a sha256 digest/],
      ['a manifest listing a blob out of the store', (i) => {
        const image = Object.values(i.manifests).find((m) => m.kind === 'image')!
        ;(image.blobs as string[])[0] = 'sha256:../../../../../../../../etc/passwd'
      }, /is not a sha256 digest/],
      ['a tag pointing at a manifest the index does not have', (i) => {
        i.repositories['team/app'].tags['1'] = 'sha256:' + 'e'.repeat(64)
      }, /which the index does not have/],
      ['a tag that would be a path out of its repository', (i) => {
        i.repositories['team/app'].tags['../../../etc/passwd'] = i.repositories['team/app'].tags['1']
      }, /invalid tag/],
      ['a repository name with ..', (i) => {
        i.repositories['team/../../etc'] = i.repositories['team/app']
      }, /repository name .* is invalid/],
      ['a manifest media type that would split a response', (i) => {
        Object.values(i.manifests)[0].mediaType = 'application/json\r\nSet-Cookie: x=1'
      }, /no valid media type/],
      ['a manifest record with a nested platform', (i) => {
        Object.values(i.manifests)[0].platform = {os: 'linux', architecture: 'amd64', deep: {a: {b: 1}}}
      }, /invalid platform/],
    ]
    for (const [name, damage, message] of cases) {
      it(name, async () => {
        const index = JSON.parse(original) as Parameters<typeof damage>[0]
        damage(index)
        await writeFile(path.join(tree, 'registry.json'), JSON.stringify(index))
        await assert.rejects(startRegistryServer(tree, {port: 0}), (error: Error) => {
          assert.match(error.message, /registry\.json is damaged/)
          assert.match(error.message, message)
          assert.doesNotMatch(error.message, /root:x:0:0/)
          return true
        })
        const ls = await runReg(['ls', tree])
        assert.notEqual(ls.code, 0)
        assert.match(ls.stderr, /registry\.json is damaged/)
        await writeFile(path.join(tree, 'registry.json'), original)
      })
    }

    it('a generated document missing from the store is refused by name', async () => {
      const tagsList = Buffer.from(JSON.stringify({name: 'team/app', tags: ['1']}))
      const file = path.join(tree, 'blobs', 'sha256', createHash('sha256').update(tagsList).digest('hex'))
      await rm(file)
      try {
        await assert.rejects(RegistryTree.load(tree), /registry\.json is damaged: the store has no v2\/team\/app\/tags\/list document/)
      } finally {
        await writeFile(file, tagsList)
      }
    })

    it('a version 1 index (with objects) is read, its objects ignored: a tampered object changes nothing', async () => {
      const honest = await RegistryTree.load(tree)
      const state = JSON.parse(original) as {schemaVersion: number; manifests: Record<string, {children?: string[]; blobs?: string[]}>; objects?: unknown[]}
      for (const record of Object.values(state.manifests)) {
        record.children ??= []
        record.blobs ??= []
      }
      const objects = JSON.parse(JSON.stringify(honest.objects)) as Array<{path: string; digest: string; headers: Record<string, string>}>
      objects[0].path = 'v2/../../etc/passwd'
      objects[1].digest = 'sha256:../../../../../../../../etc/passwd'
      objects[2].headers['Cache-Control'] = 'no-cache\r\nSet-Cookie: x=1'
      await writeFile(path.join(tree, 'registry.json'), JSON.stringify({...state, schemaVersion: 1, objects}, null, 1))
      try {
        const loaded = await RegistryTree.load(tree)
        assert.deepEqual(loaded.objects, honest.objects)
        assert.ok(!loaded.objectsByPath.has('v2/../../etc/passwd'))
        // The next build writes the current format.
        assert.equal((await runReg(['build', `oci:${path.join(work, 'tamper-src')}`, '-o', tree])).code, 0)
        const rebuilt = JSON.parse(await readFile(path.join(tree, 'registry.json'), 'utf8')) as {schemaVersion: number; objects?: unknown}
        assert.equal(rebuilt.schemaVersion, 2)
        assert.equal(rebuilt.objects, undefined)
      } finally {
        await writeFile(path.join(tree, 'registry.json'), original)
      }
    })

    it('the store never turns a malformed digest into a path', () => {
      const store = new BlobStore(tree)
      assert.throws(() => store.pathOf('sha256:../../etc/passwd'), /invalid digest/)
      assert.equal(store.pathOf('sha256:' + 'a'.repeat(64)), path.join(tree, 'blobs', 'sha256', 'a'.repeat(64)))
    })
  })

  describe('nothing the user owns is lost', () => {
    let source: string
    before(async () => {
      source = path.join(work, 'owned-src')
      await writeTinyOciLayout(source, {'o.txt': 'owned\n'}, 'team/app:1')
    })

    it('reg build -o FILE refuses and keeps the file', async () => {
      const file = path.join(work, 'a-file')
      await writeFile(file, 'my notes\n')
      const result = await runReg(['build', `oci:${source}`, '-o', file])
      assert.notEqual(result.code, 0)
      assert.match(result.stderr, /is a file, not a directory/)
      assert.equal(await readFile(file, 'utf8'), 'my notes\n')
    })

    it('a rebuild refuses a tree holding files reg did not write, and keeps them', async () => {
      const tree = path.join(work, 'owned-tree')
      assert.equal((await runReg(['build', `oci:${source}`, '-o', tree])).code, 0)
      await mkdir(path.join(tree, 'public'))
      await writeFile(path.join(tree, 'public', 'index.html'), 'hello\n')
      await writeFile(path.join(tree, 'blobs', 'sha256', 'README'), 'mine\n')
      for (const extra of [[], ['--clean']]) {
        const result = await runReg(['build', `oci:${source}`, '-o', tree, ...extra])
        assert.notEqual(result.code, 0, `build ${extra.join(' ')} succeeded`)
        assert.match(result.stderr, /holds files reg did not write: .*"public"/)
        assert.match(result.stderr, /holds files reg did not write: .*"blobs\/sha256\/README"/)
      }
      assert.equal(await readFile(path.join(tree, 'public', 'index.html'), 'utf8'), 'hello\n')
      assert.equal(await readFile(path.join(tree, 'blobs', 'sha256', 'README'), 'utf8'), 'mine\n')
    })

    it('reg deploy refuses a destination inside the tree, and a tree inside the destination', async () => {
      const tree = path.join(work, 'deploy-tree')
      assert.equal((await runReg(['build', `oci:${source}`, '-o', tree])).code, 0)
      const before = await treeSnapshot(tree)
      const inside = await runReg(['deploy', tree, '--backend', 'dir', '--dest', path.join(tree, 'public')])
      assert.notEqual(inside.code, 0)
      assert.match(inside.stderr, /is inside the tree/)
      assert.deepEqual((await readdir(tree)).sort(), ['blobs', 'index.json', 'oci-layout', 'registry.json'])
      assert.equal(await treeSnapshot(tree), before)
      const around = await runReg(['deploy', tree, '--backend', 'nginx', '--dest', work])
      assert.notEqual(around.code, 0)
      assert.match(around.stderr, /is inside the destination/)
    })
  })

  it("the README's Apache virtual host refuses TRACE", async () => {
    requireTool('apache2')
    const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8')
    const vhost = /```apache\n([\s\S]*?)```/.exec(readme)?.[1]
    assert.ok(vhost, 'the README has an apache block')
    const tree = path.join(work, 'trace-tree')
    const docroot = path.join(work, 'trace-root')
    await writeTinyOciLayout(path.join(work, 'trace-src'), {'t.txt': 'trace\n'}, 'team/app:1')
    assert.equal((await runReg(['build', `oci:${path.join(work, 'trace-src')}`, '-o', tree])).code, 0)
    assert.equal((await runReg(['deploy', tree, '--backend', 'apache', '--dest', docroot])).code, 0)
    const port = await freePort()
    const site = vhost.replace(/^\s+/gm, '').replace('<VirtualHost *:80>', `<VirtualHost 127.0.0.1:${port}>`).replaceAll('/var/www/registry', docroot)
    await makeServable(docroot)
    const apache = await startApache(docroot, port, site)
    try {
      const trace = await new Promise<number>((resolve, reject) => {
        // fetch() refuses to send TRACE: a raw request.
        import('node:http').then(({request}) => request({host: '127.0.0.1', port, method: 'TRACE', path: '/v2/'}, (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        }).on('error', reject).end())
      })
      assert.equal(trace, 405)
      assert.equal((await fetch(`http://127.0.0.1:${port}/v2/team/app/manifests/1`, {method: 'HEAD'})).status, 200)
    } finally {
      await apache.stop()
    }
  })
})
