import {setTimeout as sleep} from 'node:timers/promises'
import {mapLimit} from '../core/concurrency.js'
import {RegError} from '../core/errors.js'
import type {RegistryTree} from '../tree/registry-tree.js'
import type {Backend} from './backend.js'
import {PHASES, type Phase, type PublishPlan, type PublishStep} from './plan.js'

export interface PublishObserver {
  phaseStart?(phase: Phase, steps: PublishStep[]): void
  stepDone?(step: PublishStep): void
  retry?(step: PublishStep, attempt: number, error: unknown): void
}

export interface PublishOptions {
  concurrency?: number
  retries?: number
  /** first backoff delay in ms, doubled per attempt */
  backoffMs?: number
  observer?: PublishObserver
  /** runs after the tags phase and before pruning (host configuration that routes tags) */
  beforePrune?: () => Promise<void>
}

export interface PublishResult {
  uploaded: number
  bytesUploaded: number
  copied: number
  bytesCopied: number
  deleted: number
  unchanged: number
}

/** Run a plan phase by phase, each with bounded concurrency and retries with exponential backoff. */
export async function runPublishPlan(plan: PublishPlan, backend: Backend, tree: RegistryTree, options: PublishOptions = {}): Promise<PublishResult> {
  const concurrency = options.concurrency ?? 8
  const retries = options.retries ?? 4
  const backoffMs = options.backoffMs ?? 250
  const result: PublishResult = {uploaded: 0, bytesUploaded: 0, copied: 0, bytesCopied: 0, deleted: 0, unchanged: plan.unchanged}
  /** puts in flight by key: a server-side copy waits for the put of its source */
  const puts = new Map<string, Promise<void>>()

  const attempt = async (step: PublishStep): Promise<void> => {
    for (let tries = 0; ; tries++) {
      try {
        if (step.action === 'put') await backend.putObject(step.key, step.object, tree.fileOf(step.object))
        else if (step.action === 'copy') await backend.copyObject(step.from, step.key, step.object)
        else await backend.deleteObject(step.key)
        return
      } catch (error) {
        const retryable = !(error instanceof RegError) && (backend.isRetryable?.(error) ?? true)
        if (!retryable || tries >= retries) {
          if (error instanceof RegError) throw error
          throw new RegError(`${backend.name}: cannot ${step.action} ${step.key}${tries > 0 ? ` after ${tries + 1} attempts` : ''}: ${(error as Error).message}`, 'nothing after this step was published; run the same deploy again to resume')
        }
        options.observer?.retry?.(step, tries + 1, error)
        await sleep(backoffMs * 2 ** tries)
      }
    }
  }

  for (const phase of PHASES) {
    if (phase === 'prune') await options.beforePrune?.()
    const steps = plan.steps.filter((s) => s.phase === phase)
    if (steps.length === 0) continue
    options.observer?.phaseStart?.(phase, steps)
    // Puts first, so copies in the same phase find their source (or wait for it).
    const ordered = [...steps.filter((s) => s.action !== 'copy'), ...steps.filter((s) => s.action === 'copy')]
    await mapLimit(ordered, concurrency, async (step) => {
      if (step.action === 'put') {
        const running = attempt(step)
        puts.set(step.key, running)
        await running
        result.uploaded++
        result.bytesUploaded += step.object.size
      } else if (step.action === 'copy') {
        await puts.get(step.from)
        await attempt(step)
        result.copied++
        result.bytesCopied += step.object.size
      } else {
        await attempt(step)
        result.deleted++
      }
      options.observer?.stepDone?.(step)
    })
  }
  return result
}
