import {constants} from 'node:fs'
import {type FileHandle, open, readlink, realpath, stat} from 'node:fs/promises'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {errnoCode, RegError} from '../core/errors.js'
import {readBounded} from '../core/limits.js'

const OUTSIDE_HINT = 'the source contains a symlink pointing outside it; reg refuses to read through it'

function isInside(real: string, realRoot: string): boolean {
  return real === realRoot || real.startsWith(realRoot + path.sep)
}

/**
 * Resolve `relative` inside `root`, following symlinks, and refuse anything that ends up outside:
 * a source must not make reg read `/etc/shadow` through a symlinked blob. The message does not say
 * where the link leads. Returns undefined when the file does not exist.
 */
export async function resolveInside(root: string, relative: string, what: string): Promise<string | undefined> {
  const realRoot = await realpath(root)
  const candidate = path.resolve(realRoot, relative)
  if (!isInside(candidate, realRoot)) throw new RegError(`${what} resolves outside the source`, OUTSIDE_HINT)
  let real: string
  try {
    real = await realpath(candidate)
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined
    throw error
  }
  if (!isInside(real, realRoot)) throw new RegError(`${what} resolves outside the source`, OUTSIDE_HINT)
  return real
}

/** Fail with a clear message unless `dir` is an existing directory. */
export async function requireDirectory(dir: string, description: string): Promise<void> {
  try {
    if (!(await stat(dir)).isDirectory()) throw new RegError(`${description}: ${dir} is not a directory`)
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') throw new RegError(`${description}: ${dir} does not exist`, 'check the path')
    throw error
  }
}

/** The files of a source, by path relative to it: a directory on disk, or an archive's namespace. */
export interface SourceFiles {
  /** where they are, for messages */
  readonly where: string
  /** the whole file, at most `limit` bytes; undefined when it does not exist */
  read(relative: string, limit: number, what: string): Promise<Buffer | undefined>
  /** the file as a stream; undefined when it does not exist */
  open(relative: string, what: string): Promise<Readable | undefined>
}

/** The files of a directory, never read through a link leading out of it, and only regular files. */
export class DirectoryFiles implements SourceFiles {
  constructor(readonly where: string) {}

  private async openInside(relative: string, what: string): Promise<FileHandle | undefined> {
    const real = await resolveInside(this.where, relative, what)
    if (!real) return undefined
    let handle: FileHandle
    try {
      // O_NONBLOCK: opening a FIFO planted in the source must not hang; it is refused below as not a file.
      handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return undefined
      if (errnoCode(error) === 'ELOOP') throw new RegError(`${what} changed into a symlink while reg was reading it`, OUTSIDE_HINT)
      throw error
    }
    try {
      // A directory on the way could have been swapped for a link since the check: ask the kernel what was opened.
      const opened = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => real)
      if (!isInside(opened, await realpath(this.where))) throw new RegError(`${what} resolves outside the source`, OUTSIDE_HINT)
      if (!(await handle.stat()).isFile()) throw new RegError(`${what} is not a regular file`, 'the source is corrupt; export the image again')
    } catch (error) {
      await handle.close()
      throw error
    }
    return handle
  }

  async read(relative: string, limit: number, what: string): Promise<Buffer | undefined> {
    const handle = await this.openInside(relative, what)
    return handle && readBounded(handle.createReadStream(), limit, what)
  }

  async open(relative: string, what: string): Promise<Readable | undefined> {
    const handle = await this.openInside(relative, what)
    return handle?.createReadStream({highWaterMark: 1 << 20})
  }
}
