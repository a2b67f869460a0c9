// Archives and source directories are hostile input: nothing they hold may write outside reg's
// scratch space, read a file outside the source, or fill the disk with a gzip bomb.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {lstat, mkdir, readdir, readFile, rm, symlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {gzipSync} from 'node:zlib'
import * as tar from 'tar-stream'
import {removeTempDirs, runReg, type RunResult, tempDir, writeTinyOciLayout} from './support.js'

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex')

interface TarEntry {
  name: string
  type?: 'file' | 'symlink' | 'link' | 'directory'
  body?: Buffer | string
  linkname?: string
}

async function tarBytes(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack()
  const chunks: Buffer[] = []
  pack.on('data', (c) => chunks.push(c as Buffer))
  const done = new Promise<void>((resolve) => pack.on('end', () => resolve()))
  for (const e of entries) {
    const type = e.type ?? 'file'
    pack.entry({name: e.name, type, linkname: e.linkname, mode: type === 'directory' ? 0o755 : 0o644, mtime: new Date(0)}, type === 'file' ? e.body ?? '' : '')
  }
  pack.finalize()
  await done
  return Buffer.concat(chunks)
}

/** The entries of an OCI layout directory, as tar entries (files only). */
async function layoutEntries(layout: string): Promise<TarEntry[]> {
  const blobs = await readdir(path.join(layout, 'blobs', 'sha256'))
  return [
    {name: 'oci-layout', body: await readFile(path.join(layout, 'oci-layout'))},
    {name: 'index.json', body: await readFile(path.join(layout, 'index.json'))},
    ...await Promise.all(blobs.map(async (b) => ({name: `blobs/sha256/${b}`, body: await readFile(path.join(layout, 'blobs', 'sha256', b))}))),
  ]
}

/** Files and directories under `dir`, recursively, as paths relative to it (links not followed). */
async function listTree(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const name of await readdir(dir)) {
    out.push(name)
    if ((await lstat(path.join(dir, name))).isDirectory()) out.push(...(await listTree(path.join(dir, name))).map((n) => `${name}/${n}`))
  }
  return out
}

/** Bytes of the regular files under `dir` right now; files vanishing meanwhile count as nothing. */
async function diskUse(dir: string): Promise<number> {
  let total = 0
  const names = await readdir(dir).catch(() => [] as string[])
  for (const name of names) {
    const stat = await lstat(path.join(dir, name)).catch(() => undefined)
    if (stat?.isDirectory()) total += await diskUse(path.join(dir, name))
    else if (stat?.isFile()) total += stat.size
  }
  return total
}

/** Run `reg build` while sampling how many bytes its output directory's parent holds; the sampling stops when reg exits. */
async function buildMeasured(args: string[], parent: string): Promise<{result: RunResult; peakBytes: number}> {
  let running = true
  let peakBytes = 0
  const run = runReg(['build', ...args]).finally(() => {
    running = false
  })
  while (running) {
    peakBytes = Math.max(peakBytes, await diskUse(parent))
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return {result: await run, peakBytes: Math.max(peakBytes, await diskUse(parent))}
}

/** A ustar header for a regular file of `size` bytes (tar-stream wants the body in hand; a bomb is never in hand). */
function ustarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512)
  header.write(name, 0, 100, 'utf8')
  header.write('0000644\0', 100)
  header.write('0000000\0', 108)
  header.write('0000000\0', 116)
  header.write(size.toString(8).padStart(11, '0') + '\0', 124)
  header.write('00000000000\0', 136)
  header.write('        ', 148)
  header.write('0', 156)
  header.write('ustar\0', 257)
  header.write('00', 263)
  let sum = 0
  for (const byte of header) sum += byte
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148)
  return header
}

const MiB = 1 << 20
const BOMB_BYTES = 2048 * MiB

/**
 * A gzip-compressed tar: `entries`, then `bombName` holding 2 GiB of zeros, written as concatenated
 * gzip members (one per MiB of zeros, each ~1 KiB): about 2 MiB on disk, never 2 GiB in memory.
 */
async function writeGzipBomb(file: string, entries: TarEntry[], bombName: string): Promise<void> {
  const prefix = await tarBytes(entries)
  const out = createWriteStream(file)
  const write = (chunk: Buffer) => new Promise<void>((resolve, reject) => out.write(chunk, (error) => (error ? reject(error) : resolve())))
  // The prefix without its end-of-archive blocks (the last 1024 bytes of zeros tar-stream writes).
  await write(gzipSync(Buffer.concat([prefix.subarray(0, prefix.length - 1024), ustarHeader(bombName, BOMB_BYTES)])))
  const zeros = gzipSync(Buffer.alloc(MiB), {level: 9})
  for (let i = 0; i < BOMB_BYTES / MiB; i++) await write(zeros)
  await write(gzipSync(Buffer.alloc(1024)))
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())))
}

