// `reg build` at scale (issue 15): images ingested concurrently are recorded as a one-at-a-time build
// records them, a rebuild reuses what the tree holds whole and leaves an unchanged tree alone, and
// the shortcuts (directories resolved once, small configs held in memory) keep every check.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {mkdir, readFile, rename, rm, stat, symlink, unlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {removeTempDirs, runReg, tempDir} from './support.js'

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex')
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
const CONFIG = 'application/vnd.oci.image.config.v1+json'
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip'

interface Blob {
  digest: string
  size: number
}

/**
 * A layout of `count` images, image i in repository r<i % 3> tagged v<i>, each with its own config
 * and layer and one of 4 shared base layers; `brokenImages` lose their own layer file.
 */
async function manyImages(dir: string, count: number, brokenImages: number[] = []): Promise<{manifests: Blob[]; blobsOf: Blob[][]; refs: string[]}> {
  const blobs = path.join(dir, 'blobs', 'sha256')
  await mkdir(blobs, {recursive: true})
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({imageLayoutVersion: '1.0.0'}))
  const put = async (bytes: Buffer, write = true): Promise<Blob> => {
    if (write) await writeFile(path.join(blobs, sha(bytes).slice(7)), bytes)
    return {digest: sha(bytes), size: bytes.length}
  }
  const bases = await Promise.all([0, 1, 2, 3].map((b) => put(Buffer.from(`shared base layer ${b}\n`.repeat(50)))))
  const manifests: Blob[] = []
  const blobsOf: Blob[][] = []
  const refs: string[] = []
  for (let i = 0; i < count; i++) {
    const config = await put(Buffer.from(JSON.stringify({os: 'linux', architecture: i % 2 ? 'arm64' : 'amd64', config: {Env: [`I=${i}`]}})))
    const own = await put(Buffer.from(`layer of image ${i}\n`.repeat(20)), !brokenImages.includes(i))
    const layers = [bases[i % 4], own]
    manifests.push(await put(Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST, config: {mediaType: CONFIG, ...config}, layers: layers.map((l) => ({mediaType: LAYER, ...l})),
    }))))
    blobsOf.push([config, ...layers])
    refs.push(`example.com/scale/r${i % 3}:v${i}`)
  }
  await writeFile(path.join(dir, 'index.json'), JSON.stringify({schemaVersion: 2, mediaType: OCI_INDEX, manifests:
    manifests.map((m, i) => ({mediaType: OCI_MANIFEST, ...m, annotations: {'org.opencontainers.image.ref.name': refs[i]}}))}))
  return {manifests, blobsOf, refs}
}

