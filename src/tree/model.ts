import type {Platform} from '../core/manifest.js'

/** What a URL under /v2/ is, which decides its headers and its place in the publish order. */
export type ObjectClass =
  | 'api-root'
  | 'blob'
  | 'digest-manifest'
  | 'tag-manifest'
  | 'tags-list'
  | 'catalog'
  | 'referrers'
  // the catalog page (reg build --page), outside /v2/: HTML, its hashed CSS and script, and its JSON data
  | 'page'
  | 'page-asset'
  | 'page-data'

/**
 * One object of the registry's URL space, backend-neutral: its path, its bytes (by digest, in the
 * tree's blob store) and the headers a host must send with it. Backends never parse manifests;
 * they get these.
 */
export interface RegistryObject {
  /** URL path without the leading "/": `v2/team/app/manifests/1.0`; the API root is `v2/` */
  path: string
  class: ObjectClass
  repository?: string
  /** sha256 of the bytes: the key of the content in the tree's blob store */
  digest: string
  size: number
  /** for digest manifests: whether it is an index (published after the manifests it lists) */
  isIndex?: boolean
  headers: Record<string, string>
}

export interface ManifestRecord {
  mediaType: string
  size: number
  kind: 'index' | 'image'
  /** child manifests (indexes) */
  children: string[]
  /** config and layers (images) */
  blobs: string[]
  platform?: Platform
  /** the manifest this one refers to (a signature, an SBOM): it is listed among the subject's referrers */
  subject?: string
  /** for referrers: the manifest's artifactType, else its config's media type (what the referrers API lists) */
  artifactType?: string
  /** for referrers: the manifest's annotations, listed by the referrers API */
  annotations?: Record<string, string>
  /** for images, with the catalog page on: what the page shows of the image's config (read when built) */
  config?: ImageConfigSummary
}

/** What the catalog page shows of an image's config: when it was created, and its well-known labels. */
export interface ImageConfigSummary {
  created?: string
  labels?: Record<string, string>
}

export interface RepositoryRecord {
  tags: Record<string, string>
  /** manifests the repository holds without a tag (pushed by digest, referrers mirrored with their subject), sorted */
  untagged?: string[]
  /** when each tag was last set (ISO 8601), for retention by age; trees written before it have none */
  tagged?: Record<string, string>
}

export interface TreeSettings {
  /** Cache-Control max-age of mutable objects (tags, lists), seconds */
  tagMaxAge: number
  /** publish the catalog page (reg build --page) */
  page?: boolean
  /** the registry's public URL, for the page's pull commands (reg build --public-url); else the page's own host */
  publicUrl?: string
}

/** The format of `registry.json` this version writes. Version 1 also listed the objects; they are derived now. */
export const TREE_INDEX_SCHEMA_VERSION = 2

/**
 * `registry.json`: the state of a tree. Everything else (the generated documents, the objects every
 * backend consumes) is derived from it, so it holds nothing twice.
 */
export interface TreeState {
  /** the format of the file the state was read from (1 or 2); always written as the current one */
  schemaVersion: 1 | typeof TREE_INDEX_SCHEMA_VERSION
  generator: 'reg'
  settings: TreeSettings
  repositories: Record<string, RepositoryRecord>
  manifests: Record<string, ManifestRecord>
  blobs: Record<string, {size: number; mediaType: string}>
}

/** A loaded tree: its state, and the objects of its URL space derived from it. */
export interface TreeIndex extends TreeState {
  objects: RegistryObject[]
}

/**
 * A map keyed by names other people choose (repositories, tags): no prototype, so a tag
 * `__proto__` or a repository `constructor` is a key like any other, never an inherited member.
 */
export function dict<T>(entries?: Iterable<readonly [string, T]>): Record<string, T> {
  const map = Object.create(null) as Record<string, T>
  for (const [key, value] of entries ?? []) map[key] = value
  return map
}

/** The state of a tree with nothing in it. */
export function emptyIndex(tagMaxAge = DEFAULT_TAG_MAX_AGE): TreeState {
  return {schemaVersion: TREE_INDEX_SCHEMA_VERSION, generator: 'reg', settings: {tagMaxAge}, repositories: dict(), manifests: dict(), blobs: dict()}
}

/** Where a tag goes: the repository's record, created when it is the first tag. */
export function repositoryRecord(index: Pick<TreeState, 'repositories'>, name: string): RepositoryRecord {
  index.repositories[name] ??= {tags: dict()}
  return index.repositories[name]
}

export const TREE_INDEX_FILE = 'registry.json'
export const DEFAULT_TAG_MAX_AGE = 60

/**
 * What a tree stores of its images: every blob and manifest, each counted once (`bytesStored` of
 * `reg build` and `reg ls`; the documents generated from them, tags lists and the catalog, are not).
 */
export function blobAndManifestBytes(state: {blobs: Record<string, {size: number}>; manifests: Record<string, {size: number}>}): number {
  let total = 0
  for (const blob of Object.values(state.blobs)) total += blob.size
  for (const manifest of Object.values(state.manifests)) total += manifest.size
  return total
}
