import {mkdtemp, realpath, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {errnoCode, RegError} from '../core/errors.js'
import {DEFAULT_RETRY, withRetries} from '../core/retry.js'
import {RegistryTree} from '../tree/registry-tree.js'
import type {Backend, HostDeployReport} from './backend.js'
import {isCaseSensitiveDirectory} from './local-files.js'
import {createPublishPlan, type PublishPlan} from './plan.js'
import {interrupted, type PublishObserver, type PublishResult, retryClassifier, runPublishPlan} from './run.js'

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
}

export interface DeployReport {
  backend: string
  location: string
  dryRun: boolean
  plan: {uploads: number; copies: number; redirects: number; deletes: number; unchanged: number; bytesToUpload: number; bytesToCopy: number; bytesToDelete: number
    /** deployed content the tree no longer has, kept (no --prune, or within --prune-grace) */
    unreferenced: number}
  result?: PublishResult
  /** atomic hosts: what the final deploy uploaded and where it is live */
  host?: HostDeployReport
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
  const plan: PublishPlan = await createPublishPlan(tree, remote, backend, {prune: options.prune, pruneGraceMs, now: options.now?.(), caseSensitiveTags})
  const count = (action: string) => plan.steps.filter((s) => s.action === action).length
  const report: DeployReport = {
    backend: backend.name, location: backend.location, dryRun: Boolean(options.dryRun),
    plan: {uploads: count('put'), copies: count('copy'), redirects: count('redirect'), deletes: count('delete'), unchanged: plan.unchanged, bytesToUpload: plan.bytesToUpload, bytesToCopy: plan.bytesToCopy, bytesToDelete: plan.bytesToDelete, unreferenced: plan.unreferenced.size},
  }
  if (options.dryRun) return report
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
  return report
}
