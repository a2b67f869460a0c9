import {createHmac, randomBytes} from 'node:crypto'
import {createRequire} from 'node:module'
import {Worker} from 'node:worker_threads'

/**
 * bcrypt runs in a worker thread: one check costs about a second of CPU at cost 12, and the
 * server's event loop (every read, every other client) must never wait for it. Unknown users are
 * checked against a dummy hash of the same cost, so a rejection takes as long whether the user
 * exists or not. One worker: checks queue behind each other, the other core stays with the server.
 */
const WORKER_SOURCE = `
const {parentPort, workerData} = require('node:worker_threads')
const bcrypt = require(workerData.bcrypt)
const dummy = bcrypt.hashSync(require('node:crypto').randomBytes(16).toString('hex'), workerData.cost)
parentPort.on('message', ({id, password, hash}) => {
  let ok = false
  try {
    ok = bcrypt.compareSync(password, hash ?? dummy) && hash !== null
  } catch {}
  parentPort.postMessage({id, ok})
})
`

export interface PasswordCheckOptions {
  /** how long a successful check is remembered (ms): a push sends dozens of requests with the same credentials */
  successTtlMs?: number
  /** failed (or pending) checks one address may have in `failureWindowMs` before it gets 429 */
  failureLimit?: number
  failureWindowMs?: number
  /** addresses tracked at most (oldest forgotten first): the table's memory is bounded */
  maxAddresses?: number
  /** checks waiting for the worker at most; more get 429 at once */
  maxPending?: number
}

export type CheckResult = 'ok' | 'denied' | 'throttled'

const DEFAULTS: Required<PasswordCheckOptions> = {successTtlMs: 60_000, failureLimit: 10, failureWindowMs: 10 * 60_000, maxAddresses: 10_000, maxPending: 64}
const MAX_REMEMBERED_SUCCESSES = 1000

/** The cost of a bcrypt hash (`$2b$12$…` → 12). */
function bcryptCost(hash: string): number {
  const cost = Number(/^\$2[aby]\$(\d\d)\$/.exec(hash)?.[1])
  return Number.isInteger(cost) && cost >= 4 && cost <= 31 ? cost : 10
}

/** Checks of htpasswd (bcrypt) users: off the event loop, the same work for unknown users, throttled per address. */
export class PasswordChecker {
  /** bcrypt comparisons run (known and unknown users alike): what a test can count */
  verifications = 0
  private readonly options: Required<PasswordCheckOptions>
  /** keyed by a keyed hash of user and password, never the password itself */
  private readonly hmacKey = randomBytes(32)
  private readonly successes = new Map<string, number>()
  private readonly inFlight = new Map<string, Promise<boolean>>()
  private readonly attempts = new Map<string, {count: number; since: number}>()
  private readonly dummyCost: number
  private worker?: {thread: Worker; jobs: Map<number, (ok: boolean) => void>}
  private pendingJobs = 0
  private nextJob = 0

  constructor(private readonly users: ReadonlyMap<string, string>, options: PasswordCheckOptions = {}) {
    this.options = {...DEFAULTS, ...options}
    this.dummyCost = Math.max(4, ...[...users.values()].map(bcryptCost))
  }

  async check(user: string, password: string, address: string): Promise<CheckResult> {
    const key = createHmac('sha256', this.hmacKey).update(user).update('\0').update(password).digest('hex')
    const now = Date.now()
    const remembered = this.successes.get(key)
    if (remembered !== undefined && remembered > now) return 'ok'
    if (remembered !== undefined) this.successes.delete(key)
    // The same credentials already being checked (a client's parallel requests): wait for that answer.
    const pending = this.inFlight.get(key)
    if (pending) return (await pending) ? 'ok' : 'denied'
    const attempts = this.attemptsOf(address, now)
    if (attempts.count >= this.options.failureLimit || this.pendingJobs >= this.options.maxPending) return 'throttled'
    attempts.count++
    const verified = this.verify(this.users.get(user) ?? null, password)
    this.inFlight.set(key, verified)
    let ok: boolean
    try {
      ok = await verified
    } finally {
      this.inFlight.delete(key)
    }
    if (!ok) return 'denied'
    attempts.count = Math.max(0, attempts.count - 1)
    if (this.successes.size >= MAX_REMEMBERED_SUCCESSES) this.successes.delete(this.successes.keys().next().value!)
    this.successes.set(key, Date.now() + this.options.successTtlMs)
    return 'ok'
  }

  /** Stop the worker (a running check answers 'denied'). */
  async close(): Promise<void> {
    const worker = this.worker
    this.worker = undefined
    await worker?.thread.terminate()
  }

  private attemptsOf(address: string, now: number): {count: number; since: number} {
    let entry = this.attempts.get(address)
    if (entry && now - entry.since > this.options.failureWindowMs) {
      this.attempts.delete(address)
      entry = undefined
    }
    if (!entry) {
      if (this.attempts.size >= this.options.maxAddresses) {
        for (const [known, old] of this.attempts) if (now - old.since > this.options.failureWindowMs) this.attempts.delete(known)
        if (this.attempts.size >= this.options.maxAddresses) this.attempts.delete(this.attempts.keys().next().value!)
      }
      entry = {count: 0, since: now}
      this.attempts.set(address, entry)
    }
    return entry
  }

  /** One bcrypt comparison in the worker; `hash` null: an unknown user, compared against the dummy hash. */
  private verify(hash: string | null, password: string): Promise<boolean> {
    this.verifications++
    const worker = this.startWorker()
    const id = this.nextJob++
    // Referenced only while it has work: an idle worker never keeps the process alive.
    if (worker.jobs.size === 0) worker.thread.ref()
    this.pendingJobs++
    return new Promise<boolean>((resolve) => {
      worker.jobs.set(id, (ok) => {
        this.pendingJobs--
        if (worker.jobs.size === 0) worker.thread.unref()
        resolve(ok)
      })
      worker.thread.postMessage({id, password, hash})
    })
  }

  private startWorker(): {thread: Worker; jobs: Map<number, (ok: boolean) => void>} {
    if (this.worker) return this.worker
    const bcrypt = createRequire(import.meta.url).resolve('bcryptjs')
    const thread = new Worker(WORKER_SOURCE, {eval: true, workerData: {bcrypt, cost: this.dummyCost}})
    const worker = {thread, jobs: new Map<number, (ok: boolean) => void>()}
    thread.on('message', ({id, ok}: {id: number; ok: boolean}) => {
      const done = worker.jobs.get(id)
      worker.jobs.delete(id)
      done?.(ok)
    })
    // A dead worker denies what it was checking; the next check starts a new one.
    const failAll = () => {
      if (this.worker === worker) this.worker = undefined
      const pending = [...worker.jobs.values()]
      worker.jobs.clear()
      for (const done of pending) done(false)
    }
    thread.on('error', failAll)
    thread.on('exit', failAll)
    this.worker = worker
    return worker
  }
}
