import {randomBytes} from 'node:crypto'
import {type FileHandle, open, rename, unlink} from 'node:fs/promises'
import path from 'node:path'
import {MediaType} from '../core/media-types.js'
import type {BlobStore} from './blob-store.js'
import {type ManifestRecord, TREE_INDEX_FILE, TREE_INDEX_SCHEMA_VERSION, type TreeState} from './model.js'
import {generateDocuments, servedDigests} from './objects.js'
import {validateTreeNames} from './validate.js'

/**
 * From a tree's state to its URL space: check the names, write the documents the state implies
 * (tags lists, catalog, referrers) into the store. `collectGarbage` (builds) also deletes what
 * nothing reaches any more; a pushing server keeps blobs whose manifest is to come. The objects
 * themselves are derived when the tree is loaded (`RegistryTree.load`), never held by a build.
 */
export async function finalizeIndex(store: BlobStore, index: TreeState, options: {collectGarbage: boolean}): Promise<TreeState> {
  validateTreeNames(index)
  const documentDigests: string[] = []
  for (const doc of generateDocuments(index)) documentDigests.push(await store.writeBytes(doc.bytes))
  if (options.collectGarbage) {
    const keep = servedDigests(index, documentDigests)
    await store.retainOnly(keep)
    // Drop records nothing reaches any more (a retagged image's old manifests).
    for (const digest of Object.keys(index.manifests)) if (!keep.has(digest)) delete index.manifests[digest]
    for (const digest of Object.keys(index.blobs)) if (!keep.has(digest)) delete index.blobs[digest]
  }
  // A state read from an older format is written in the current one.
  return {...index, schemaVersion: TREE_INDEX_SCHEMA_VERSION}
}

/**
 * Text written to a file in pieces of about 64 KiB: a large index is never one string. Small
 * pieces, too: what waits to be written lives long enough to be promoted to the old generation,
 * whose growth is the build's peak (a megabyte at a time added 10-15 MB to it at 100,000 tags).
 */
class ChunkedWriter {
  private pending: string[] = []
  private pendingLength = 0

  constructor(private readonly handle: FileHandle) {}

  async write(text: string): Promise<void> {
    this.pending.push(text)
    this.pendingLength += text.length
    if (this.pendingLength >= 1 << 16) await this.flush()
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0) return
    const text = this.pending.join('')
    this.pending = []
    this.pendingLength = 0
    await this.handle.writeFile(text)
  }
}

/** Write `file` anew, atomically: into a temporary sibling, made durable, then renamed over it. */
async function replaceFile(file: string, write: (out: ChunkedWriter) => Promise<void>): Promise<void> {
  const temp = `${file}.tmp-${randomBytes(4).toString('hex')}`
  const handle = await open(temp, 'wx')
  try {
    const out = new ChunkedWriter(handle)
    await write(out)
    await out.flush()
    await handle.sync()
  } catch (error) {
    await handle.close()
    await unlink(temp).catch(() => undefined)
    throw error
  }
  await handle.close()
  await rename(temp, file)
}

/** A JSON object written one member a line: `{"key":value,\n"key":value}`. */
async function writeMembers(out: ChunkedWriter, entries: Iterable<readonly [string, unknown]>): Promise<void> {
  let separator = '{\n'
  for (const [key, value] of entries) {
    await out.write(`${separator}${JSON.stringify(key)}:${JSON.stringify(value)}`)
    separator = ',\n'
  }
  await out.write(separator === '{\n' ? '{}' : '}')
}

/** A manifest's record as stored: empty lists left out (an image has no children, an index no blobs). */
function storedRecord({children, blobs, ...record}: ManifestRecord): Partial<ManifestRecord> {
  return {...record, ...(children.length > 0 ? {children} : {}), ...(blobs.length > 0 ? {blobs} : {})}
}

function* storedRecords(manifests: TreeState['manifests']): Generator<readonly [string, Partial<ManifestRecord>]> {
  for (const digest in manifests) yield [digest, storedRecord(manifests[digest])]
}

/**
 * `registry.json`, compact, one repository, manifest or blob a line, written piece by piece (at
 * 100,000 tags it is tens of megabytes: never one string in memory).
 */
async function writeTreeState(out: ChunkedWriter, index: TreeState): Promise<void> {
  await out.write(`{"schemaVersion":${TREE_INDEX_SCHEMA_VERSION},"generator":"reg","settings":${JSON.stringify(index.settings)},\n"repositories":`)
  await writeMembers(out, Object.entries(index.repositories))
  await out.write(',\n"manifests":')
  await writeMembers(out, storedRecords(index.manifests))
  await out.write(',\n"blobs":')
  await writeMembers(out, Object.entries(index.blobs))
  await out.write('}\n')
}

/** index.json: one descriptor per tag, named `repository:tag`, written piece by piece like registry.json. */
async function writeOciIndex(out: ChunkedWriter, index: TreeState): Promise<void> {
  await out.write(`{"schemaVersion":2,"mediaType":${JSON.stringify(MediaType.OciIndex)},"manifests":[`)
  let separator = ''
  for (const name of Object.keys(index.repositories).sort()) {
    for (const [tag, digest] of Object.entries(index.repositories[name].tags).sort()) {
      const record = index.manifests[digest]
      await out.write(separator + JSON.stringify({mediaType: record.mediaType, digest, size: record.size, annotations: {'org.opencontainers.image.ref.name': `${name}:${tag}`}}))
      separator = ','
    }
  }
  await out.write(']}')
}

/** registry.json, and the OCI layout files: `skopeo copy oci:DIR:team/app:1.0 ...` works on a tree. Each replaced atomically. */
export async function writeTreeFiles(dir: string, index: TreeState): Promise<void> {
  await replaceFile(path.join(dir, 'oci-layout'), (out) => out.write(JSON.stringify({imageLayoutVersion: '1.0.0'})))
  await replaceFile(path.join(dir, 'index.json'), (out) => writeOciIndex(out, index))
  await replaceFile(path.join(dir, TREE_INDEX_FILE), (out) => writeTreeState(out, index))
}
