import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {RegistryTree} from '../tree/registry-tree.js'
import type {Backend, HostDeployReport} from './backend.js'
import {createPublishPlan, type PublishPlan} from './plan.js'
import {type PublishObserver, type PublishResult, runPublishPlan} from './run.js'

export interface DeployOptions {
  /** serve every repository under this namespace (`team/app` → `NS/team/app`) */
  namePrefix?: string
  dryRun?: boolean
  prune?: boolean
  concurrency?: number
  retries?: number
  observer?: PublishObserver
}

export interface DeployReport {
  backend: string
  location: string
  dryRun: boolean
  plan: {uploads: number; copies: number; deletes: number; unchanged: number; bytesToUpload: number; bytesToCopy: number; bytesToDelete: number}
  result?: PublishResult
  /** atomic hosts: what the final deploy uploaded and where it is live */
  host?: HostDeployReport
}

/** `reg deploy`: tree → plan (against one listing of the host) → ordered, retried publish → host config. */
export async function deployTree(dir: string, backend: Backend, options: DeployOptions = {}): Promise<DeployReport> {
  const loaded = await RegistryTree.load(dir)
  const scratch = options.namePrefix ? await mkdtemp(path.join(os.tmpdir(), 'reg-deploy-')) : undefined
  try {
    const tree = options.namePrefix && scratch ? await loaded.withNamePrefix(options.namePrefix, scratch) : loaded
    return await publishTree(tree, backend, options)
  } finally {
    if (scratch) await rm(scratch, {recursive: true, force: true})
  }
}

async function publishTree(tree: RegistryTree, backend: Backend, options: DeployOptions): Promise<DeployReport> {
  const remote = await backend.describeRemote()
  const plan: PublishPlan = await createPublishPlan(tree, remote, backend, {prune: options.prune})
  const count = (action: string) => plan.steps.filter((s) => s.action === action).length
  const report: DeployReport = {
    backend: backend.name, location: backend.location, dryRun: Boolean(options.dryRun),
    plan: {uploads: count('put'), copies: count('copy'), deletes: count('delete'), unchanged: plan.unchanged, bytesToUpload: plan.bytesToUpload, bytesToCopy: plan.bytesToCopy, bytesToDelete: plan.bytesToDelete},
  }
  if (options.dryRun) return report
  report.result = await runPublishPlan(plan, backend, tree, {
    concurrency: options.concurrency, retries: options.retries, observer: options.observer,
    // Host configuration routes tags: it goes live after every object it points at, before anything is deleted.
    beforePrune: async () => backend.writeHostConfig?.(tree, plan),
  })
  if (backend.finish) report.host = await backend.finish(tree)
  return report
}
