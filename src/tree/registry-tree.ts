import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {errnoCode, RegError} from '../core/errors.js'
import {validateName} from '../core/reference.js'
import {BlobStore} from './blob-store.js'
import {type RegistryObject, TREE_INDEX_FILE, type TreeIndex} from './model.js'
import {deriveObjects, generateDocuments} from './objects.js'
import {validateTreeNames} from './validate.js'

/**
 * A built tree on disk, read-only: its index and its objects, keyed by URL path. What `reg serve`,
 * `reg ls` and every backend read.
 */
export class RegistryTree {
  readonly store: BlobStore
  readonly objectsByPath: ReadonlyMap<string, RegistryObject>

  /** `overlay`: a store of documents that exist only in this view (see `withNamePrefix`) */
  private constructor(readonly dir: string, readonly index: TreeIndex, private readonly overlay?: BlobStore) {
    this.store = new BlobStore(dir)
    this.objectsByPath = new Map(index.objects.map((o) => [o.path, o]))
  }

  static async load(dir: string): Promise<RegistryTree> {
    const index = await readTreeIndex(dir)
    if (!index) throw new RegError(`${dir} is not a reg tree (no ${TREE_INDEX_FILE})`, 'build one first: reg build SOURCE -o DIR')
    return new RegistryTree(dir, index)
  }

  /** Where the bytes of an object are. */
  fileOf(object: RegistryObject): string {
    return this.overlay && !(object.digest in this.index.blobs) && !(object.digest in this.index.manifests)
      ? this.overlay.pathOf(object.digest)
      : this.store.pathOf(object.digest)
  }

  /**
   * The same images served under `prefix/` (deploy --name-prefix): repositories renamed, and the
   * documents that name them (tags lists, catalog, referrers) generated again into `scratch`.
   * The tree on disk is not touched.
   */
  async withNamePrefix(prefix: string, scratch: string): Promise<RegistryTree> {
    const ns = validateName(prefix.replace(/^\/+|\/+$/g, ''))
    const repositories = Object.fromEntries(Object.entries(this.index.repositories).map(([name, record]) => [`${ns}/${name}`, record]))
    const renamed = {...this.index, repositories}
    validateTreeNames(renamed)
    const documents = generateDocuments(renamed)
    const overlay = new BlobStore(scratch)
    await overlay.init()
    for (const doc of documents) await overlay.writeBytes(doc.bytes)
    return new RegistryTree(this.dir, {...renamed, objects: deriveObjects(renamed, documents)}, overlay)
  }

  get objects(): readonly RegistryObject[] {
    return this.index.objects
  }
}

/** The index of a tree, or undefined when `dir` has none. */
export async function readTreeIndex(dir: string): Promise<TreeIndex | undefined> {
  let text: string
  try {
    text = await readFile(path.join(dir, TREE_INDEX_FILE), 'utf8')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return undefined
    throw error
  }
  let index: TreeIndex
  try {
    index = JSON.parse(text) as TreeIndex
  } catch (error) {
    throw new RegError(`${path.join(dir, TREE_INDEX_FILE)} is corrupt (${(error as Error).message})`, 'rebuild the tree with --clean')
  }
  if (index.schemaVersion !== 1 || index.generator !== 'reg') throw new RegError(`${path.join(dir, TREE_INDEX_FILE)} was not written by this version of reg`, 'rebuild the tree with --clean')
  return index
}
