import {type FileHandle, open, unlink} from 'node:fs/promises'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {VerifyingStream} from '../core/digest.js'
import {errnoCode, RegError} from '../core/errors.js'
import {RegistryStatusError} from '../sources/registry/client.js'
import type {BlobStore} from '../tree/blob-store.js'

/**
 * One blob arriving from an upstream into the store, which any number of readers follow while it
 * arrives. The bytes go to a temporary file, verified on the way, and are renamed in under their
 * digest only once complete and correct. Readers are held back from the last byte until then: a
 * client never receives a whole blob whose digest is wrong (its connection is cut instead). The
 * size is known before a byte is written: a body that goes past it is cut there, and an upstream
 * that will not say the length of a blob no manifest describes is refused.
 */
export class BlobDownload {
  /** bytes the blob has: its descriptor's size, else the upstream's Content-Length (known once `started`) */
  size = 0
  private written = 0
  private complete = false
  private error?: Error
  private readonly temp: string
  private wake!: () => void
  private changed!: Promise<void>
  /** the upstream answered 200 and the temporary file exists */
  readonly started: Promise<void>
  /** the blob is in the store, verified */
  readonly finished: Promise<void>

  constructor(private readonly store: BlobStore, readonly digest: string, label: string, respond: () => Promise<{status: number; headers: Record<string, unknown>; body: Readable}>, expectedSize?: number) {
    this.temp = store.tempPath()
    this.rearm()
    let markStarted!: () => void
    this.started = new Promise<void>((resolve) => {
      markStarted = resolve
    })
    this.finished = this.run(label, respond, expectedSize, markStarted).then(() => {
      this.complete = true
      this.notify()
    }, async (error: Error) => {
      this.error = error
      await unlink(this.temp).catch(() => undefined)
      this.notify()
      throw error
    })
    // Callers await these; a failure nobody awaits must not end the process.
    this.finished.catch(() => undefined)
    this.started = Promise.race([this.started, this.finished])
    this.started.catch(() => undefined)
  }

  private rearm(): void {
    this.changed = new Promise((resolve) => {
      this.wake = resolve
    })
  }

  private notify(): void {
    const wake = this.wake
    this.rearm()
    wake()
  }

  private async run(label: string, respond: () => Promise<{status: number; headers: Record<string, unknown>; body: Readable}>, expectedSize: number | undefined, markStarted: () => void): Promise<void> {
    const res = await respond()
    if (res.status !== 200) {
      res.body.destroy()
      throw new RegistryStatusError(res.status, `${label}: the upstream answered ${res.status}`)
    }
    const header = res.headers['content-length']
    const length = header === undefined ? undefined : Number(header)
    let refusal: string | undefined
    if (length !== undefined && !(Number.isSafeInteger(length) && length >= 0)) refusal = 'the upstream sent an invalid Content-Length'
    else if (expectedSize !== undefined && length !== undefined && length !== expectedSize) refusal = `the upstream sends ${length} bytes, its descriptor says ${expectedSize}`
    else if (expectedSize === undefined && length === undefined) refusal = 'the upstream did not say how long it is, and no manifest the proxy has describes it'
    if (refusal) {
      res.body.destroy()
      throw new RegError(`${label}: ${refusal}`, 'pull the image by its tag or manifest digest, so that the blob\'s size is known')
    }
    this.size = expectedSize ?? length!
    const file = await open(this.temp, 'wx')
    markStarted()
    try {
      await pipeline(res.body, new VerifyingStream({digest: this.digest, size: this.size, label}), async (chunks: AsyncIterable<Buffer>) => {
        for await (const chunk of chunks) {
          await file.write(chunk)
          this.written += chunk.length
          this.notify()
        }
      })
      // on disk before the rename makes it a blob
      await file.sync()
    } finally {
      await file.close()
    }
    await this.store.commit(this.temp, this.digest)
  }

  /** Bytes a reader may have now: all once verified, else what is written but the last byte. */
  private readable(): number {
    if (this.complete) return this.written
    return Math.min(this.written, this.size - 1)
  }

  private async openForReading(): Promise<FileHandle> {
    try {
      return await open(this.temp, 'r')
    } catch (error) {
      // renamed in already (or removed after a failure)
      if (errnoCode(error) !== 'ENOENT') throw error
      if (this.complete) return open(this.store.pathOf(this.digest), 'r')
      throw this.error ?? error
    }
  }

  /** Bytes `start..end` (inclusive) as they arrive; fails when the download fails. Call after `started`. */
  follow(start: number, end: number): Readable {
    const download = this
    return Readable.from((async function* () {
      const file = await download.openForReading()
      try {
        let position = start
        while (position <= end) {
          if (download.error) throw download.error
          const available = download.readable()
          if (position >= available) {
            // A chunk, the verdict or a failure will come; nothing can happen between the check and this wait.
            await download.changed
            continue
          }
          const chunk = Buffer.allocUnsafe(Math.min(1 << 16, available - position, end + 1 - position))
          const {bytesRead} = await file.read(chunk, 0, chunk.length, position)
          if (bytesRead === 0) throw new Error(`blob ${download.digest}: the temporary file is shorter than what was written`)
          position += bytesRead
          yield chunk.subarray(0, bytesRead)
        }
      } finally {
        await file.close()
      }
    })(), {objectMode: false})
  }
}
