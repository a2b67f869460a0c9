// Bad input gets a clear error, a non-zero exit, and leaves the existing tree exactly as it was.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdir, readFile, rm, symlink, truncate, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import * as tar from 'tar-stream'
import {copyExampleLayout, removeTempDirs, runReg, tempDir, type TinyImage, treeSnapshot, writeTinyOciLayout} from './support.js'

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex')

async function tarFile(file: string, entries: Array<{name: string; body?: string; type?: 'file' | 'symlink'; linkname?: string}>): Promise<void> {
  const pack = tar.pack()
  const chunks: Buffer[] = []
  pack.on('data', (c) => chunks.push(c as Buffer))
  const done = new Promise<void>((resolve) => pack.on('end', () => resolve()))
  for (const e of entries) pack.entry({name: e.name, type: e.type ?? 'file', linkname: e.linkname, mtime: new Date(0)}, e.type === 'symlink' ? '' : e.body ?? '')
  pack.finalize()
  await done
  await writeFile(file, Buffer.concat(chunks))
}

describe('reg build refuses bad input and keeps the existing tree', () => {
  let work: string
  let out: string
  let good: string
  let snapshot: string
  let damaged = 0

  before(async () => {
    work = await tempDir()
    good = await copyExampleLayout(path.join(work, 'good'))
    out = path.join(work, 'tree')
    const built = await runReg(['build', `oci:${good}`, '-o', out])
    assert.equal(built.code, 0, built.stderr)
    snapshot = await treeSnapshot(out)
  })
  after(removeTempDirs)

  async function expectRefused(args: string[], message: RegExp): Promise<void> {
    const result = await runReg(['build', ...args, '-o', out])
    assert.notEqual(result.code, 0, `expected failure, got success:\n${result.stdout}`)
    assert.match(result.stderr, message)
    assert.equal(await treeSnapshot(out), snapshot, 'the existing tree changed')
  }

  /** A layout sharing no blob with the tree (so its bytes must really be read), then damaged. */
  async function brokenLayout(name: string, breakIt: (layout: string, image: TinyImage) => Promise<void>): Promise<{layout: string; image: TinyImage}> {
    const layout = path.join(work, name)
    const image = await writeTinyOciLayout(layout, {'file.txt': `damaged source ${++damaged}\n`}, '1')
    await breakIt(layout, image)
    return {layout, image}
  }

  const layerFile = (layout: string, image: TinyImage) => path.join(layout, 'blobs', 'sha256', image.layerDigest.slice(7))

  it('a blob whose bytes do not match its digest', async () => {
    const {layout, image} = await brokenLayout('corrupt', async (l, i) => {
      const bytes = await readFile(layerFile(l, i))
      bytes[bytes.length - 1] ^= 0xff
      await writeFile(layerFile(l, i), bytes)
    })
    await expectRefused([`oci:${layout}=team/app:1`], new RegExp(`blob ${image.layerDigest}: content does not match its digest: expected ${image.layerDigest}, got sha256:[a-f0-9]{64}`))
  })

  it('a blob of the wrong size', async () => {
    const {layout} = await brokenLayout('short', async (l, i) => truncate(layerFile(l, i), 10))
    await expectRefused([`oci:${layout}=team/app:1`], /does not match its digest.*expected \d+ bytes, read 10/)
  })

  it('a missing blob', async () => {
    const {layout, image} = await brokenLayout('missing', async (l, i) => rm(layerFile(l, i)))
    await expectRefused([`oci:${layout}=team/app:1`], new RegExp(`blob ${image.layerDigest} is missing`))
  })

  it('a symlinked blob pointing outside the source', async () => {
    const {layout} = await brokenLayout('symlink', async (l, i) => {
      await rm(layerFile(l, i))
      await symlink('/etc/hostname', layerFile(l, i))
    })
    await expectRefused([`oci:${layout}=team/app:1`], /resolves outside the source/)
  })

  it('an unknown transport', async () => {
    await expectRefused(['ftp:/x'], /unknown transport "ftp"[\s\S]*hint: .*oci:/)
  })

  it('a transport that is not there yet', async () => {
    await expectRefused(['containers-storage:team/app'], /containers-storage: transport is not supported yet/)
  })

  it('a missing path', async () => {
    await expectRefused([`oci:${work}/does-not-exist`], /does not exist/)
    await expectRefused([`docker-archive:${work}/nope.tar`], /does not exist/)
  })

  it('invalid names', async () => {
    await expectRefused([`oci:${good}=Team/App:1`], /invalid repository name "Team\/App"[\s\S]*lowercase/)
    await expectRefused([`oci:${good}=team/../app:1`], /"\.\." is not allowed/)
    await expectRefused([`oci:${good}=team//app:1`], /empty path component/)
    await expectRefused([`oci:${good}`, '--prefix', 'Bad'], /invalid repository name/)
  })

  it('an invalid tag', async () => {
    await expectRefused([`oci:${good}=team/app:-bad`], /invalid tag "-bad"/)
    await expectRefused([`oci:${good}=team/app:${'x'.repeat(129)}`], /invalid tag/)
  })

  it('a repository whose path collides with another repository', async () => {
    await expectRefused([`oci:${good}=col:1`, `oci:${good}=col/manifests:1`], /repository "col\/manifests" collides with repository "col"/)
    // and against a repository already in the tree
    await expectRefused([`oci:${good}=examples/hello/blobs:1`], /collides with repository "examples\/hello"/)
  })

  it('not tags equal but for case: they are two tags (a deploy to a host that cannot tell them apart refuses them, test/tag-case.test.ts)', async () => {
    const result = await runReg(['build', `oci:${good}=team/app:V1`, `oci:${good}=team/app:v1`, '-o', path.join(work, 'case-tree')])
    assert.equal(result.code, 0, result.stderr)
  })

  it('a Docker schema 1 manifest', async () => {
    const dir = path.join(work, 'schema1')
    await mkdir(dir)
    await writeFile(path.join(dir, 'manifest.json'), JSON.stringify({schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [], history: []}))
    await expectRefused([`dir:${dir}=team/old:1`], /Docker schema 1 manifests are not supported[\s\S]*hint: .*v2s2/)
  })

  it('malformed JSON', async () => {
    const {layout: badIndex} = await brokenLayout('bad-index', async (l) => writeFile(path.join(l, 'index.json'), '{"schemaVersion": 2, "manifests": ['))
    await expectRefused([`oci:${badIndex}=team/app:1`], /index\.json: manifest is not valid JSON/)
    const {layout: badManifest} = await brokenLayout('bad-manifest', async (l) => {
      const bytes = Buffer.from('{"schemaVersion": 2, "layers": [}')
      await writeFile(path.join(l, 'blobs', 'sha256', sha(bytes).slice(7)), bytes)
      await writeFile(path.join(l, 'index.json'), JSON.stringify({schemaVersion: 2, manifests: [{mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(bytes), size: bytes.length, annotations: {'org.opencontainers.image.ref.name': '1'}}]}))
    })
    await expectRefused([`oci:${badManifest}=team/app`], new RegExp(`manifest ${sha('{"schemaVersion": 2, "layers": [}')}: manifest is not valid JSON`))
  })

  it('a dir: source without =NAME:TAG', async () => {
    await expectRefused([`dir:${work}`], /a dir: source has no name[\s\S]*hint: add the name/)
  })

  it('a truncated archive (tar and gzip)', async () => {
    const archive = path.join(work, 'truncated.tar')
    const {layout} = await brokenLayout('for-archive', async () => undefined)
    execFileSync('skopeo', ['copy', '-q', `oci:${layout}:1`, `docker-archive:${archive}:team/app:1`])
    await truncate(archive, Math.floor((await stat(archive)).size / 2))
    await expectRefused([`docker-archive:${archive}`], /truncated or corrupt|is missing from the archive|manifest\.json/)
    const gz = path.join(work, 'layout.tar.gz')
    execFileSync('tar', ['czf', gz, '-C', layout, '.'])
    await truncate(gz, Math.floor((await stat(gz)).size / 2))
    await expectRefused([`oci-archive:${gz}=team/app`], /truncated or corrupt/)
  })

  it('path traversal and links in archive entries', async () => {
    const up = path.join(work, 'up.tar')
    await tarFile(up, [{name: 'oci-layout', body: '{"imageLayoutVersion":"1.0.0"}'}, {name: '../evil', body: 'x'}])
    await expectRefused([`oci-archive:${up}=team/app`], /entry "\.\.\/evil" points outside the archive/)
    const abs = path.join(work, 'abs.tar')
    await tarFile(abs, [{name: '/tmp/evil', body: 'x'}])
    await expectRefused([`oci-archive:${abs}=team/app`], /entry "\/tmp\/evil" points outside the archive/)
    const link = path.join(work, 'link.tar')
    await tarFile(link, [{name: 'manifest.json', type: 'symlink', linkname: '/etc/passwd'}])
    await expectRefused([`docker-archive:${link}`], /entry "manifest.json" is a symlink to "\/etc\/passwd", outside the archive/)
    const relative = path.join(work, 'relative-link.tar')
    await tarFile(relative, [{name: 'a/manifest.json', type: 'symlink', linkname: '../../../etc/passwd'}])
    await expectRefused([`docker-archive:${relative}`], /outside the archive/)
    assert.equal(await stat(path.join(path.dirname(work), 'evil')).then(() => true, () => false), false)
  })

  it('an archive that is a directory, a directory that is not a layout', async () => {
    await expectRefused([`oci-archive:${work}`], /is a directory, not an archive/)
    await expectRefused([`oci:${work}=team/app`], /is not an OCI image layout/)
  })

  it('an output directory that is not a tree', async () => {
    const notTree = path.join(work, 'not-a-tree')
    await mkdir(notTree)
    await writeFile(path.join(notTree, 'precious.txt'), 'keep me')
    const result = await runReg(['build', `oci:${good}`, '-o', notTree])
    assert.notEqual(result.code, 0)
    assert.match(result.stderr, /exists and is not a reg tree/)
    assert.equal(await readFile(path.join(notTree, 'precious.txt'), 'utf8'), 'keep me')
  })
})
