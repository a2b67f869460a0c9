import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {mapLimit} from '../core/concurrency.js'
import {RegError} from '../core/errors.js'
import type {RegistryObject} from '../tree/model.js'
import type {RegistryTree} from '../tree/registry-tree.js'
import type {Backend, RemoteObject, RemoteState} from './backend.js'
import {offloadedObject} from './offload.js'

/**
 * Publish phases, in order: a client must never see a tag whose content is missing, so what a URL
 * points at goes live before the URL (blobs, then the manifests and indexes naming them, then tags);
 * the host configuration, which routes tags on some hosts, after every object; deletions last.
 * Phases are the order steps start in; what a step waits for is its `after` (see `prerequisites`):
 * a manifest waits for its own blobs, not for every blob of the deploy.
 */
export const PHASES = ['blobs', 'manifests', 'indexes', 'referrers', 'tags', 'configure', 'prune'] as const
export type Phase = (typeof PHASES)[number]

export function phaseOf(object: RegistryObject): Phase {
  switch (object.class) {
    case 'blob': return 'blobs'
    case 'digest-manifest': return object.isIndex ? 'indexes' : 'manifests'
    case 'referrers': return 'referrers'
    // The catalog page's stylesheet and script go live before a page that names them (hashed names).
    case 'page-asset': return 'manifests'
    default: return 'tags'
  }
}

/**
 * What a step waits for before it starts: the keys of other steps of the plan (each done first), or
 * `'all-earlier'`: every step before it in the plan's order, but for the steps of its own phase
 * that wait the same way right before it (the deletions of a prune wait for everything else, and
 * then run side by side).
 */
export type Prerequisites = readonly string[] | 'all-earlier'

export type PublishStep = (
  | {action: 'put'; phase: Phase; key: string; object: RegistryObject}
  | {action: 'copy'; phase: Phase; key: string; object: RegistryObject; from: string}
  /** a redirect at `key` to the shared copy at `to` (no bytes of its own) */
  | {action: 'redirect'; phase: Phase; key: string; object: RegistryObject; to: string}
  /** the host configuration; `routed`: the URLs it answers with no stored object (tags routed by rewrites) */
  | {action: 'configure'; phase: 'configure'; key: string; routed: RegistryObject[]}
  | {action: 'delete'; phase: 'prune'; key: string; size: number}
) & {after?: Prerequisites}

export interface PlanOptions {
  prune?: boolean
  /** with `prune`: delete a key only once it has been unreferenced this long (ms; 0: at once) */
  pruneGraceMs?: number
  /** the clock, ms since the epoch (tests inject it) */
  now?: number
  /** the host's `caseSensitiveTags`, resolved (the deploy probes a destination file system); default: the capability */
  caseSensitiveTags?: boolean
  /**
   * blobs served from elsewhere (`reg deploy --offload`): digest → redirect target. Not stored: the
   * host configuration answers them (`configuration`: they are among its routed objects), or an
   * empty redirect object at each of their keys (`redirect-objects`).
   */
  offload?: {targets: ReadonlyMap<string, string>; by: 'configuration' | 'redirect-objects'}
}

export interface PublishPlan {
  /** in publish order: by phase; each step after its prerequisites (`after`) */
  steps: PublishStep[]
  unchanged: number
  bytesToUpload: number
  bytesToCopy: number
  bytesToDelete: number
  /** deployed keys the tree no longer has and that stay (no --prune, or within the grace), with since when: the host's deploy state keeps them */
  unreferenced: Map<string, number>
}

/** How many tree files are read at once to compare their MD5 with a host's ETag. */
const MD5_READS = 32

/** MD5 of a (small, mutable) object's bytes, to compare with a host's ETag without downloading. */
async function md5Of(file: string): Promise<string> {
  return createHash('md5').update(await readFile(file)).digest('hex')
}

/** Objects at content-addressed paths: if the path exists, its bytes are right (written only after verification). */
function contentAddressed(object: RegistryObject): boolean {
  return object.class === 'blob' || object.class === 'digest-manifest'
}

/**
 * A storage key whose bytes are named by their digest (a blob or a manifest by digest, per repository
 * or shared, with or without an extension), whatever the host's layout: its bytes never change.
 * A referrers document is named by its subject's digest but changes.
 */
export function contentAddressedKey(key: string): boolean {
  return /(?:^|\/)sha256:[a-f0-9]{64}(?:\.[a-z-]+)?$/.test(key) && !/(?:^|\/)referrers\/[^/]+$/.test(key)
}

