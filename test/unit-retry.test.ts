// The one retry policy: full-jitter backoff under an exponential ceiling, the server's delay first,
// a bounded number of retries, and an abort that stops the wait at once.
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'
import {backoffMs, DEFAULT_RETRY, RetryableError, serverDelayMs, withRetries} from '../src/core/retry.js'

describe('retry policy', () => {
  it('backoff is drawn from 0 to base·2^attempt, capped', () => {
    const policy = {retries: 5, baseMs: 100, maxMs: 1000}
    assert.equal(backoffMs(policy, 0, () => 0), 0)
    assert.equal(backoffMs(policy, 0, () => 0.999), 99)
    assert.equal(backoffMs(policy, 3, () => 0.5), 400)
    assert.equal(backoffMs(policy, 10, () => 0.999), 999, 'never above maxMs')
  })

  it("reads the server's delay: Retry-After in seconds or as a date, X-RateLimit-Reset as epoch seconds", () => {
    const now = Date.parse('2026-11-29T12:00:00Z')
    assert.equal(serverDelayMs({'retry-after': '3'}, now), 3000)
    assert.equal(serverDelayMs({'retry-after': 'Sun, 29 Nov 2026 12:00:05 GMT'}, now), 5000)
    assert.equal(serverDelayMs({'x-ratelimit-reset': String(now / 1000 + 7)}, now), 7000)
    assert.equal(serverDelayMs({'retry-after': 'soon'}, now), undefined)
    assert.equal(serverDelayMs({}, now), undefined)
  })

  it('retries what may be retried, at most `retries` times, and gives up at once on the rest', async () => {
    let calls = 0
    await assert.rejects(withRetries(async () => {
      calls++
      throw new RetryableError('busy', 0)
    }, {policy: {retries: 3, baseMs: 1}}), /busy/)
    assert.equal(calls, 4)
    calls = 0
    await assert.rejects(withRetries(async () => {
      calls++
      throw new Error('final')
    }, {policy: {retries: 3, baseMs: 1}}), /final/)
    assert.equal(calls, 1)
    let retries = 0
    const value = await withRetries(async (tries) => {
      if (tries < 2) throw new RetryableError('again', 1)
      return 'done'
    }, {onRetry: () => retries++})
    assert.equal(value, 'done')
    assert.equal(retries, 2)
  })

  it('an abort stops the wait between attempts', async () => {
    const controller = new AbortController()
    const running = withRetries(async () => {
      throw new RetryableError('wait a minute', 60_000)
    }, {policy: {...DEFAULT_RETRY, maxMs: 60_000}, signal: controller.signal, onRetry: () => controller.abort()})
    await assert.rejects(running, {name: 'AbortError'})
  })
})
