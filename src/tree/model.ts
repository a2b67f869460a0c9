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
  subject?: string
  artifactType?: string
}

export interface RepositoryRecord {
  tags: Record<string, string>
}

export interface TreeSettings {
  /** Cache-Control max-age of mutable objects (tags, lists), seconds */
  tagMaxAge: number
}

/** `registry.json`: the state of a tree, and the list of objects every backend consumes. */
export interface TreeIndex {
  schemaVersion: 1
  generator: 'reg'
  settings: TreeSettings
  repositories: Record<string, RepositoryRecord>
  manifests: Record<string, ManifestRecord>
  blobs: Record<string, {size: number; mediaType: string}>
  objects: RegistryObject[]
}

export const TREE_INDEX_FILE = 'registry.json'
export const DEFAULT_TAG_MAX_AGE = 60