/** `team/app` and `v1` of `v2/team/app/manifests/v1`, for messages; undefined for other paths. */
function tagOfPath(urlPath: string): {repository: string; tag: string} | undefined {
  const match = /^v2\/(.+)\/manifests\/([^/:]+)$/.exec(urlPath)
  return match ? {repository: match[1], tag: match[2]} : undefined
}

/**
 * Refuse, before anything is written, a deploy to a host that cannot tell apart paths equal but for
 * case (a case-insensitive file system, Netlify) when two of the paths it would hold are such a pair:
 * it would serve one tag for the other. `paths`: each path and whether it comes from the tree or is
 * already deployed (kept without --prune).
 */
export function refuseCaseCollisions(paths: Iterable<readonly [string, 'tree' | 'deployed']>, host: string): void {
  const byFolded = new Map<string, readonly [string, 'tree' | 'deployed']>()
  for (const entry of paths) {
    const folded = entry[0].toLowerCase()
    const other = byFolded.get(folded)
    if (other === undefined) {
      byFolded.set(folded, entry)
      continue
    }
    if (other[0] === entry[0]) continue
    const [a, b] = [other, entry].sort(([x], [y]) => (x < y ? -1 : 1))
    const [tagA, tagB] = [tagOfPath(a[0]), tagOfPath(b[0])]
    const deployed = [a, b].some(([, from]) => from === 'deployed')
    const hint = `rename one of them (reg build SOURCE=NAME:TAG), or deploy to a host that tells them apart (s3, r2, nginx, apache, dir on a case-sensitive file system)${deployed ? '; --prune removes what the tree no longer has' : ''}`
    const which = ([path, from]: readonly [string, string], tag?: {tag: string}) => `"${tag ? tag.tag : `/${path}`}"${from === 'deployed' ? ' (already deployed)' : ''}`
    if (tagA && tagB && tagA.repository === tagB.repository) {
      throw new RegError(`${host} cannot tell apart the tags ${which(a, tagA)} and ${which(b, tagB)} of repository "${tagA.repository}": they differ only in case, and it would serve one for the other`, hint)
    }
    throw new RegError(`${host} would serve ${which(a)} and ${which(b)} as one path (they differ only in case)`, hint)
  }
}

/**
 * Diff a tree against what is deployed: upload what is missing or changed, copy server-side what is
 * already there under another key (when the host can), and with `prune` delete what the tree no
 * longer has. Never re-sends an object whose key and digest are already deployed.
 */
