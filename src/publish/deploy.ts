import {mkdtemp, realpath, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {errnoCode, RegError} from '../core/errors.js'
import {DEFAULT_RETRY, withRetries} from '../core/retry.js'
import {RegistryTree} from '../tree/registry-tree.js'
import type {Backend, HostDeployReport} from './backend.js'
import {checkMirrorOf, containerdHostsToml, writeContainerdHosts} from './containerd-hosts.js'
import {isCaseSensitiveDirectory} from './local-files.js'
import {type OffloadResult, planOffload} from './offload.js'
import {createPublishPlan, type Phase, type PublishPlan, type PublishStep} from './plan.js'
import {actionName, interrupted, type PublishObserver, type PublishResult, retryClassifier, runPublishPlan} from './run.js'

export interface DeployOptions {
  /** serve every repository under this namespace (`team/app` → `NS/team/app`) */
  namePrefix?: string
  dryRun?: boolean
  prune?: boolean
  /** with `prune`: delete content only once it has been unreferenced this long (ms; default 0: at once) */
  pruneGraceMs?: number
  /** the clock, ms since the epoch (tests inject it) */
  now?: () => number
  concurrency?: number
  retries?: number
  observer?: PublishObserver
  /** Ctrl-C: stops the deploy between steps and inside the backend's calls */
  signal?: AbortSignal
  /** `--offload`: locations blobs are served from instead of this host */
  offload?: readonly string[]
  /** `--offload-clients`: the clients that must be able to pull (default: all) */
  offloadClients?: readonly string[]
  /** where clients reach the registry (--public-url, config url): wins over what the host reports */
  publicUrl?: string
  /** --mirror-of / --containerd-hosts: the containerd configuration that makes this registry a pull mirror */
  containerdMirror?: {upstream: string; hostsDir?: string}
}

/** One step of the plan as `--dry-run` shows it. `upload` is the plan's put (bytes from the tree). */
export interface DeployStepReport {
  phase: Phase
  action: ReturnType<typeof actionName>
  /** where on the host: the object's storage key (`host configuration` for the configure step) */
  key: string
  /** bytes the object holds (a redirect: 0); none for the host configuration, written from the tree at deploy time */
  size?: number
  /** a server-side copy: the key copied from */
  from?: string
  /** a redirect: the key of the shared copy it points to */
  to?: string
}

export interface DeployReport {
  backend: string
  location: string
  dryRun: boolean
  /** the host stages a whole deploy (its puts are files listed, not uploads: `stagesDeploy`) */
  staged: boolean
  /** counts of objects (one per storage key on the host) and their bytes */
  plan: {uploads: number; copies: number; redirects: number; deletes: number; unchanged: number; bytesToUpload: number; bytesToCopy: number; bytesToDelete: number
    /** deployed content the tree no longer has, kept (no --prune, or within --prune-grace) */
    unreferenced: number}
  /** `--dry-run` only: every step, phase by phase */
  steps?: DeployStepReport[]
  result?: PublishResult
  /** atomic hosts: what the final deploy uploaded and where it is live */
  host?: HostDeployReport
  /** `--offload`: what each location serves, who can follow it, and the blobs uploaded instead */
  offload?: Omit<OffloadResult, 'offloaded' | 'by'>
  /** the registry's URL: --public-url, else what the host reports; absent when neither knows it */
  url?: string
  /** how to pull one of its images: `docker pull HOST/NAME:TAG` (HOST a placeholder when the URL is unknown) */
  pull?: string
  /** what to do now (reload nginx, the containerd mirror configuration) */
  messages: string[]
}

/** `docker pull HOST/NAME:TAG` for the tree's first repository and its first tag (both sorted), or undefined for an empty tree. */
export function pullCommand(tree: RegistryTree, url: string | undefined): string | undefined {
  const [name, repository] = Object.entries(tree.index.repositories).sort(([a], [b]) => (a < b ? -1 : 1))[0] ?? []
  const tag = repository ? Object.keys(repository.tags).sort()[0] : undefined
  return name && tag ? `docker pull ${url ? new URL(url).host : 'HOST'}/${name}:${tag}` : undefined
}

/** `reg deploy`: tree → plan (against one listing of the host) → ordered, retried publish (host configuration and prune are phases of it) → finish. */
export async function deployTree(dir: string, backend: Backend, options: DeployOptions = {}): Promise<DeployReport> {
  const loaded = await RegistryTree.load(dir)
  if (backend.localDirectory) await refuseNestedDestination(dir, backend.localDirectory)
  const scratch = options.namePrefix ? await mkdtemp(path.join(os.tmpdir(), 'reg-deploy-')) : undefined
  try {
    const tree = options.namePrefix && scratch ? await loaded.withNamePrefix(options.namePrefix, scratch) : loaded
    return await publishTree(tree, backend, options)
  } catch (error) {
    // Aborted inside a backend's call (listing, finish): the same clear error as between steps.
    if (options.signal?.aborted) throw interrupted(backend)
    throw error
  } finally {
    if (scratch) await rm(scratch, {recursive: true, force: true})
  }
}

/** The real path of `dir`, or of its nearest existing parent with the rest appended (a destination may not exist yet). */
async function realPathOf(dir: string): Promise<string> {
  const absolute = path.resolve(dir)
  try {
    return await realpath(absolute)
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT' || path.dirname(absolute) === absolute) throw error
    return path.join(await realPathOf(path.dirname(absolute)), path.basename(absolute))
  }
}

function isInside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent + path.sep)
}

/**
 * A destination inside the tree would be deleted by the next build (a build replaces the whole
 * tree), and a tree inside the destination could be pruned by a deploy: refuse both, before anything is written.
 */
