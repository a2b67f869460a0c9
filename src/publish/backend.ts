import type {RetryVerdict} from '../core/retry.js'
import type {RegistryObject} from '../tree/model.js'
import type {RegistryTree} from '../tree/registry-tree.js'

/** What a host can do that changes the plan. */
export interface BackendCapabilities {
  /** `copyObject` is cheap (hardlink, S3 CopyObject): the plan copies what is deployed instead of uploading it again */
  serverSideCopy: boolean
  /**
   * serves URLs that differ only in case (tags `v1` and `V1`) as different objects. A host that
   * cannot (`false`, the default) is refused a deploy holding such a pair, before anything is
   * written; `'destination-file-system'`: as the local destination's file system does, probed at
   * deploy time (tags are files there).
   */
  caseSensitiveTags?: boolean | 'destination-file-system'
  /**
   * puts only stage files into a deploy that goes live whole in `finish` (Netlify, Pages), where the
   * host then asks for the contents it lacks: said so in what a deploy reports, never "upload".
   */
  stagesDeploy?: boolean
  /**
   * can answer a blob's URL with a redirect to another host (`reg deploy --offload`): `how` says so
   * in messages; `by` is where the redirect lives: in the host configuration (the plan routes the
   * blob to it) or in an object at the blob's key (the plan writes a redirect object there).
   */
  offloadRedirects?: {how: string; by: 'configuration' | 'redirect-objects'}
}

/** What is deployed under a storage key, from one listing. `digest` is known when the host or our state file keeps it. */
export interface RemoteObject {
  key: string
  size: number
  digest?: string
  /** the MD5 hex of the bytes, where the host reports one (S3's ETag of a single-part upload) */
  md5?: string
  /** the key this object redirects to: it holds no bytes of its own (see `Backend.sharedKeyOf`) */
  redirectTo?: string
}

export interface RemoteState {
  objects: ReadonlyMap<string, RemoteObject>
  /** deployed keys the last deploys' trees no longer had, and since when (ms since the epoch), from the host's deploy state: what `--prune-grace` counts from */
  unreferencedSince?: ReadonlyMap<string, number>
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
  /**
   * A host that answers some URLs with a redirect to one shared copy (S3 website redirects): the key
   * of that copy for `object`, or undefined where the object is stored at its own key. The plan then
   * puts the bytes once under the shared key and a redirect under each storage key.
   */
  sharedKeyOf?(object: RegistryObject): string | undefined
  describeRemote(signal?: AbortSignal): Promise<RemoteState>
  putObject(key: string, object: RegistryObject, file: string, signal?: AbortSignal): Promise<void>
  /** store `object` under `key` from the deployed copy at `fromKey` (same bytes) */
  copyObject(fromKey: string, key: string, object: RegistryObject, signal?: AbortSignal): Promise<void>
  /** store at `key` a redirect to the deployed copy at `to` (hosts with `sharedKeyOf`) */
  putRedirect?(key: string, to: string, object: RegistryObject, signal?: AbortSignal): Promise<void>
  deleteObject(key: string, signal?: AbortSignal): Promise<void>
  /**
   * Keep in the host's deploy state the deployed keys the tree no longer has and since when (called
   * after the prune phase, before `finish`): a later `--prune` deletes each once its grace is over.
   * A backend without it can only prune at once (`--prune-grace 0`).
   */
  recordUnreferenced?(since: ReadonlyMap<string, number>, signal?: AbortSignal): Promise<void>
  /**
   * The host configuration (nginx.conf, .htaccess, _headers...), its own phase of the plan: after
   * every object it routes to, before anything is pruned. `routed`: the URLs it must answer.
   */
  writeHostConfig?(tree: RegistryTree, routed: readonly RegistryObject[], signal?: AbortSignal): Promise<void>
  /**
   * After every phase (prune included): hosts that deploy atomically (Netlify, Pages) publish what
   * they staged, in one deploy that goes live whole; local hosts record what is deployed.
   */
  finish?(tree: RegistryTree, signal?: AbortSignal): Promise<HostDeployReport | undefined>
  /** lines for the user once the deploy is done: what the host needs now (reload a server), set by `finish` */
  readonly notes?: readonly string[]
  /** is this failure worth another try (throttling, 5xx, resets), and when, if the host said? Default: any error but a RegError */
  retryVerdict?(error: unknown): RetryVerdict
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
