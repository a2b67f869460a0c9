import {MediaType} from '../core/media-types.js'
import type {RegistryObject, TreeIndex} from '../tree/model.js'
import {IMMUTABLE} from '../tree/objects.js'
import {errorBody, notFoundError, UNSUPPORTED_MESSAGE} from '../core/api-errors.js'

/**
 * The file layout shared by hosts that rewrite URLs (nginx, Apache): content-addressed objects
 * are stored once under `_registry/`, whatever repository asks for them, and a few pattern rules
 * map `/v2/<name>/blobs/<digest>` and `/v2/<name>/manifests/<digest>` onto them. A manifest's file
 * name carries its media type as an extension, so one rule per media type sets Content-Type.
 * Tags are not files: the host configuration routes each tag to its manifest, which is what lets
 * it send the manifest's digest with the tag (and makes a retag one atomic config change).
 */
export const STORE_DIR = '_registry'
export const ERRORS_DIR = `${STORE_DIR}/errors`

export const MANIFEST_EXTENSIONS: Readonly<Record<string, string>> = {
  [MediaType.OciManifest]: 'oci-manifest',
  [MediaType.OciIndex]: 'oci-index',
  [MediaType.DockerManifest]: 'docker-manifest',
  [MediaType.DockerManifestList]: 'docker-list',
}

export {DIGEST_PATTERN, TAG_PATTERN} from '../core/api-errors.js'

/** `text` as a regular expression matching exactly it (a URL or a tag in a host's rewrite rules). */
export function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

export function manifestKey(digest: string, mediaType: string): string {
  return `${STORE_DIR}/manifests/${digest}.${MANIFEST_EXTENSIONS[mediaType]}`
}

/** Where each object lives on a rewriting host; tags are answered by the configuration (null). */
export function staticStorageKey(object: RegistryObject): string | null {
  switch (object.class) {
    case 'blob': return `${STORE_DIR}/blobs/${object.digest}`
    case 'digest-manifest': return manifestKey(object.digest, object.headers['Content-Type'])
    case 'tag-manifest': return null
    case 'api-root': return 'v2/index.json'
    default: return object.path
  }
}

export interface TagRoute {
  repository: string
  tag: string
  /** URL path of the tag, with the leading "/" */
  url: string
  digest: string
  /** storage key of the manifest it serves */
  key: string
}

/** The routes of the tags among `routed`, one at a time (a host configuration of 100,000 tags need not hold them all). */
export function* tagRoutes(routed: Iterable<RegistryObject>): Generator<TagRoute> {
  for (const o of routed) {
    if (o.class !== 'tag-manifest') continue
    yield {
      repository: o.repository ?? '',
      tag: o.path.slice(o.path.lastIndexOf('/') + 1),
      url: `/${o.path}`,
      digest: o.digest,
      key: manifestKey(o.digest, o.headers['Content-Type']),
    }
  }
}

/** Cache-Control values by class, from the tree's settings. */
export function cacheControls(index: Pick<TreeIndex, 'settings'>): {immutable: string; mutable: string; root: string; error: string} {
  return {immutable: IMMUTABLE, mutable: `public, max-age=${index.settings.tagMaxAge}`, root: 'no-cache', error: 'no-store'}
}

/** The spec JSON error bodies a static host serves with its 404s and 405s, as files. */
export const ERROR_DOCUMENTS: ReadonlyArray<{file: string; body: string}> = [
  {file: 'manifest-unknown.json', body: errorBody('MANIFEST_UNKNOWN', notFoundError('v2/x/manifests/latest').message)},
  {file: 'blob-unknown.json', body: errorBody('BLOB_UNKNOWN', notFoundError(`v2/x/blobs/sha256:${'0'.repeat(64)}`).message)},
  {file: 'name-unknown.json', body: errorBody('NAME_UNKNOWN', notFoundError('').message)},
  {file: 'unsupported.json', body: errorBody('UNSUPPORTED', UNSUPPORTED_MESSAGE)},
]
