import {setTimeout as sleep} from 'node:timers/promises'

/**
 * The one retry policy of reg, for every network and disk-heavy call that can fail transiently
 * (registry requests, deploy steps, host APIs): exponential backoff with full jitter (a delay drawn
 * uniformly from 0 to base·2^attempt, capped), the server's own word first (`Retry-After`,
 * `X-RateLimit-Reset`), and an AbortSignal that stops the waiting at once (Ctrl-C).
 */
export interface RetryPolicy {
  /** retries after the first attempt */
  retries: number
  /** the first backoff ceiling, ms; doubled each attempt */
  baseMs: number
  /** no single wait longer than this, ms */
  maxMs: number
}

export const DEFAULT_RETRY: RetryPolicy = {retries: 4, baseMs: 250, maxMs: 30_000}

/** What an attempt's failure says about trying again. */
export interface RetryVerdict {
  retry: boolean
  /** the server asked for this delay (ms); it wins over the backoff, up to maxMs */
  afterMs?: number
}

/** A failed attempt that may be tried again, and when the server said to. */
export class RetryableError extends Error {
  constructor(message: string, readonly afterMs?: number, options?: {cause?: unknown}) {
    super(message, options)
  }
}

/** `Retry-After` (seconds or an HTTP date) or `X-RateLimit-Reset` (epoch seconds), as ms from now. */
export function serverDelayMs(headers: Record<string, unknown>, now = Date.now()): number | undefined {
  const retryAfter = headers['retry-after']
  if (typeof retryAfter === 'string' && retryAfter.trim() !== '') {
    const seconds = Number(retryAfter)
    if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000
    const date = Date.parse(retryAfter)
    if (!Number.isNaN(date)) return Math.max(0, date - now)
  }
  const reset = Number(headers['x-ratelimit-reset'])
  if (Number.isFinite(reset) && reset > 0) return Math.max(0, reset * 1000 - now)
  return undefined
}

/** The delay before retry number `attempt` (0-based): full jitter under an exponential ceiling. */
export function backoffMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(policy.maxMs, policy.baseMs * 2 ** attempt))
}

/**
 * Run `attempt` until it succeeds, `classify` says a failure is final, the retries are spent or
 * `signal` aborts. `onRetry` hears of each retry (progress lines).
 */
export async function withRetries<T>(
  attempt: (tries: number) => Promise<T>,
  options: {policy?: Partial<RetryPolicy>; classify?: (error: unknown) => RetryVerdict; signal?: AbortSignal; onRetry?: (error: unknown, tries: number, delayMs: number) => void} = {},
): Promise<T> {
  const policy = {...DEFAULT_RETRY, ...options.policy}
  const classify = options.classify ?? ((error: unknown) => ({retry: error instanceof RetryableError, afterMs: error instanceof RetryableError ? error.afterMs : undefined}))
  for (let tries = 0; ; tries++) {
    options.signal?.throwIfAborted()
    try {
      return await attempt(tries)
    } catch (error) {
      const verdict = classify(error)
      if (!verdict.retry || tries >= policy.retries || options.signal?.aborted) throw error
      const delay = Math.min(policy.maxMs, verdict.afterMs ?? backoffMs(policy, tries))
      options.onRetry?.(error, tries + 1, delay)
      await sleep(delay, undefined, {signal: options.signal})
    }
  }
}
