// The local writer shared by the dir, nginx and apache backends: content-addressed files are linked
// straight to their name, mutable ones replaced atomically, and nothing already at a name is trusted
// unless it is known to hold the bytes.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {link, lstat, mkdir, readdir, readFile, stat, symlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, describe, it} from 'node:test'
import {LOCAL_STATE_FILE, LocalFileTarget} from '../src/publish/local-files.js'
import type {ObjectClass, RegistryObject} from '../src/tree/model.js'
import {removeTempDirs, tempDir} from './support.js'

const BLOB_KEY = 'store/blobs/sha256:0123'
const TAGS_KEY = 'v2/team/app/tags/list'

/** A source file (as in the tree's store) and the object it is. */
async function source(dir: string, name: string, bytes: string, kind: ObjectClass): Promise<{file: string; object: RegistryObject}> {
  const file = path.join(dir, name)
  await writeFile(file, bytes)
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`
  return {file, object: {path: `v2/${name}`, class: kind, digest, size: Buffer.byteLength(bytes), headers: {}}}
}

async function setUp(): Promise<{sources: string; dest: string; target: LocalFileTarget}> {
  const work = await tempDir()
  const sources = path.join(work, 'tree')
  const dest = path.join(work, 'out')
  await mkdir(sources)
  const target = new LocalFileTarget(dest, ['store', 'v2'])
  await target.describe()
  return {sources, dest, target}
}

describe('LocalFileTarget', () => {
  after(removeTempDirs)

  it('links a content-addressed file to its name: the tree\'s inode, no temporary file left', async () => {
    const {sources, dest, target} = await setUp()
    const blob = await source(sources, 'blob', 'layer bytes', 'blob')
    await target.put(BLOB_KEY, blob.object, blob.file)
    const [placed, original] = await Promise.all([stat(path.join(dest, BLOB_KEY)), stat(blob.file)])
    assert.equal(placed.ino, original.ino)
    assert.deepEqual(await readdir(path.dirname(path.join(dest, BLOB_KEY))), [path.basename(BLOB_KEY)])
  })

  it('replaces a content-addressed file left with other bytes of another size', async () => {
    const {sources, dest, target} = await setUp()
    const blob = await source(sources, 'blob', 'layer bytes', 'blob')
    await mkdir(path.dirname(path.join(dest, BLOB_KEY)), {recursive: true})
    await writeFile(path.join(dest, BLOB_KEY), 'not the layer at all')
    await target.put(BLOB_KEY, blob.object, blob.file)
    assert.equal(await readFile(path.join(dest, BLOB_KEY), 'utf8'), 'layer bytes')
  })

  it('replaces a content-addressed file of the same size the state says holds other bytes', async () => {
    const work = await tempDir()
    const sources = path.join(work, 'tree')
    const dest = path.join(work, 'out')
    await mkdir(sources)
    const blob = await source(sources, 'blob', 'layer bytes', 'blob')
    await mkdir(path.dirname(path.join(dest, BLOB_KEY)), {recursive: true})
    await writeFile(path.join(dest, BLOB_KEY), 'LAYER BYTES')
    await writeFile(path.join(dest, LOCAL_STATE_FILE), JSON.stringify({objects: {[BLOB_KEY]: `sha256:${'0'.repeat(64)}`}}))
    const target = new LocalFileTarget(dest, ['store', 'v2'])
    await target.describe()
    await target.put(BLOB_KEY, blob.object, blob.file)
    assert.equal(await readFile(path.join(dest, BLOB_KEY), 'utf8'), 'layer bytes')
  })

  it('replaces a symlink at a content-addressed name, leaving its target alone', async () => {
    const {sources, dest, target} = await setUp()
    const outside = path.join(path.dirname(dest), 'outside')
    await writeFile(outside, 'someone else\'s file')
    const blob = await source(sources, 'blob', 'layer bytes', 'blob')
    await mkdir(path.dirname(path.join(dest, BLOB_KEY)), {recursive: true})
    await symlink(outside, path.join(dest, BLOB_KEY))
    await target.put(BLOB_KEY, blob.object, blob.file)
    assert.ok((await lstat(path.join(dest, BLOB_KEY))).isFile())
    assert.equal(await readFile(path.join(dest, BLOB_KEY), 'utf8'), 'layer bytes')
    assert.equal(await readFile(outside, 'utf8'), 'someone else\'s file')
  })

  it('replaces a mutable file by a rename: the old file is never written to', async () => {
    const {sources, dest, target} = await setUp()
    const tags = await source(sources, 'tags', '{"tags":["1.0","2.0"]}', 'tags-list')
    await mkdir(path.dirname(path.join(dest, TAGS_KEY)), {recursive: true})
    await writeFile(path.join(dest, TAGS_KEY), '{"tags":["1.0"]}')
    // A reader holding the old file (as a server mid-response does) still sees the old bytes.
    const reader = path.join(path.dirname(dest), 'held')
    await link(path.join(dest, TAGS_KEY), reader)
    await target.put(TAGS_KEY, tags.object, tags.file)
    assert.equal(await readFile(path.join(dest, TAGS_KEY), 'utf8'), '{"tags":["1.0","2.0"]}')
    assert.equal(await readFile(reader, 'utf8'), '{"tags":["1.0"]}')
    assert.deepEqual(await readdir(path.dirname(path.join(dest, TAGS_KEY))), ['list'])
  })

  it('writes again into a directory a deletion removed', async () => {
    const {sources, dest, target} = await setUp()
    const first = await source(sources, 'first', 'first', 'blob')
    const second = await source(sources, 'second', 'second', 'blob')
    await target.put('store/blobs/a/one', first.object, first.file)
    await target.delete('store/blobs/a/one')
    await assert.rejects(stat(path.join(dest, 'store/blobs/a')))
    await target.put('store/blobs/a/two', second.object, second.file)
    assert.equal(await readFile(path.join(dest, 'store/blobs/a/two'), 'utf8'), 'second')
  })

  it('describes what is deployed: every regular file under the roots, with its size and the digest the state names', async () => {
    const work = await tempDir()
    const dest = path.join(work, 'out')
    const files: Record<string, string> = {'v2/a/tags/list': '12', 'v2/a/z': '1', 'v2/b/c/d/e': '1234', 'store/blobs/x': '123', 'other/f': 'not a root'}
    for (const [key, bytes] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dest, key)), {recursive: true})
      await writeFile(path.join(dest, key), bytes)
    }
    await writeFile(path.join(dest, 'v2/a/.tmp-123456'), 'a temporary file')
    await symlink(path.join(dest, 'v2/a/z'), path.join(dest, 'v2/b/link'))
    await writeFile(path.join(dest, LOCAL_STATE_FILE), JSON.stringify({objects: {'v2/a/z': 'sha256:1'}}))
    const state = await new LocalFileTarget(dest, ['v2', 'store']).describe()
    assert.deepEqual([...state.objects.values()].sort((a, b) => (a.key < b.key ? -1 : 1)), [
      {key: 'store/blobs/x', size: 3, digest: undefined},
      {key: 'v2/a/tags/list', size: 2, digest: undefined},
      {key: 'v2/a/z', size: 1, digest: 'sha256:1'},
      {key: 'v2/b/c/d/e', size: 4, digest: undefined},
    ])
  })

  it('refuses a key outside the destination', async () => {
    const {sources, target} = await setUp()
    const blob = await source(sources, 'blob', 'layer bytes', 'blob')
    await assert.rejects(target.put('../escape', blob.object, blob.file), /refusing to write outside/)
  })
})
