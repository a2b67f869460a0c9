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

/**
 * Run a plan: at most `concurrency` steps at once, each once what it waits for (`step.after`) is
 * done, in the plan's order otherwise (blobs first); every step under the one retry policy. The
 * first failure stops new steps (what is running finishes), so nothing that needs a failed step is
 * published.
 */
export async function runPublishPlan(plan: PublishPlan, backend: Backend, tree: RegistryTree, options: PublishOptions = {}): Promise<PublishResult> {
  const concurrency = options.concurrency ?? 8
  const policy = {retries: options.retries ?? DEFAULT_RETRY.retries, baseMs: options.backoffMs ?? DEFAULT_RETRY.baseMs}
  const {signal} = options
  const result: PublishResult = {uploaded: 0, bytesUploaded: 0, copied: 0, bytesCopied: 0, redirected: 0, deleted: 0, unchanged: plan.unchanged}
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
      throw new RegError(`${backend.name}: cannot ${actionName(step)} ${step.key}${tries > 0 ? ` after ${tries + 1} attempts` : ''}: ${(error as Error).message}`, 'nothing that needs this object was published; run the same deploy again to resume')
    }
  }

  const count = (step: PublishStep) => {
    if (step.action === 'put') {
      result.uploaded++
      result.bytesUploaded += step.object.size
    } else if (step.action === 'copy') {
      result.copied++
      result.bytesCopied += step.object.size
    } else if (step.action === 'redirect') {
      result.redirected++
    } else if (step.action === 'delete') {
      result.deleted++
    }
  }

  // Each phase is announced once, in order, when its first step starts.
  const byPhase = new Map<Phase, PublishStep[]>()
  for (const step of plan.steps) (byPhase.get(step.phase) ?? byPhase.set(step.phase, []).get(step.phase)!).push(step)
  let announced = 0
  const announce = (phase: Phase) => {
    for (; announced <= PHASES.indexOf(phase); announced++) {
      const steps = byPhase.get(PHASES[announced])
      if (steps) options.observer?.phaseStart?.(PHASES[announced], steps)
    }
  }

  await runInOrder(plan.steps, concurrency, async (step) => {
    if (signal?.aborted) throw interrupted(backend)
    announce(step.phase)
    await attempt(step)
    count(step)
    options.observer?.stepDone?.(step)
  })
  return result
}

/**
 * Run `steps` with at most `limit` at once: a step starts once every step it waits for is done
 * (`after`: keys of steps, or all the steps before it: see `Prerequisites`), the earliest ready step
 * first. The first failure stops new starts and rejects once the running steps settle.
 */
export async function runInOrder(steps: readonly PublishStep[], limit: number, work: (step: PublishStep) => Promise<void>): Promise<void> {
  const indexOfKey = new Map<string, number>()
  steps.forEach((step, i) => {
    if ('object' in step) indexOfKey.set(step.key, i)
  })
  const waiting = new Array<number>(steps.length).fill(0)
  const dependents: number[][] = steps.map(() => [])
  /** steps waiting for all the steps before them, by position, with the position they wait up to */
  const barriers: number[] = []
  const upTo: number[] = []
  const ready = new MinHeap()
  steps.forEach((step, i) => {
    if (step.after === 'all-earlier') {
      // A run of such steps of one phase (a prune's deletions) waits for what comes before the run.
      const previous = steps[i - 1]
      upTo[i] = previous?.after === 'all-earlier' && previous.phase === step.phase ? upTo[i - 1] : i
      barriers.push(i)
    } else for (const key of step.after ?? []) {
      const j = indexOfKey.get(key)
      if (j === undefined || j === i) throw new RegError(`internal: the step for ${step.key} waits for ${key}, which the plan does not have`)
      waiting[i]++
      dependents[j].push(i)
    }
    if (step.after !== 'all-earlier' && waiting[i] === 0) ready.push(i)
  })
  const done = new Array<boolean>(steps.length).fill(false)
  /** every step before this position is done */
  let donePrefix = 0
  let nextBarrier = 0
  const releaseBarriers = () => {
    while (donePrefix < steps.length && done[donePrefix]) donePrefix++
    while (nextBarrier < barriers.length && upTo[barriers[nextBarrier]] <= donePrefix) ready.push(barriers[nextBarrier++])
  }
  releaseBarriers()

  let running = 0
  let finished = 0
  let failed: {error: unknown} | undefined
  await new Promise<void>((resolve, reject) => {
    const settle = () => {
      if (running > 0) return
      if (failed) reject(failed.error)
      else if (finished === steps.length) resolve()
      else if (ready.size === 0) reject(new RegError(`internal: ${steps.length - finished} publish steps wait for each other`))
    }
    const fill = () => {
      while (!failed && running < limit && ready.size > 0) {
        const i = ready.pop()
        running++
        work(steps[i]).then(() => {
          done[i] = true
          finished++
          for (const d of dependents[i]) if (--waiting[d] === 0) ready.push(d)
          releaseBarriers()
        }, (error: unknown) => {
          failed ??= {error}
        }).finally(() => {
          running--
          fill()
          settle()
        })
      }
    }
    fill()
    settle()
  })
}

/** A min-heap of step positions: the ready step earliest in the plan's order runs first. */
class MinHeap {
  private readonly items: number[] = []
  get size(): number {
    return this.items.length
  }

  push(value: number): void {
    const items = this.items
    items.push(value)
    for (let i = items.length - 1; i > 0;) {
      const parent = (i - 1) >> 1
      if (items[parent] <= items[i]) break
      ;[items[parent], items[i]] = [items[i], items[parent]]
      i = parent
    }
  }

  pop(): number {
    const items = this.items
    const top = items[0]
    const last = items.pop()!
    if (items.length > 0) {
      items[0] = last
      for (let i = 0; ;) {
        const [l, r] = [2 * i + 1, 2 * i + 2]
        let least = i
        if (l < items.length && items[l] < items[least]) least = l
        if (r < items.length && items[r] < items[least]) least = r
        if (least === i) break
        ;[items[least], items[i]] = [items[i], items[least]]
        i = least
      }
    }
    return top
  }
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