describe('archives and source directories cannot reach outside', () => {
  let work: string
  let layout: string
  let layerHex: string

  before(async () => {
    work = await tempDir()
    layout = path.join(work, 'layout')
    const image = await writeTinyOciLayout(layout, {'hello.txt': 'hello\n'}, '1')
    layerHex = image.layerDigest.slice('sha256:'.length)
  })
  after(removeTempDirs)

  /** Entries that plant `leaf` under `outside` through `sub -> .` and a link that is lexically inside but really leads to `/`. */
  function escapeEntries(outside: string, leaf: TarEntry, out: string): TarEntry[] {
    // As deep as the scratch directory (and more), but under Linux's 40 links per lookup.
    const depth = out.split('/').length + 8
    const up = Array.from({length: depth}, () => '..').join('/')
    return [
      {name: 'sub', type: 'symlink', linkname: '.'},
      {name: 'sub/'.repeat(depth) + 'e', type: 'symlink', linkname: up},
      {...leaf, name: `e${outside}/${leaf.name}`},
    ]
  }

  async function expectNoEscape(transport: 'oci-archive' | 'docker-archive', leaf: TarEntry, before: TarEntry[] = []): Promise<void> {
    const outside = await tempDir('reg-outside-')
    const out = path.join(await tempDir(), 'tree')
    const archive = path.join(work, `escape-${transport}-${leaf.type ?? 'file'}-${path.basename(outside)}.tar`)
    await writeFile(archive, await tarBytes([...before, ...escapeEntries(outside, leaf, out)]))
    const result = await runReg(['build', `${transport}:${archive}=team/app:1`, '-o', out])
    assert.deepEqual(await listTree(outside), [], `the archive wrote outside reg's scratch space (exit ${result.code})`)
    assert.notEqual(result.code, 0, result.stdout)
    assert.match(result.stderr, /outside the archive/)
  }

  const layoutFile = {name: 'oci-layout', body: '{"imageLayoutVersion":"1.0.0"}'}

  it('a file through a `sub -> .` chain of links (oci-archive:, docker-archive:)', async () => {
    await expectNoEscape('oci-archive', {name: 'X', body: 'planted'}, [layoutFile])
    await expectNoEscape('docker-archive', {name: 'X', body: 'planted'})
  })

  it('a directory through the same chain', async () => {
    await expectNoEscape('oci-archive', {name: 'D/', type: 'directory'}, [layoutFile])
    await expectNoEscape('docker-archive', {name: 'D/', type: 'directory'})
  })

  it('a hard link through the same chain', async () => {
    await expectNoEscape('oci-archive', {name: 'H', type: 'link', linkname: 'oci-layout'}, [layoutFile])
    await expectNoEscape('docker-archive', {name: 'H', type: 'link', linkname: 'oci-layout'}, [layoutFile])
  })

  it('a loop of links is refused, not followed forever', async () => {
    const archive = path.join(work, 'loop.tar')
    await writeFile(archive, await tarBytes([layoutFile, {name: 'a', type: 'symlink', linkname: 'b'}, {name: 'b', type: 'symlink', linkname: 'a'}, {name: 'a/x', body: 'x'}]))
    const result = await runReg(['build', `oci-archive:${archive}=team/app`, '-o', path.join(await tempDir(), 'tree')])
    assert.notEqual(result.code, 0, result.stdout)
    assert.match(result.stderr, /"a\/x" goes through more than \d+ links/)
  })

  it('links inside an archive still work: a symlinked index.json, a hard-linked blob', async () => {
    const entries = await layoutEntries(layout)
    const index = entries.find((e) => e.name === 'index.json') as TarEntry
    const layer = entries.find((e) => e.name === `blobs/sha256/${layerHex}`) as TarEntry
    const archive = path.join(work, 'inside-links.tar')
    await writeFile(archive, await tarBytes([
      ...entries.filter((e) => e !== index && e !== layer),
      {name: 'meta/real-index.json', body: index.body},
      {name: 'index.json', type: 'symlink', linkname: 'meta/./real-index.json'},
      {name: 'data/layer', body: layer.body},
      {name: layer.name, type: 'link', linkname: 'data/layer'},
    ]))
    const result = await runReg(['build', `oci-archive:${archive}=team/app`, '-o', path.join(await tempDir(), 'tree')])
    assert.equal(result.code, 0, result.stderr)
  })

  describe('symlinks out of an oci: or dir: source', () => {
    let secretFile: string
    const secret = `TOP-SECRET-${process.pid}-${Date.now()}`

    before(async () => {
      secretFile = path.join(await tempDir('reg-secret-'), 'secret.txt')
      await writeFile(secretFile, secret)
    })

    async function expectRefused(source: string): Promise<void> {
      const result = await runReg(['build', source, '-o', path.join(await tempDir(), 'tree')])
      assert.notEqual(result.code, 0, result.stdout)
      assert.match(result.stderr, /resolves outside the source/)
      for (const output of [result.stdout, result.stderr]) {
        assert.ok(!output.includes(secret), `the secret was printed:\n${output}`)
        assert.ok(!output.includes(secretFile), `where the link leads was printed:\n${output}`)
      }
    }

    async function linkedLayout(name: string, file: string): Promise<string> {
      const copy = path.join(work, name)
      await writeTinyOciLayout(copy, {'hello.txt': 'hello\n'}, '1')
      await rm(path.join(copy, file))
      await symlink(secretFile, path.join(copy, file))
      return copy
    }

    it('index.json, oci-layout or a blob of an oci: layout', async () => {
      await expectRefused(`oci:${await linkedLayout('linked-index', 'index.json')}=team/app:1`)
      await expectRefused(`oci:${await linkedLayout('linked-layout', 'oci-layout')}=team/app:1`)
      await expectRefused(`oci:${await linkedLayout('linked-blob', `blobs/sha256/${layerHex}`)}=team/app:1`)
    })

    it('manifest.json or a blob of a dir: source', async () => {
      const dir = path.join(work, 'dir-source')
      await mkdir(dir)
      await symlink(secretFile, path.join(dir, 'manifest.json'))
      await expectRefused(`dir:${dir}=team/app:1`)
      const dirWithBlob = path.join(work, 'dir-blob')
      await mkdir(dirWithBlob)
      const manifest = await readFile(path.join(layout, 'index.json'), 'utf8')
      const manifestDigest = (JSON.parse(manifest) as {manifests: Array<{digest: string}>}).manifests[0].digest.slice(7)
      const manifestBytes = await readFile(path.join(layout, 'blobs', 'sha256', manifestDigest))
      await writeFile(path.join(dirWithBlob, 'manifest.json'), manifestBytes)
      for (const blob of await readdir(path.join(layout, 'blobs', 'sha256'))) {
        if (blob === layerHex) await symlink(secretFile, path.join(dirWithBlob, blob))
        else await writeFile(path.join(dirWithBlob, blob), await readFile(path.join(layout, 'blobs', 'sha256', blob)))
      }
      await expectRefused(`dir:${dirWithBlob}=team/app:1`)
    })
  })

  describe('gzip bombs', () => {
    /** What a tiny image's scratch space and tree may hold at most: far below the 2 GiB the bomb expands to. */
    const BOUND = 64 * MiB

    it('oci-archive: a blob entry far larger than its descriptor is refused before it is written', async (t) => {
      const bomb = path.join(work, 'bomb-oci.tar.gz')
      const entries = (await layoutEntries(layout)).filter((e) => e.name !== `blobs/sha256/${layerHex}`)
      await writeGzipBomb(bomb, entries, `blobs/sha256/${layerHex}`)
      const parent = await tempDir()
      const {result, peakBytes} = await buildMeasured([`oci-archive:${bomb}=team/app`, '-o', path.join(parent, 'tree')], parent)
      t.diagnostic(`peak bytes under the output's parent: ${peakBytes}`)
      assert.ok(peakBytes < BOUND, `reg wrote ${peakBytes} bytes for a tiny image`)
      assert.notEqual(result.code, 0, result.stdout)
      assert.match(result.stderr, new RegExp(`blob sha256:${layerHex} is ${BOMB_BYTES} bytes in the archive but its descriptor says \\d+`))
    })

    it('docker-archive: a layer of 2 GiB streams into its compression, never onto disk whole', async (t) => {
      const bomb = path.join(work, 'bomb-docker.tar.gz')
      const config = Buffer.from(JSON.stringify({architecture: 'amd64', os: 'linux', rootfs: {type: 'layers', diff_ids: [sha('not the layer')]}}))
      const configName = `${sha(config).slice(7)}.json`
      await writeGzipBomb(bomb, [
        {name: 'manifest.json', body: JSON.stringify([{Config: configName, RepoTags: ['team/bomb:1'], Layers: ['layer/layer.tar']}])},
        {name: configName, body: config},
      ], 'layer/layer.tar')
      const parent = await tempDir()
      const {result, peakBytes} = await buildMeasured([`docker-archive:${bomb}`, '-o', path.join(parent, 'tree')], parent)
      t.diagnostic(`peak bytes under the output's parent: ${peakBytes}`)
      assert.ok(peakBytes < BOUND, `reg wrote ${peakBytes} bytes for a layer of zeros`)
      assert.notEqual(result.code, 0, result.stdout)
      assert.match(result.stderr, /layer layer\/layer\.tar \(diff_id\): content does not match its digest/)
    })
  })
})
