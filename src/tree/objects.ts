import {sha256} from '../core/digest.js'
import {MediaType} from '../core/media-types.js'
import type {ManifestRecord, ObjectClass, RegistryObject, TreeIndex} from './model.js'

export const API_VERSION_HEADER = {'Docker-Distribution-API-Version': 'registry/2.0'}
export const IMMUTABLE = 'public, max-age=31536000, immutable'

/** The headers of a blob, wherever it is served from. */
export function blobHeaders(digest: string): Record<string, string> {
  return {'Content-Type': 'application/octet-stream', 'Docker-Content-Digest': digest, 'Cache-Control': IMMUTABLE, ...API_VERSION_HEADER}
}

/** The headers of a manifest: immutable by digest, `public, max-age=…` by tag. */
export function manifestHeaders(mediaType: string, digest: string, cacheControl: string): Record<string, string> {
  return {'Content-Type': mediaType, 'Docker-Content-Digest': digest, 'Cache-Control': cacheControl, ...API_VERSION_HEADER}
}

/** Bytes the tree generates (not copied from a source): `/v2/`, tags lists, the catalog, referrers. */
export interface GeneratedDocument {
  path: string
  class: ObjectClass
  repository?: string
  bytes: Buffer
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value))
}

/** Every manifest digest a repository serves: its tags, its untagged manifests, and everything they reach. */
export function repositoryManifests(index: Pick<TreeIndex, 'repositories' | 'manifests'>, name: string): Set<string> {
  const reached = new Set<string>()
  const visit = (digest: string) => {
    if (reached.has(digest)) return
    reached.add(digest)
    for (const child of index.manifests[digest]?.children ?? []) visit(child)
  }
  const repository = index.repositories[name]
  for (const digest of Object.values(repository?.tags ?? {})) visit(digest)
  for (const digest of repository?.untagged ?? []) visit(digest)
  return reached
}

export function repositoryBlobs(index: Pick<TreeIndex, 'manifests'>, manifests: Iterable<string>): Set<string> {
  const blobs = new Set<string>()
  for (const digest of manifests) for (const blob of index.manifests[digest]?.blobs ?? []) blobs.add(blob)
  return blobs
}

function referrersOf(index: Pick<TreeIndex, 'manifests'>, manifests: Set<string>): Map<string, string[]> {
  const bySubject = new Map<string, string[]>()
  for (const digest of manifests) {
    const subject = index.manifests[digest]?.subject
    if (subject && manifests.has(subject)) bySubject.set(subject, [...(bySubject.get(subject) ?? []), digest])
  }
  return bySubject
}

function referrersIndex(index: Pick<TreeIndex, 'manifests'>, digests: string[]): Buffer {
  const manifests = digests.sort().map((digest) => {
    const record: ManifestRecord = index.manifests[digest]
    return {mediaType: record.mediaType, digest, size: record.size, ...(record.artifactType ? {artifactType: record.artifactType} : {}), ...(record.annotations ? {annotations: record.annotations} : {})}
  })
  return json({schemaVersion: 2, mediaType: MediaType.OciIndex, manifests})
}

/** The documents a tree's state implies. Sorted, so the same state always gives the same bytes. */
export function generateDocuments(index: Pick<TreeIndex, 'repositories' | 'manifests'>): GeneratedDocument[] {
  const names = Object.keys(index.repositories).sort()
  const documents: GeneratedDocument[] = [
    {path: 'v2/', class: 'api-root', bytes: json({})},
    {path: 'v2/_catalog', class: 'catalog', bytes: json({repositories: names})},
  ]
  for (const name of names) {
    const tags = Object.keys(index.repositories[name].tags).sort()
    documents.push({path: `v2/${name}/tags/list`, class: 'tags-list', repository: name, bytes: json({name, tags})})
    for (const [subject, referrers] of referrersOf(index, repositoryManifests(index, name))) {
      documents.push({path: `v2/${name}/referrers/${subject}`, class: 'referrers', repository: name, bytes: referrersIndex(index, referrers)})
    }
  }
  return documents
}

/**
 * The URL space of a tree (DESIGN §3): every object with the headers it must be served with.
 * Generated documents are stored in the blob store under the sha256 of their bytes, like blobs.
 */
export function deriveObjects(index: Omit<TreeIndex, 'objects'>, documents: GeneratedDocument[]): RegistryObject[] {
  const mutable = `public, max-age=${index.settings.tagMaxAge}`
  const objects: RegistryObject[] = []
  for (const doc of documents) {
    const contentType = doc.class === 'referrers' ? MediaType.OciIndex : 'application/json'
    const cacheControl = doc.class === 'api-root' ? 'no-cache' : mutable
    objects.push({
      path: doc.path, class: doc.class, repository: doc.repository, digest: sha256(doc.bytes), size: doc.bytes.length,
      headers: {'Content-Type': contentType, 'Cache-Control': cacheControl, ...API_VERSION_HEADER},
    })
  }
  for (const name of Object.keys(index.repositories).sort()) {
    const manifests = repositoryManifests(index, name)
    for (const digest of [...repositoryBlobs(index, manifests)].sort()) {
      objects.push({
        path: `v2/${name}/blobs/${digest}`, class: 'blob', repository: name, digest, size: index.blobs[digest].size,
        headers: blobHeaders(digest),
      })
    }
    for (const digest of [...manifests].sort()) {
      const record = index.manifests[digest]
      objects.push({
        path: `v2/${name}/manifests/${digest}`, class: 'digest-manifest', repository: name, digest, size: record.size, isIndex: record.kind === 'index',
        headers: manifestHeaders(record.mediaType, digest, IMMUTABLE),
      })
    }
    for (const [tag, digest] of Object.entries(index.repositories[name].tags).sort(([a], [b]) => (a < b ? -1 : 1))) {
      const record = index.manifests[digest]
      objects.push({
        path: `v2/${name}/manifests/${tag}`, class: 'tag-manifest', repository: name, digest, size: record.size, isIndex: record.kind === 'index',
        headers: manifestHeaders(record.mediaType, digest, mutable),
      })
    }
  }
  return objects
}
