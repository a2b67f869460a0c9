import {constants} from 'node:fs'
import {type FileHandle, open, readlink, realpath, stat} from 'node:fs/promises'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {errnoCode, RegError} from '../core/errors.js'
import {readHandleBounded} from '../core/limits.js'

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
  /** the file open, with its size, opened as `open` opens it (files of a directory only); undefined when it does not exist */
  openHandle?(relative: string, what: string): Promise<{handle: FileHandle; size: number} | undefined>
}

/** The files of a directory, never read through a link leading out of it, and only regular files. */
export class DirectoryFiles implements SourceFiles {
  /** the real path of the root and of each directory files were opened in, resolved once per source */
  private realRoot?: Promise<string>
  private readonly realDirs = new Map<string, Promise<string | undefined>>()

  constructor(readonly where: string) {}

  private root(): Promise<string> {
    this.realRoot ??= realpath(this.where)
    this.realRoot.catch(() => (this.realRoot = undefined))
    return this.realRoot
  }

  /**
   * Where `relative` is, the directory resolved once (a blob store's thousands of files share one):
   * undefined when it does not exist, and for `.`/`..` names, left to the full resolution.
   */
  private async fastPath(relative: string, what: string): Promise<string | undefined> {
    const dir = path.dirname(relative)
    const name = path.basename(relative)
    if (name === '.' || name === '..' || name === '' || path.isAbsolute(relative)) return undefined
    let realDir = this.realDirs.get(dir)
    if (!realDir) {
      realDir = (async () => (dir === '.' ? this.root() : resolveInside(this.where, dir, what)))()
      this.realDirs.set(dir, realDir)
      realDir.catch(() => this.realDirs.delete(dir))
    }
    const real = await realDir
    return real && path.join(real, name)
  }

  private async openInside(relative: string, what: string): Promise<{handle: FileHandle; size: number} | undefined> {
    // The file is opened without following a link (O_NOFOLLOW) in its directory, resolved once; a
    // link (ELOOP) is resolved in full and followed only when it stays inside.
    let real = await this.fastPath(relative, what)
    let handle: FileHandle | undefined
    if (real) handle = await this.openFile(real, what, false)
    if (!handle) {
      real = await resolveInside(this.where, relative, what)
      if (!real) return undefined
      handle = await this.openFile(real, what, true)
      if (!handle) return undefined
    }
    try {
      // A directory on the way could have been swapped for a link since the check: ask the kernel what was opened.
      const opened = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => real!)
      if (!isInside(opened, await this.root())) throw new RegError(`${what} resolves outside the source`, OUTSIDE_HINT)
      const info = await handle.stat()
      if (!info.isFile()) throw new RegError(`${what} is not a regular file`, 'the source is corrupt; export the image again')
      return {handle, size: info.size}
    } catch (error) {
      await handle.close()
      throw error
    }
  }

  /** Open a resolved path; undefined when it is missing, or (before it was resolved in full) a link. */
  private async openFile(real: string, what: string, resolved: boolean): Promise<FileHandle | undefined> {
    try {
      // O_NONBLOCK: opening a FIFO planted in the source must not hang; it is refused as not a file.
      return await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return undefined
      if (errnoCode(error) === 'ELOOP') {
        if (!resolved) return undefined
        throw new RegError(`${what} changed into a symlink while reg was reading it`, OUTSIDE_HINT)
      }
      throw error
    }
  }

  async read(relative: string, limit: number, what: string): Promise<Buffer | undefined> {
    const opened = await this.openInside(relative, what)
    if (!opened) return undefined
    try {
      return await readHandleBounded(opened.handle, opened.size, limit, what)
    } finally {
      await opened.handle.close()
    }
  }

  openHandle(relative: string, what: string): Promise<{handle: FileHandle; size: number} | undefined> {
    return this.openInside(relative, what)
  }

  async open(relative: string, what: string): Promise<Readable | undefined> {
    const opened = await this.openInside(relative, what)
    // Chunks of 1 MiB for big blobs, of the file's size for small ones (a 1 MiB buffer per 300-byte config is most of a build's garbage).
    return opened?.handle.createReadStream({highWaterMark: Math.min(Math.max(opened.size + 1, 16 * 1024), 1 << 20)})
  }
}
