import {realpath, stat} from 'node:fs/promises'
import path from 'node:path'
import {errnoCode, RegError} from '../core/errors.js'

/**
 * Resolve `relative` inside `root`, following symlinks, and refuse anything that ends up outside:
 * a source must not make reg read `/etc/shadow` through a symlinked blob.
 * Returns undefined when the file does not exist.
 */
export async function resolveInside(root: string, relative: string, what: string): Promise<string | undefined> {
  const realRoot = await realpath(root)
  const candidate = path.resolve(realRoot, relative)
  let real: string
  try {
    real = await realpath(candidate)
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined
    throw error
  }
  if (real !== realRoot && !real.startsWith(realRoot + path.sep)) {
    throw new RegError(`${what} resolves outside the source (${real})`, 'the source contains a symlink pointing outside it; reg refuses to read through it')
  }
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