export async function createPublishPlan(tree: RegistryTree, remote: RemoteState, backend: Pick<Backend, 'name' | 'location' | 'capabilities' | 'storageKeyOf' | 'sharedKeyOf' | 'writeHostConfig'>, options: PlanOptions = {}): Promise<PublishPlan> {
  const keyOf = (object: RegistryObject) => (backend.storageKeyOf ? backend.storageKeyOf(object) : object.path)
  const steps: PublishStep[] = []
  const routed: RegistryObject[] = []
  let unchanged = 0
  /** what each key will hold */
  const wanted = new Map<string, RegistryObject>()
  /** keys of offloaded blobs on a host without configuration: a redirect to the offload URL */
  const offloadRedirects = new Map<string, string>()
  const rank = (object: RegistryObject) => PHASES.indexOf(phaseOf(object))
  const ordered = tree.objects.map((object, i) => ({object, rank: rank(object), i})).sort((a, b) => a.rank - b.rank || a.i - b.i).map((entry) => entry.object)
  for (const object of ordered) {
    const offloadTo = object.class === 'blob' ? options.offload?.targets.get(object.digest) : undefined
    if (offloadTo !== undefined && options.offload?.by === 'configuration') {
      routed.push(offloadedObject(object, offloadTo))
      continue
    }
    const key = keyOf(object)
    if (offloadTo !== undefined && key !== null) offloadRedirects.set(key, offloadedObject(object, offloadTo).headers.Location)
    if (key === null) routed.push(object)
    else if (!wanted.has(key)) wanted.set(key, object)
  }
  // `'destination-file-system'` is resolved by the deploy (it probes the destination); unresolved, assume the worst.
  if ((options.caseSensitiveTags ?? backend.capabilities.caseSensitiveTags) !== true) {
    const held = [
      ...[...wanted.keys()].map((key) => [key, 'tree'] as const),
      ...routed.map((object) => [object.path, 'tree'] as const),
      ...(options.prune ? [] : [...remote.objects.keys()].filter((key) => !wanted.has(key)).map((key) => [key, 'deployed'] as const)),
    ]
    refuseCaseCollisions(held, `${backend.name} (${backend.location})`)
  }
  // A host that serves some URLs by redirect stores their bytes once under the shared key.
  const redirects = new Map<string, string>(offloadRedirects)
  for (const [key, object] of wanted) {
    if (offloadRedirects.has(key)) continue
    const shared = backend.sharedKeyOf?.(object)
    if (shared === undefined || shared === key) continue
    redirects.set(key, shared)
    if (!wanted.has(shared)) wanted.set(shared, object)
  }
  /** a deployed (or about to be deployed) key holding each digest, for server-side copies */
  const holders = new Map<string, string>()
  for (const deployed of remote.objects.values()) {
    if (deployed.redirectTo !== undefined) continue
    const object = wanted.get(deployed.key)
    const digest = deployed.digest ?? (object && contentAddressed(object) ? object.digest : undefined)
    if (digest && (!object || object.digest === digest) && !holders.has(digest)) holders.set(digest, deployed.key)
  }
  // A mutable object the host reports only an MD5 for is compared by the MD5 of the tree's file: those
  // small reads (one per tag at 100,000 tags) go many at a time, not one after the other.
  const needsMd5 = (deployed: RemoteObject | undefined, object: RegistryObject): deployed is RemoteObject =>
    deployed !== undefined && deployed.redirectTo === undefined && deployed.size === object.size && deployed.digest === undefined && !contentAddressed(object) && deployed.md5 !== undefined
  const md5Compared = [...wanted].filter(([key, object]) => !redirects.has(key) && needsMd5(remote.objects.get(key), object))
  const md5s = new Map(await mapLimit(md5Compared, MD5_READS, async ([key, object]) => [key, await md5Of(tree.fileOf(object))] as const))
  const holds = (key: string, deployed: RemoteObject | undefined, object: RegistryObject): boolean =>
    deployed !== undefined && deployed.redirectTo === undefined && deployed.size === object.size && (deployed.digest === object.digest ||
      (deployed.digest === undefined && (contentAddressed(object) || (deployed.md5 !== undefined && deployed.md5 === md5s.get(key)))))
  for (const [key, object] of wanted) {
    const deployed = remote.objects.get(key)
    const to = redirects.get(key)
    if (to !== undefined ? deployed?.redirectTo === to : holds(key, deployed, object)) {
      unchanged++
      continue
    }
    const holder = holders.get(object.digest)
    if (to !== undefined) {
      steps.push({action: 'redirect', phase: phaseOf(object), key, object, to})
    } else if (backend.capabilities.serverSideCopy && holder !== undefined && holder !== key) {
      steps.push({action: 'copy', phase: phaseOf(object), key, object, from: holder})
    } else {
      steps.push({action: 'put', phase: phaseOf(object), key, object})
      holders.set(object.digest, key)
    }
  }
  if (backend.writeHostConfig) steps.push({action: 'configure', phase: 'configure', key: 'host configuration', routed})
  // Content a tag pointed at is deleted only once it has been unreferenced for the grace: a client
  // that resolved the tag just before this deploy is still fetching it. Tags and lists go at once.
  const now = options.now ?? Date.now()
  const grace = options.pruneGraceMs ?? 0
  const unreferenced = new Map<string, number>()
  for (const deployed of remote.objects.values()) {
    if (wanted.has(deployed.key)) continue
    const since = contentAddressedKey(deployed.key) ? Math.min(remote.unreferencedSince?.get(deployed.key) ?? now, now) : undefined
    if (options.prune && (since === undefined || now - since >= grace)) steps.push({action: 'delete', phase: 'prune', key: deployed.key, size: deployed.size, after: 'all-earlier'})
    else if (since !== undefined) unreferenced.set(deployed.key, since)
  }
  orderSteps(steps, tree, keyOf)
  const sum = (action: PublishStep['action']) => steps.filter((s) => s.action === action).reduce((total, s) => total + (s.action === 'delete' ? s.size : s.action === 'put' || s.action === 'copy' ? s.object.size : 0), 0)
  return {steps, unchanged, bytesToUpload: sum('put'), bytesToCopy: sum('copy'), bytesToDelete: sum('delete'), unreferenced}
}

/** The catalog page and its data: they name every tag. */
function pageDocument(step: PublishStep): boolean {
  return 'object' in step && (step.object.class === 'page' || step.object.class === 'page-data')
}

