import {createReadStream} from 'node:fs'
import {MAX_MANIFEST_BYTES, readFileBounded} from '../core/limits.js'
import type {Readable} from 'node:stream'
import type {ImageSource} from '../core/image-source.js'
import type {Descriptor} from '../core/manifest.js'
import {BlobStore} from '../tree/blob-store.js'
import {finalizeIndex, writeTreeFiles} from '../tree/finalize.js'
import {GraphIngester} from '../tree/ingest.js'
import {emptyIndex, repositoryRecord} from '../tree/model.js'
import {readTreeIndex} from '../tree/registry-tree.js'

/** The tree's own store as a source: a tagged manifest is ingested from what arrived before it. */
class StoreSource implements ImageSource {
  readonly description = 'content in the store'
  constructor(private readonly store: BlobStore) {}
  async roots() {
    return []
  }
  readManifest(descriptor: Descriptor): Promise<Buffer> {
    return readFileBounded(this.store.pathOf(descriptor.digest), MAX_MANIFEST_BYTES, `manifest ${descriptor.digest}`)
  }
  async openBlob(descriptor: Descriptor): Promise<Readable> {
    return createReadStream(this.store.pathOf(descriptor.digest))
  }
  async close() {}
}

/**
 * The one writer of a served tree's index (pushes and the proxy share it): tags are published and
 * deleted one at a time, each by an atomic rewrite of the index, which `reg serve` then picks up.
 * Content must already be in the store; publishing verifies the whole graph.
 */
export class TreeWriter {
  readonly store: BlobStore
  private queue: Promise<unknown> = Promise.resolve()

  constructor(readonly dir: string) {
    this.store = new BlobStore(dir)
  }

  /** A new directory becomes an empty tree. */
  async ensureTree(): Promise<void> {
    if (await readTreeIndex(this.dir)) return
    await this.store.init()
    await writeTreeFiles(this.dir, await finalizeIndex(this.store, emptyIndex(), {collectGarbage: false}))
  }

  private serialized<T>(update: () => Promise<T>): Promise<T> {
    const result = this.queue.then(update)
    this.queue = result.catch(() => undefined)
    return result
  }

  publishTag(name: string, tag: string, descriptor: Descriptor): Promise<void> {
    return this.serialized(async () => {
      const index = (await readTreeIndex(this.dir)) ?? emptyIndex()
      await this.store.init()
      await new GraphIngester(this.store, index).ingest(new StoreSource(this.store), descriptor, `${name}:${tag}`)
      repositoryRecord(index, name).tags[tag] = descriptor.digest
      await writeTreeFiles(this.dir, await finalizeIndex(this.store, index, {collectGarbage: false}))
    })
  }

  /** Delete a tag, or with a digest every tag of `name` pointing at it; false when there is none. */
  deleteTag(name: string, reference: string): Promise<boolean> {
    return this.serialized(async () => {
      const index = await readTreeIndex(this.dir)
      const tags = Object.entries(index?.repositories[name]?.tags ?? {}).filter(([tag, digest]) => tag === reference || digest === reference)
      if (!index || tags.length === 0) return false
      for (const [tag] of tags) delete index.repositories[name].tags[tag]
      if (Object.keys(index.repositories[name].tags).length === 0) delete index.repositories[name]
      await writeTreeFiles(this.dir, await finalizeIndex(this.store, index, {collectGarbage: false}))
      return true
    })
  }
}
