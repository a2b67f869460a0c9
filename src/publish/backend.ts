import type {RegistryObject} from '../tree/model.js'
import type {RegistryTree} from '../tree/registry-tree.js'
import type {PublishPlan} from './plan.js'

/** What a host can do; the plan and the host configuration follow from it. */
export interface BackendCapabilities {
  /** can send Docker-Content-Digest, the API version header and per-object Content-Type */
  customHeaders: boolean
  /** can serve many URLs from one stored file (nginx/Apache rewrites, _redirects 200 rules) */
  rewrites: boolean
  /** can answer with redirects to another URL */
  redirects: boolean
  /** can protect reads with basic auth */
  basicAuth: boolean
  /** `copyObject` is cheap (hardlink, S3 CopyObject): no bytes are uploaded again */
  serverSideCopy: boolean
  /**
   * serves URLs that differ only in case (tags `v1` and `V1`) as different objects. A host that
   * cannot (`false`, the default) is refused a deploy holding such a pair, before anything is
   * written; `'destination-file-system'`: as the local destination's file system does, probed at
   * deploy time (tags are files there).
   */
  caseSensitiveTags?: boolean | 'destination-file-system'
}

/** What is deployed under a storage key, from one listing. `digest` is known when the host or our state file keeps it. */
export interface RemoteObject {
  key: string
  size: number
  digest?: string
  /** the MD5 hex of the bytes, where the host reports one (S3's ETag of a single-part upload) */
  md5?: string
}

export interface RemoteState {
  objects: ReadonlyMap<string, RemoteObject>
}

/**
 * The one small interface of a backend plugin (`plugins/backend-<name>/`). Backends never parse
 * manifests: they get objects whose headers are already decided, and bytes as files of the tree.
 */
export interface Backend {
  readonly name: string
  readonly capabilities: BackendCapabilities
  /** a human description of where it deploys, for messages: `dir ./public` */
  readonly location: string
  /** the local directory it writes into, for backends that write one (dir, nginx, apache) */
  readonly localDirectory?: string
  /**
   * Where an object's bytes are stored on this host. Objects with the same key are stored once
   * (a host with rewrites keeps one copy of a blob for every repository); `null` means the host
   * configuration answers the URL (a tag rewritten to its manifest). Default: the URL path.
   */
  storageKeyOf?(object: RegistryObject): string | null
  describeRemote(): Promise<RemoteState>
  putObject(key: string, object: RegistryObject, file: string): Promise<void>
  /** store `object` under `key` from the deployed copy at `fromKey` (same bytes) */
  copyObject(fromKey: string, key: string, object: RegistryObject): Promise<void>
  deleteObject(key: string): Promise<void>
  /** host configuration (nginx.conf, .htaccess, _headers...) and anything to do after all objects are in place */
  writeHostConfig?(tree: RegistryTree, plan: PublishPlan): Promise<void>
  /**
   * Hosts that deploy atomically (Netlify, Pages) stage every step and publish them here, in one
   * deploy that goes live whole: after the host configuration and the prune phase.
   */
  finish?(tree: RegistryTree): Promise<HostDeployReport>
  /** is this failure worth another try (throttling, 5xx, resets)? */
  isRetryable?(error: unknown): boolean
}

/** What an atomic host did in `finish`: the bytes it asked for, and where the registry now is. */
export interface HostDeployReport {
  /** files the host asked for (it already had the rest, by content hash) */
  uploadedFiles: number
  uploadedBytes: number
  /** the registry's base URL on this host */
  url?: string
  /** lines to show the user: deploy URL, pull command */
  messages: string[]
}