async function refuseNestedDestination(treeDir: string, destination: string): Promise<void> {
  const [tree, dest] = await Promise.all([realPathOf(treeDir), realPathOf(destination)])
  if (isInside(dest, tree)) {
    throw new RegError(`the destination ${destination} is inside the tree ${treeDir}`, 'a build replaces the whole tree and would delete it: deploy to a directory outside the tree')
  }
  if (isInside(tree, dest)) {
    throw new RegError(`the tree ${treeDir} is inside the destination ${destination}`, 'deploy to a directory that does not contain the tree')
  }
}

/** A step as `--dry-run` shows it. */
export function stepReport(step: PublishStep): DeployStepReport {
  const {phase, key} = step
  const action = actionName(step)
  switch (step.action) {
    case 'put': return {phase, action, key, size: step.object.size}
    case 'copy': return {phase, action, key, size: step.object.size, from: step.from}
    case 'redirect': return {phase, action, key, size: 0, to: step.to}
    case 'configure': return {phase, action, key}
    case 'delete': return {phase, action, key, size: step.size}
  }
}

async function publishTree(tree: RegistryTree, backend: Backend, options: DeployOptions): Promise<DeployReport> {
  const pruneGraceMs = options.prune ? options.pruneGraceMs ?? 0 : 0
  if (pruneGraceMs > 0 && !backend.recordUnreferenced) {
    throw new RegError(`${backend.name} keeps no deploy state to count a prune grace in`, 'run with --prune-grace 0 to delete what the tree no longer has at once')
  }
  // The listing is retried like every step: it is the first request, where a throttled or flaky host shows.
  const remote = await withRetries(() => backend.describeRemote(options.signal), {
    policy: {retries: options.retries ?? DEFAULT_RETRY.retries}, classify: retryClassifier(backend, options.signal), signal: options.signal,
  })
  const declared = backend.capabilities.caseSensitiveTags
  const caseSensitiveTags = declared === 'destination-file-system'
    ? backend.localDirectory !== undefined && (await isCaseSensitiveDirectory(backend.localDirectory))
    : declared === true
  const offload = options.offload?.length
    ? await planOffload(tree, backend, {locations: options.offload, clients: options.offloadClients, concurrency: options.concurrency, dryRun: options.dryRun, signal: options.signal})
    : undefined
  const plan: PublishPlan = await createPublishPlan(tree, remote, backend, {prune: options.prune, pruneGraceMs, now: options.now?.(), caseSensitiveTags, offload: offload && {targets: offload.offloaded, by: offload.by}})
  const count = (action: string) => plan.steps.filter((s) => s.action === action).length
  const report: DeployReport = {
    backend: backend.name, location: backend.location, dryRun: Boolean(options.dryRun), staged: backend.capabilities.stagesDeploy === true,
    plan: {uploads: count('put'), copies: count('copy'), redirects: count('redirect'), deletes: count('delete'), unchanged: plan.unchanged, bytesToUpload: plan.bytesToUpload, bytesToCopy: plan.bytesToCopy, bytesToDelete: plan.bytesToDelete, unreferenced: plan.unreferenced.size},
    messages: [],
  }
  if (offload) report.offload = {locations: offload.locations, rejected: offload.rejected, bytesVerified: offload.bytesVerified}
  const mirror = options.containerdMirror
  if (mirror) {
    // Before anything is published: a mistake here costs nothing.
    checkMirrorOf(mirror.upstream)
    if (!options.publicUrl) throw new RegError(`--mirror-of ${mirror.upstream} needs the registry's URL`, 'pass --public-url https://HOST (where clients reach this registry), or set url in the config file')
  }
  if (options.dryRun) {
    report.steps = plan.steps.map(stepReport)
  } else {
    report.result = await runPublishPlan(plan, backend, tree, {concurrency: options.concurrency, retries: options.retries, observer: options.observer, signal: options.signal})
    // What stays unreferenced, and since when, is kept by the host: the next --prune counts the grace from there.
    if (backend.recordUnreferenced) {
      const record = backend.recordUnreferenced.bind(backend)
      await withRetries(() => record(plan.unreferenced, options.signal), {
        policy: {retries: options.retries ?? DEFAULT_RETRY.retries}, classify: retryClassifier(backend, options.signal), signal: options.signal,
      })
    }
    const host = await backend.finish?.(tree, options.signal)
    if (host) report.host = host
    report.messages.push(...backend.notes ?? [])
  }
  report.url = options.publicUrl ?? report.host?.url ?? undefined
  if (report.url === '') delete report.url
  report.pull = pullCommand(tree, report.url)
  if (mirror && options.publicUrl) report.messages.push(...await containerdMirrorMessages(mirror, options.publicUrl, Boolean(options.dryRun)))
  return report
}

/** The hosts.toml of `--mirror-of`: printed, or written into `--containerd-hosts DIR`. */
async function containerdMirrorMessages(mirror: {upstream: string; hostsDir?: string}, url: string, dryRun: boolean): Promise<string[]> {
  if (mirror.hostsDir && !dryRun) {
    const file = await writeContainerdHosts(mirror.hostsDir, mirror.upstream, url)
    return [`containerd: wrote ${file}: pulls of ${mirror.upstream} go through ${url} first`]
  }
  return [`containerd: ${mirror.upstream}/hosts.toml (in containerd's config_path, e.g. /etc/containerd/certs.d) for pulls of ${mirror.upstream} through ${url}:`, ...containerdHostsToml(mirror.upstream, url).trimEnd().split('\n')]
}
