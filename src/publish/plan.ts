import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import type {RegistryObject} from '../tree/model.js'
import type {RegistryTree} from '../tree/registry-tree.js'
import type {Backend, RemoteState} from './backend.js'

/**
 * Publish phases, in order (DESIGN §3): a client must never see a tag whose content is missing.
 * Each phase completes before the next starts.
 */
export const PHASES = ['blobs', 'manifests', 'indexes', 'referrers', 'tags', 'prune'] as const
export type Phase = (typeof PHASES)[number]

export function phaseOf(object: RegistryObject): Phase {
  switch (object.class) {
    case 'blob': return 'blobs'
    case 'digest-manifest': return object.isIndex ? 'indexes' : 'manifests'
    case 'referrers': return 'referrers'
    default: return 'tags'
  }
}

export type PublishStep =
  | {action: 'put'; phase: Phase; key: string; object: RegistryObject}
  | {action: 'copy'; phase: Phase; key: string; object: RegistryObject; from: string}
  | {action: 'delete'; phase: 'prune'; key: string; size: number}

export interface PublishPlan {
  steps: PublishStep[]
  unchanged: number
  /** URLs the host configuration answers (no stored object), e.g. tags routed by rewrites */
  routed: RegistryObject[]
  bytesToUpload: number
  bytesToCopy: number
  bytesToDelete: number
}

/** MD5 of a (small, mutable) object's bytes, to compare with a host's ETag without downloading. */
async function md5Of(file: string): Promise<string> {
  return createHash('md5').update(await readFile(file)).digest('hex')
}

/** Objects at content-addressed paths: if the path exists, its bytes are right (written only after verification). */
function contentAddressed(object: RegistryObject): boolean {
  return object.class === 'blob' || object.class === 'digest-manifest'
}

/**
 * Diff a tree against what is deployed: upload what is missing or changed, copy server-side what is
 * already there under another key (when the host can), and with `prune` delete what the tree no
 * longer has. Never re-sends an object whose key and digest are already deployed.
 */
export async function createPublishPlan(tree: RegistryTree, remote: RemoteState, backend: Pick<Backend, 'capabilities' | 'storageKeyOf'>, options: {prune?: boolean} = {}): Promise<PublishPlan> {
  const keyOf = (object: RegistryObject) => (backend.storageKeyOf ? backend.storageKeyOf(object) : object.path)
  const steps: PublishStep[] = []
  const routed: RegistryObject[] = []
  let unchanged = 0
  /** what each key will hold */
  const wanted = new Map<string, RegistryObject>()
  const ordered = [...tree.objects].sort((a, b) => PHASES.indexOf(phaseOf(a)) - PHASES.indexOf(phaseOf(b)))
  for (const object of ordered) {
    const key = keyOf(object)
    if (key === null) routed.push(object)
    else if (!wanted.has(key)) wanted.set(key, object)
  }
  /** a deployed (or about to be deployed) key holding each digest, for server-side copies */
  const holders = new Map<string, string>()
  for (const deployed of remote.objects.values()) {
    const object = wanted.get(deployed.key)
    const digest = deployed.digest ?? (object && contentAddressed(object) ? object.digest : undefined)
    if (digest && (!object || object.digest === digest) && !holders.has(digest)) holders.set(digest, deployed.key)
  }
  for (const [key, object] of wanted) {
    const deployed = remote.objects.get(key)
    const same = deployed && deployed.size === object.size && (deployed.digest === object.digest ||
      (deployed.digest === undefined && (contentAddressed(object) || (deployed.md5 !== undefined && deployed.md5 === await md5Of(tree.fileOf(object))))))
    if (same) {
      unchanged++
      continue
    }
    const holder = holders.get(object.digest)
    if (backend.capabilities.serverSideCopy && holder !== undefined && holder !== key) {
      steps.push({action: 'copy', phase: phaseOf(object), key, object, from: holder})
    } else {
      steps.push({action: 'put', phase: phaseOf(object), key, object})
      holders.set(object.digest, key)
    }
  }
  if (options.prune) {
    for (const deployed of remote.objects.values()) {
      if (!wanted.has(deployed.key)) steps.push({action: 'delete', phase: 'prune', key: deployed.key, size: deployed.size})
    }
  }
  const sum = (action: PublishStep['action']) => steps.filter((s) => s.action === action).reduce((total, s) => total + ('object' in s ? s.object.size : s.size), 0)
  return {steps, unchanged, routed, bytesToUpload: sum('put'), bytesToCopy: sum('copy'), bytesToDelete: sum('delete')}
}
