import {sha256} from '../core/digest.js'
import {MediaType} from '../core/media-types.js'
import {pageDocuments} from '../page/documents.js'
import type {ManifestRecord, ObjectClass, RegistryObject, TreeState} from './model.js'

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
  /** the catalog page's files say their own (HTML, CSS, script); the registry's are JSON */
  contentType?: string
  bytes: Buffer
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value))
}

/** Every manifest digest a repository serves: its tags, its untagged manifests, and everything they reach. */
export function repositoryManifests(index: Pick<TreeState, 'repositories' | 'manifests'>, name: string): Set<string> {
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

export function repositoryBlobs(index: Pick<TreeState, 'manifests'>, manifests: Iterable<string>): Set<string> {
  const blobs = new Set<string>()
  for (const digest of manifests) for (const blob of index.manifests[digest]?.blobs ?? []) blobs.add(blob)
  return blobs
}

function referrersOf(index: Pick<TreeState, 'manifests'>, manifests: Set<string>): Map<string, string[]> {
  const bySubject = new Map<string, string[]>()
  for (const digest of manifests) {
    const subject = index.manifests[digest]?.subject
    // A referrer is listed even when its subject is not (yet) in the repository: the spec lets a
    // signature arrive before the image it signs.
    if (!subject) continue
    const listed = bySubject.get(subject)
    if (listed) listed.push(digest)
    else bySubject.set(subject, [digest])
  }
  return bySubject
}

function referrersIndex(index: Pick<TreeState, 'manifests'>, digests: string[]): Buffer {
  const manifests = digests.sort().map((digest) => {
    const record: ManifestRecord = index.manifests[digest]
    return {mediaType: record.mediaType, digest, size: record.size, ...(record.artifactType ? {artifactType: record.artifactType} : {}), ...(record.annotations ? {annotations: record.annotations} : {})}
  })
  return json({schemaVersion: 2, mediaType: MediaType.OciIndex, manifests})
}

/** The documents a tree's state implies, the catalog page's too. Sorted, so the same state always gives the same bytes. */
export function generateDocuments(index: Pick<TreeState, 'repositories' | 'manifests' | 'blobs' | 'settings'>): GeneratedDocument[] {
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
  documents.push(...pageDocuments(index))
  return documents
}

/** The tag of the distribution spec's referrers tag schema for `subject`: `sha256-<hex>`. */
export function referrersTag(subject: string): string {
  return subject.replace(':', '-')
}

/**
 * The URL space of a tree (docs/ARCHITECTURE.md, "Objects and their headers"): every object with the headers it must be served with.
 * Generated documents are stored in the blob store under the sha256 of their bytes, like blobs.
 *
 * Each referrers document is also served as the tag `sha256-<hex of its subject>` and by its own
 * digest (the referrers tag schema): clients that do not use the referrers API, or fall back to the
 * tag when the referrers URL does not answer an index (go-containerregistry, oras), find the same
 * document on every host. These tags are derived objects, not the repository's tags: they are not in
 * its tags list, nor in `reg ls`.
 */
export function deriveObjects(index: TreeState, documents: GeneratedDocument[]): RegistryObject[] {
  const mutable = `public, max-age=${index.settings.tagMaxAge}`
  const objects: RegistryObject[] = []
  // Objects of the same content share one (frozen) headers record: a base layer in every
  // repository, a manifest under several tags. At 100,000 tags that is most of the objects' memory.
  const shared = new Map<string, Record<string, string>>()
  const headersOf = (key: string, make: () => Record<string, string>): Record<string, string> => {
    let headers = shared.get(key)
    if (!headers) shared.set(key, (headers = Object.freeze(make())))
    return headers
  }
  /** by repository: the referrers tags to serve, and the documents they serve */
  const referrersTags = new Map<string, Array<{tag: string; digest: string; size: number}>>()
  for (const doc of documents) {
    const contentType = doc.contentType ?? (doc.class === 'referrers' ? MediaType.OciIndex : 'application/json')
    // The page's hashed assets never change under their name; its HTML and data change like tags.
    const cacheControl = doc.class === 'api-root' ? 'no-cache' : doc.class === 'page-asset' ? IMMUTABLE : mutable
    const digest = sha256(doc.bytes)
    const isPage = doc.class === 'page' || doc.class === 'page-asset' || doc.class === 'page-data'
    objects.push({
      path: doc.path, class: doc.class, repository: doc.repository, digest, size: doc.bytes.length,
      headers: {'Content-Type': contentType, 'Cache-Control': cacheControl, ...(isPage ? {} : API_VERSION_HEADER)},
    })
    if (doc.class === 'referrers' && doc.repository !== undefined) {
      const tag = referrersTag(doc.path.slice(doc.path.lastIndexOf('/') + 1))
      // A tag of that name the repository really has (pushed by a client of the tag schema, or
      // built) wins: it is the user's, never overwritten by the derived one.
      if (!(tag in index.repositories[doc.repository].tags)) {
        referrersTags.set(doc.repository, [...(referrersTags.get(doc.repository) ?? []), {tag, digest, size: doc.bytes.length}])
      }
    }
  }
  for (const name of Object.keys(index.repositories).sort()) {
    const manifests = repositoryManifests(index, name)
    for (const digest of [...repositoryBlobs(index, manifests)].sort()) {
      objects.push({
        path: `v2/${name}/blobs/${digest}`, class: 'blob', repository: name, digest, size: index.blobs[digest].size,
        headers: headersOf(`blob ${digest}`, () => blobHeaders(digest)),
      })
    }
    const fallbacks = referrersTags.get(name) ?? []
    const byDigest = new Map<string, {size: number; mediaType: string; kind: ManifestRecord['kind']}>([...manifests].map((digest) => [digest, index.manifests[digest]]))
    // An index whose entries are manifests of this repository: published with the indexes, before
    // the referrers URL and the tag that first name its digest.
    for (const {digest, size} of fallbacks) if (!byDigest.has(digest)) byDigest.set(digest, {size, mediaType: MediaType.OciIndex, kind: 'index'})
    for (const [digest, record] of [...byDigest].sort(([a], [b]) => (a < b ? -1 : 1))) {
      objects.push({
        path: `v2/${name}/manifests/${digest}`, class: 'digest-manifest', repository: name, digest, size: record.size, isIndex: record.kind === 'index',
        headers: headersOf(`immutable ${record.mediaType} ${digest}`, () => manifestHeaders(record.mediaType, digest, IMMUTABLE)),
      })
    }
    const tags = [
      ...Object.entries(index.repositories[name].tags).map(([tag, digest]) => ({tag, digest, ...index.manifests[digest]})),
      ...fallbacks.map((fallback) => ({...fallback, mediaType: MediaType.OciIndex, kind: 'index' as const})),
    ]
    for (const {tag, digest, size, mediaType, kind} of tags.sort((a, b) => (a.tag < b.tag ? -1 : 1))) {
      objects.push({
        path: `v2/${name}/manifests/${tag}`, class: 'tag-manifest', repository: name, digest, size, isIndex: kind === 'index',
        headers: headersOf(`mutable ${mediaType} ${digest}`, () => manifestHeaders(mediaType, digest, mutable)),
      })
    }
  }
  return objects
}

/**
 * Every digest the tree's URL space serves, without deriving its objects: what a garbage
 * collection keeps. The same digests as `deriveObjects` gives, `documentDigests` those of the
 * generated documents.
 */
export function servedDigests(index: Pick<TreeState, 'repositories' | 'manifests'>, documentDigests: Iterable<string>): Set<string> {
  const served = new Set<string>(documentDigests)
  for (const name of Object.keys(index.repositories)) {
    const manifests = repositoryManifests(index, name)
    for (const digest of manifests) served.add(digest)
    for (const digest of repositoryBlobs(index, manifests)) served.add(digest)
  }
  return served
}