describe('reg build at scale', () => {
  let work: string
  before(async () => {
    work = await tempDir('reg-build-scale-')
  })
  after(removeTempDirs)

  it('records images in the sources\' order, whatever order their concurrent copies finish in', async () => {
    const layout = path.join(work, 'order')
    const {manifests, blobsOf} = await manyImages(layout, 60)
    const first = await runReg(['build', `oci:${layout}`, '-o', path.join(work, 'order-1')])
    assert.equal(first.code, 0, first.stderr)
    const second = await runReg(['build', `oci:${layout}`, '-o', path.join(work, 'order-2')])
    assert.equal(second.code, 0, second.stderr)
    // The same state, byte for byte, but for the time each build recorded for its tags.
    const untimed = async (dir: string) => (await readFile(path.join(work, dir, 'registry.json'), 'utf8')).replace(/,"tagged":\{[^}]*\}/g, '')
    const registry = await untimed('order-1')
    assert.ok(registry.length > 0 && !registry.includes('"tagged"'))
    assert.equal(await untimed('order-2'), registry)
    // One image at a time, in index.json's order: each manifest after its blobs, each blob where first named (config, then layers).
    const index = JSON.parse(registry) as {manifests: Record<string, unknown>; blobs: Record<string, unknown>}
    assert.deepEqual(Object.keys(index.manifests), manifests.map((m) => m.digest))
    assert.deepEqual(Object.keys(index.blobs), [...new Set(blobsOf.flat().map((b) => b.digest))])
    // The image lines follow the sources' order too.
    assert.deepEqual(first.stdout.trim().split('\n').slice(0, -1).map((l) => l.split('  ')[0]), manifests.map((_, i) => `scale/r${i % 3}:v${i}`))
  })

  it('of several broken images, reports the first in order', async () => {
    const layout = path.join(work, 'broken')
    const {blobsOf} = await manyImages(layout, 60, [9, 41])
    const result = await runReg(['build', `oci:${layout}`, '-o', path.join(work, 'broken-tree')])
    assert.notEqual(result.code, 0)
    assert.match(result.stderr, /blob sha256:[a-f0-9]{64} is missing from the layout/)
    assert.ok(result.stderr.includes(blobsOf[9][2].digest), 'names the layer of image 9, the first broken one')
  })

  it('leaves a tree alone when a rebuild would change nothing', async () => {
    const layout = path.join(work, 'same')
    await manyImages(layout, 12)
    const tree = path.join(work, 'same-tree')
    const built = await runReg(['build', `oci:${layout}`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    const before = await stat(path.join(tree, 'registry.json'))
    const bytes = await readFile(path.join(tree, 'registry.json'))
    const again = await runReg(['build', `oci:${layout}`, '-o', tree, '--json'])
    assert.equal(again.code, 0, again.stderr)
    const after = await stat(path.join(tree, 'registry.json'))
    // The same file, not a copy swapped in: nothing was staged, written or renamed.
    assert.equal(after.ino, before.ino)
    assert.deepEqual(await readFile(path.join(tree, 'registry.json')), bytes)
    const summary = JSON.parse(again.stdout) as {tags: number; bytesCopied: number; blobsAlreadyPresent: number; images: unknown[]}
    assert.equal(summary.tags, 12)
    assert.equal(summary.images.length, 12)
    assert.equal(summary.bytesCopied, 0)
    assert.equal(summary.blobsAlreadyPresent, 4 + 12 * 2)
  })

  it('copies again what is missing from the tree, and writes the tree when a tag is added', async () => {
    const layout = path.join(work, 'repair')
    const {blobsOf} = await manyImages(layout, 6)
    const tree = path.join(work, 'repair-tree')
    assert.equal((await runReg(['build', `oci:${layout}`, '-o', tree])).code, 0)
    const registry = await readFile(path.join(tree, 'registry.json'), 'utf8')
    const lost = path.join(tree, 'blobs', 'sha256', blobsOf[3][2].digest.slice(7))
    const kept = await readFile(lost)
    await unlink(lost)
    const repaired = await runReg(['build', `oci:${layout}`, '-o', tree, '--json'])
    assert.equal(repaired.code, 0, repaired.stderr)
    assert.deepEqual(await readFile(lost), kept)
    assert.equal(await readFile(path.join(tree, 'registry.json'), 'utf8'), registry)
    assert.equal((JSON.parse(repaired.stdout) as {bytesCopied: number}).bytesCopied, kept.length)
    // One more tag on an image the tree has: the tree is rewritten with it, nothing copied.
    const retag = await runReg(['build', `oci:${layout}:example.com/scale/r0:v0=scale/r0:extra`, '-o', tree, '--json'])
    assert.equal(retag.code, 0, retag.stderr)
    const index = JSON.parse(await readFile(path.join(tree, 'registry.json'), 'utf8')) as {repositories: Record<string, {tags: Record<string, string>}>}
    assert.equal(index.repositories['scale/r0'].tags.extra, index.repositories['scale/r0'].tags.v0)
    assert.equal((JSON.parse(retag.stdout) as {bytesCopied: number}).bytesCopied, 0)
  })

  it('refuses a config longer than its descriptor says, though it is read whole', async () => {
    const layout = path.join(work, 'long-config')
    const {blobsOf} = await manyImages(layout, 1)
    const config = path.join(layout, 'blobs', 'sha256', blobsOf[0][0].digest.slice(7))
    await writeFile(config, Buffer.concat([await readFile(config), Buffer.from(' '.repeat(100))]))
    const result = await runReg(['build', `oci:${layout}`, '-o', path.join(work, 'long-config-tree')])
    assert.notEqual(result.code, 0)
    assert.match(result.stderr, /config|blob/)
    assert.match(result.stderr, /content does not match its digest: expected sha256:[a-f0-9]{64}, got sha256:\(more bytes than the descriptor says\)/)
  })

  it('follows a link inside the layout and refuses one leading out, file or directory', async () => {
    const layout = path.join(work, 'links')
    const {blobsOf} = await manyImages(layout, 2)
    const blobs = path.join(layout, 'blobs', 'sha256')
    // A layer file that is a link to a copy elsewhere in the layout is read through it.
    const layer = blobsOf[0][2].digest.slice(7)
    await mkdir(path.join(layout, 'elsewhere'))
    await rename(path.join(blobs, layer), path.join(layout, 'elsewhere', layer))
    await symlink(path.join('..', '..', 'elsewhere', layer), path.join(blobs, layer))
    const inside = await runReg(['build', `oci:${layout}`, '-o', path.join(work, 'links-tree')])
    assert.equal(inside.code, 0, inside.stderr)
    // blobs/sha256 itself a link out of the layout: refused, whatever file is asked for in it.
    const outside = path.join(work, 'outside-store')
    await rename(blobs, outside)
    await symlink(outside, blobs)
    const refused = await runReg(['build', `oci:${layout}`, '-o', path.join(work, 'links-tree-2')])
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /resolves outside the source/)
    await rm(blobs)
  })
})