/**
 * Put `steps` in publish order (by phase; the catalog page's documents last of the tags) and give
 * each what it waits for, so that nothing goes live before what it points at: a manifest after the
 * blobs and child manifests it names in its repository, a tag after its manifest, a referrers list
 * after the manifests it lists, a repository's tags list after its tags, the catalog after every
 * tags list; a copy after its source, a redirect after its target. The catalog page, the host
 * configuration (it routes tags) and deletions wait for everything before them, as does an object
 * whose references the tree does not record (a generated referrers index). What is already on the
 * host is live: nothing waits for it. So the manifests and tags of small images go live while a big
 * blob of another image is still on its way, instead of after it.
 */
function orderSteps(steps: PublishStep[], tree: RegistryTree, keyOf: (object: RegistryObject) => string | null): void {
  // Within the tags: tags, then tags lists, the catalog, the page (the order they wait for each other in).
  const within: Partial<Record<RegistryObject['class'], number>> = {'tags-list': 1, 'catalog': 2, 'page-data': 3, 'page': 3}
  const order = (step: PublishStep) => PHASES.indexOf(step.phase) * 4 + ('object' in step ? within[step.object.class] ?? 0 : 0)
  // Stable: steps of one rank keep the order the plan made them in. Most plans are in order already.
  if (steps.some((step, i) => i > 0 && order(steps[i - 1]) > order(step))) steps.sort((a, b) => order(a) - order(b))
  const planned = new Set<string>()
  /** keys whose bytes this plan writes (puts and copies) */
  const written = new Set<string>()
  for (const step of steps) {
    if ('object' in step) planned.add(step.key)
    if (step.action === 'put' || step.action === 'copy') written.add(step.key)
  }
  // The key of the step that publishes each URL this plan publishes (as many entries as steps: a
  // deploy that changes little holds little).
  const keyOfPath = new Map<string, string>()
  if (planned.size > 0) {
    for (const object of tree.objects) {
      const key = keyOf(object)
      if (key !== null && planned.has(key)) keyOfPath.set(object.path, key)
    }
  }
  const stepOfPath = (urlPath: string): string | undefined => keyOfPath.get(urlPath)
  const tagsOf = new Map<string, string[]>()
  const referrersOf = new Map<string, string[]>()
  const tagsLists: string[] = []
  const push = (map: Map<string, string[]>, at: string, key: string) => (map.get(at) ?? map.set(at, []).get(at)!).push(key)
  for (const step of steps) {
    if (!('object' in step)) continue
    const {object} = step
    if (object.class === 'tag-manifest') push(tagsOf, object.repository!, step.key)
    else if (object.class === 'tags-list') tagsLists.push(step.key)
    else if (object.class === 'digest-manifest') {
      const subject = tree.index.manifests[object.digest]?.subject
      if (subject) push(referrersOf, `${object.repository}\n${subject}`, step.key)
    }
  }
  for (const step of steps) {
    if (step.action === 'configure' || step.action === 'delete' || pageDocument(step)) {
      step.after ??= 'all-earlier'
      continue
    }
    const {object} = step
    const repository = object.repository ?? ''
    let needs: Array<string | undefined>
    switch (object.class) {
      case 'digest-manifest': {
        const record = tree.index.manifests[object.digest]
        if (!record) {
          step.after = 'all-earlier'
          continue
        }
        needs = [...record.blobs.map((blob) => stepOfPath(`v2/${repository}/blobs/${blob}`)), ...record.children.map((child) => stepOfPath(`v2/${repository}/manifests/${child}`))]
        break
      }
      case 'tag-manifest': needs = [stepOfPath(`v2/${repository}/manifests/${object.digest}`)]; break
      case 'referrers': needs = referrersOf.get(`${repository}\n${object.path.slice(object.path.lastIndexOf('/') + 1)}`) ?? []; break
      case 'tags-list': needs = tagsOf.get(repository) ?? []; break
      case 'catalog': needs = tagsLists; break
      default: needs = []
    }
    // A copy's source and a redirect's target are waited for while their bytes are being written; a
    // copy's source that a redirect replaces (a bucket entering redirect mode) is read as deployed,
    // and that redirect waits for the copy.
    if (step.action === 'copy') needs.push(written.has(step.from) ? step.from : undefined)
    if (step.action === 'redirect') needs.push(written.has(step.to) ? step.to : undefined)
    // A host may keep two URLs under one key (a tag and its manifest): the step does not wait for itself.
    const after = [...new Set(needs.filter((key): key is string => key !== undefined && key !== step.key))]
    if (after.length > 0) step.after = after
  }
}
