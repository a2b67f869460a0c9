import {randomBytes} from 'node:crypto'
import {rename, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {MediaType} from '../core/media-types.js'
import type {BlobStore} from './blob-store.js'
import {TREE_INDEX_FILE, type TreeIndex} from './model.js'
import {deriveObjects, generateDocuments} from './objects.js'
import {validateTreeNames} from './validate.js'

/**
 * From a tree's state to its URL space: check the names, write the documents the state implies
 * (tags lists, catalog, referrers) into the store, derive every object. `collectGarbage` (builds)
 * also deletes what nothing reaches any more; a pushing server keeps blobs whose manifest is to come.
 */
export async function finalizeIndex(store: BlobStore, index: Omit<TreeIndex, 'objects'>, options: {collectGarbage: boolean}): Promise<TreeIndex> {
  validateTreeNames(index)
  const documents = generateDocuments(index)
  for (const doc of documents) await store.writeBytes(doc.bytes)
  const objects = deriveObjects(index, documents)
  if (options.collectGarbage) {
    const keep = new Set<string>(objects.map((o) => o.digest))
    await store.retainOnly(keep)
    // Drop records nothing reaches any more (a retagged image's old manifests).
    for (const digest of Object.keys(index.manifests)) if (!keep.has(digest)) delete index.manifests[digest]
    for (const digest of Object.keys(index.blobs)) if (!keep.has(digest)) delete index.blobs[digest]
  }
  return {...index, objects}
}

async function replaceFile(file: string, content: string): Promise<void> {
  const temp = `${file}.tmp-${randomBytes(4).toString('hex')}`
  await writeFile(temp, content, {flush: true})
  await rename(temp, file)
}

/** registry.json, and the OCI layout files: `skopeo copy oci:DIR:team/app:1.0 ...` works on a tree. Each replaced atomically. */
export async function writeTreeFiles(dir: string, index: TreeIndex): Promise<void> {
  const manifests = []
  for (const name of Object.keys(index.repositories).sort()) {
    for (const [tag, digest] of Object.entries(index.repositories[name].tags).sort()) {
      const record = index.manifests[digest]
      manifests.push({mediaType: record.mediaType, digest, size: record.size, annotations: {'org.opencontainers.image.ref.name': `${name}:${tag}`}})
    }
  }
  await replaceFile(path.join(dir, 'oci-layout'), JSON.stringify({imageLayoutVersion: '1.0.0'}))
  await replaceFile(path.join(dir, 'index.json'), JSON.stringify({schemaVersion: 2, mediaType: MediaType.OciIndex, manifests}))
  await replaceFile(path.join(dir, TREE_INDEX_FILE), JSON.stringify(index, null, 1))
}
