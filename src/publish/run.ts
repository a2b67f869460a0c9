import {mapLimit} from '../core/concurrency.js'
import {RegError} from '../core/errors.js'
import {DEFAULT_RETRY, type RetryVerdict, withRetries} from '../core/retry.js'
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
  /** the first backoff ceiling in ms (doubled per attempt, full jitter): tests make it small */
  backoffMs?: number
  observer?: PublishObserver
  /** stops the publish between steps and inside the backend's calls (Ctrl-C); what is done stays done */
  signal?: AbortSignal
}

export interface PublishResult {
  uploaded: number
  bytesUploaded: number
  copied: number
  bytesCopied: number
  redirected: number
  deleted: number
  unchanged: number
}

/** A step's action in users' words (messages, `--dry-run`): the plan's `put` sends the object's bytes, an upload. */
export function actionName(step: Pick<PublishStep, 'action'>): 'upload' | Exclude<PublishStep['action'], 'put'> {
  return step.action === 'put' ? 'upload' : step.action
}

/** The size a step sends, for progress: a redirect, a deletion and the host configuration send nothing worth counting. */
export function stepBytes(step: PublishStep): number {
  return step.action === 'put' || step.action === 'copy' ? step.object.size : 0
}

/** Run a plan phase by phase, each with bounded concurrency, every step under the one retry policy. */
export async function runPublishPlan(plan: PublishPlan, backend: Backend, tree: RegistryTree, options: PublishOptions = {}): Promise<PublishResult> {
  const concurrency = options.concurrency ?? 8
  const policy = {retries: options.retries ?? DEFAULT_RETRY.retries, baseMs: options.backoffMs ?? DEFAULT_RETRY.baseMs}
  const {signal} = options
  const result: PublishResult = {uploaded: 0, bytesUploaded: 0, copied: 0, bytesCopied: 0, redirected: 0, deleted: 0, unchanged: plan.unchanged}
  /** puts and copies in flight by key: a server-side copy waits for the put of its source, a redirect for the put or copy of its target */
  const puts = new Map<string, Promise<void>>()
  const classify = retryClassifier(backend, signal)

  const perform = (step: PublishStep): Promise<void> => {
    switch (step.action) {
      case 'put': return backend.putObject(step.key, step.object, tree.fileOf(step.object), signal)
      case 'copy': return backend.copyObject(step.from, step.key, step.object, signal)
      case 'redirect': return backend.putRedirect ? backend.putRedirect(step.key, step.to, step.object, signal) : Promise.reject(new RegError(`internal: ${backend.name} planned a redirect it cannot store`))
      case 'configure': return backend.writeHostConfig?.(tree, step.routed, signal) ?? Promise.resolve()
      case 'delete': return backend.deleteObject(step.key, signal)
    }
  }

  const attempt = async (step: PublishStep): Promise<void> => {
    let tries = 0
    try {
      await withRetries(async (n) => {
        tries = n
        await perform(step)
      }, {policy, classify, signal, onRetry: (error, attempt) => options.observer?.retry?.(step, attempt, error)})
    } catch (error) {
      if (signal?.aborted) throw interrupted(backend)
      if (error instanceof RegError) throw error
      throw new RegError(`${backend.name}: cannot ${actionName(step)} ${step.key}${tries > 0 ? ` after ${tries + 1} attempts` : ''}: ${(error as Error).message}`, 'nothing after this step was published; run the same deploy again to resume')
    }
  }

  for (const phase of PHASES) {
    const steps = plan.steps.filter((s) => s.phase === phase)
    if (steps.length === 0) continue
    if (signal?.aborted) throw interrupted(backend)
    options.observer?.phaseStart?.(phase, steps)
    // Puts first, then copies, then redirects, so each finds its source started (and waits for it):
    // a shared copy made from a key that a redirect then replaces (a bucket entering redirect mode)
    // is complete before the redirect overwrites its source.
    const waits = (s: PublishStep) => s.action === 'copy' || s.action === 'redirect'
    const ordered = [...steps.filter((s) => !waits(s)), ...steps.filter((s) => s.action === 'copy'), ...steps.filter((s) => s.action === 'redirect')]
    await mapLimit(ordered, concurrency, async (step) => {
      if (step.action === 'put') {
        const running = attempt(step)
        puts.set(step.key, running)
        await running
        result.uploaded++
        result.bytesUploaded += step.object.size
      } else if (step.action === 'copy' || step.action === 'redirect') {
        const running = (async () => {
          await puts.get(step.action === 'copy' ? step.from : step.to)
          await attempt(step)
        })()
        if (step.action === 'copy') puts.set(step.key, running)
        await running
        if (step.action === 'copy') {
          result.copied++
          result.bytesCopied += step.object.size
        } else {
          result.redirected++
        }
      } else {
        await attempt(step)
        if (step.action === 'delete') result.deleted++
      }
      options.observer?.stepDone?.(step)
    })
  }
  return result
}

/** Which failures of `backend` are tried again: never a RegError (a verdict already), never after an abort; else as the backend says. */
export function retryClassifier(backend: Pick<Backend, 'retryVerdict'>, signal?: AbortSignal): (error: unknown) => RetryVerdict {
  return (error) => {
    if (error instanceof RegError || signal?.aborted) return {retry: false}
    return backend.retryVerdict?.(error) ?? {retry: true}
  }
}

/** The error of a publish stopped by its signal: what went live stays, and a re-run resumes. */
export function interrupted(backend: Pick<Backend, 'name'>): RegError {
  return new RegError(`${backend.name}: deploy interrupted`, 'what was published stays; run the same deploy again to resume', 'INTERRUPTED')
}
