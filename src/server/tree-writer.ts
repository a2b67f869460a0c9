import {createReadStream} from 'node:fs'
import {describeError} from '../core/errors.js'
import {MAX_MANIFEST_BYTES, readFileBounded} from '../core/limits.js'
import type {Readable} from 'node:stream'
import type {ImageSource} from '../core/image-source.js'
import type {Descriptor} from '../core/manifest.js'
import {BlobStore} from '../tree/blob-store.js'
import {summarizeConfigs} from '../page/config-summary.js'
import {finalizeIndex, writeTreeFiles} from '../tree/finalize.js'
import {GraphIngester} from '../tree/ingest.js'
import {dict, emptyIndex, repositoryRecord, type TreeIndex} from '../tree/model.js'
import {repositoryManifests} from '../tree/objects.js'
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

  /**
   * The served tree's index as it is now. Failing to read it is the server's trouble, never a
   * client's: not a RegError (which a push would answer as the client's mistake, naming the file).
   */
  private async readIndex(): Promise<Omit<TreeIndex, 'objects'> | undefined> {
    try {
      return await readTreeIndex(this.dir)
    } catch (error) {
      throw new Error(`the served tree's index cannot be read: ${describeError(error)}`, {cause: error})
    }
  }

  private serialized<T>(update: () => Promise<T>): Promise<T> {
    const result = this.queue.then(update)
    this.queue = result.catch(() => undefined)
    return result
  }

  publishTag(name: string, tag: string, descriptor: Descriptor): Promise<void> {
    return this.publish(name, descriptor, `${name}:${tag}`, (index) => {
      const repository = repositoryRecord(index, name)
      if (repository.tags[tag] !== descriptor.digest) {
        repository.tags[tag] = descriptor.digest
        // When the tag was set, for `reg prune --older-than` (as a build records it).
        ;(repository.tagged ??= dict())[tag] = new Date().toISOString()
      }
      return true
    })
  }

  /**
   * A manifest pushed by digest: the repository holds it without a tag, so it is served, reached
   * (its referrers are listed) and deployed like a tagged one. Kept sorted and unique.
   */
  publishUntagged(name: string, descriptor: Descriptor): Promise<void> {
    return this.publish(name, descriptor, `${name}@${descriptor.digest}`, (index) => {
      const repository = repositoryRecord(index, name)
      const untagged = repository.untagged ?? []
      if (untagged.includes(descriptor.digest)) return false
      repository.untagged = [...untagged, descriptor.digest].sort()
      return true
    })
  }

  /** Ingest (verifying the whole graph) and, when `place` changed the index, rewrite it: once per manifest. */
  private publish(name: string, descriptor: Descriptor, label: string, place: (index: Omit<TreeIndex, 'objects'>) => boolean): Promise<void> {
    return this.serialized(async () => {
      const index = (await this.readIndex()) ?? emptyIndex()
      await this.store.init()
      await new GraphIngester(this.store, index).ingest(new StoreSource(this.store), descriptor, label)
      // The catalog page shows each image's created time and labels: read from its config, as a build does.
      if (index.settings.page) await summarizeConfigs(this.store, index)
      if (place(index)) await writeTreeFiles(this.dir, await finalizeIndex(this.store, index, {collectGarbage: false}))
    })
  }

  /** Delete a tag; false when `name` has no such tag. */
  deleteTag(name: string, tag: string): Promise<boolean> {
    return this.serialized(async () => {
      const index = await this.readIndex()
      const repository = index?.repositories[name]
      if (!index || !repository || !Object.hasOwn(repository.tags, tag)) return false
      delete repository.tags[tag]
      delete repository.tagged?.[tag]
      await this.rewrite(index, name)
      return true
    })
  }

  /**
   * Delete a manifest from `name`: every tag pointing at it, and its untagged entry. Refused while
   * a manifest the repository keeps lists it (an index's child): that index would be served with
   * a child its repository no longer has.
   */
  deleteManifest(name: string, digest: string): Promise<ManifestDeletion> {
    return this.serialized(async (): Promise<ManifestDeletion> => {
      const index = await this.readIndex()
      const repository = index?.repositories[name]
      if (!index || !repository) return {outcome: 'unknown'}
      const tags = Object.keys(repository.tags).filter((tag) => repository.tags[tag] === digest)
      const held = tags.length > 0 || (repository.untagged ?? []).includes(digest)
      for (const tag of tags) {
        delete repository.tags[tag]
        delete repository.tagged?.[tag]
      }
      if (repository.untagged) repository.untagged = repository.untagged.filter((d) => d !== digest)
      const kept = repositoryManifests(index, name)
      if (kept.has(digest)) {
        const parent = [...kept].find((d) => index.manifests[d]?.children.includes(digest)) ?? 'another manifest'
        return {outcome: 'referenced', by: parent}
      }
      if (!held) return {outcome: 'unknown'}
      await this.rewrite(index, name)
      return {outcome: 'deleted'}
    })
  }

  /** Write the index after a deletion; a repository left with nothing in it leaves the catalog. */
  private async rewrite(index: Omit<TreeIndex, 'objects'>, name: string): Promise<void> {
    const repository = index.repositories[name]
    if (repository.untagged?.length === 0) delete repository.untagged
    if (Object.keys(repository.tags).length === 0 && !repository.untagged) delete index.repositories[name]
    await writeTreeFiles(this.dir, await finalizeIndex(this.store, index, {collectGarbage: false}))
  }
}

/** What deleting a manifest did: `referenced` names a manifest of the repository that still lists it. */
export type ManifestDeletion = {outcome: 'deleted' | 'unknown'} | {outcome: 'referenced'; by: string}
