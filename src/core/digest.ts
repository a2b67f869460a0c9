import {createHash, type Hash} from 'node:crypto'
import {Transform, type TransformCallback} from 'node:stream'
import {RegError} from './errors.js'
import {quoted} from './quote.js'

const SHA256 = /^sha256:[a-f0-9]{64}$/

/** A validated `sha256:<hex>` digest. Other algorithms are refused: every host path and store key assumes sha256. */
export function parseDigest(value: string, what = 'digest'): string {
  if (SHA256.test(value)) return value
  if (/^sha512:[a-f0-9]{128}$/.test(value) || /^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(value)) {
    throw new RegError(`unsupported ${what} algorithm in ${quoted(value)}`, 'reg stores and serves sha256 digests only; re-push the image with sha256 digests')
  }
  throw new RegError(`invalid ${what} ${quoted(value)}`, 'a digest looks like sha256:<64 lowercase hex characters>')
}

export function isDigest(value: string): boolean {
  return SHA256.test(value)
}

export function digestHex(digest: string): string {
  return digest.slice('sha256:'.length)
}

export function sha256(bytes: Uint8Array | string): string {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex')
}

export interface DigestCheck {
  digest: string
  size?: number
  /** what the bytes are, for the error message: "blob sha256:… of team/app:1 from oci:/x" */
  label: string
}

export class DigestMismatchError extends RegError {
  constructor(check: DigestCheck, actualDigest: string, actualSize: number) {
    const sizeNote = check.size !== undefined && check.size !== actualSize ? ` (expected ${check.size} bytes, read ${actualSize})` : ''
    super(
      `${check.label}: content does not match its digest: expected ${check.digest}, got ${actualDigest}${sizeNote}`,
      'the source is corrupt or was modified after it was written; re-export the image',
      'DIGEST_MISMATCH',
    )
  }
}

/**
 * Hashes bytes as they arrive and checks them against a descriptor: more bytes than it claims fail
 * at once (a size is a claim, never a budget to read past), a wrong digest or size at `finish`.
 */
export class DigestVerifier {
  private readonly hash: Hash = createHash('sha256')
  private bytes = 0

  constructor(private readonly check: DigestCheck) {}

  get bytesSeen(): number {
    return this.bytes
  }

  update(chunk: Uint8Array): void {
    this.bytes += chunk.length
    if (this.check.size !== undefined && this.bytes > this.check.size) {
      throw new DigestMismatchError(this.check, 'sha256:(more bytes than the descriptor says)', this.bytes)
    }
    this.hash.update(chunk)
  }

  /** Throws unless the bytes seen are exactly the descriptor's. */
  finish(): void {
    const actual = 'sha256:' + this.hash.digest('hex')
    if (actual !== this.check.digest || (this.check.size !== undefined && this.check.size !== this.bytes)) {
      throw new DigestMismatchError(this.check, actual, this.bytes)
    }
  }
}

/**
 * A pass-through stream that hashes every byte and fails at the end when the digest or the size
 * differs from the descriptor. Placed between a source and the store, so nothing unverified lands.
 */
export class VerifyingStream extends Transform {
  private readonly verifier: DigestVerifier

  constructor(check: DigestCheck) {
    super()
    this.verifier = new DigestVerifier(check)
  }

  get bytesSeen(): number {
    return this.verifier.bytesSeen
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.verifier.update(chunk)
    } catch (error) {
      callback(error as Error)
      return
    }
    callback(null, chunk)
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.verifier.finish()
    } catch (error) {
      callback(error as Error)
      return
    }
    callback()
  }
}

/** Verify bytes already in memory (manifests, configs). */
export function verifyBytes(bytes: Uint8Array, check: DigestCheck): void {
  const actual = sha256(bytes)
  if (actual !== check.digest || (check.size !== undefined && check.size !== bytes.length)) {
    throw new DigestMismatchError(check, actual, bytes.length)
  }
}
