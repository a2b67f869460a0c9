import {realpath} from 'node:fs/promises'
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
