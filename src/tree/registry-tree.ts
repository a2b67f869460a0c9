import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {errnoCode, RegError} from '../core/errors.js'
import {BlobStore} from './blob-store.js'
import {type RegistryObject, TREE_INDEX_FILE, type TreeIndex} from './model.js'

/**
 * A built tree on disk, read-only: its index and its objects, keyed by URL path. What `reg serve`,
 * `reg ls` and every backend read.
 */
export class RegistryTree {
  readonly store: BlobStore
  readonly objectsByPath: ReadonlyMap<string, RegistryObject>

  private constructor(readonly dir: string, readonly index: TreeIndex) {
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
    return this.store.pathOf(object.digest)
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
