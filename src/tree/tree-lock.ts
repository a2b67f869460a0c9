import {mkdir, open, stat, unlink} from 'node:fs/promises'
import path from 'node:path'
import {errnoCode, RegError} from '../core/errors.js'
import {readFileBounded} from '../core/limits.js'
import {processRunning} from '../core/process.js'

/**
 * One writer at a time for a tree: `reg build`, `reg prune` and `reg serve --push`/`--proxy` each
 * replace or rewrite the tree's state, and two of them at once lose one's work (a prune's swap
 * drops a push made meanwhile). The lock is a file beside the tree (`DIR.reg-lock`, not inside it:
 * a build replaces the whole directory), created exclusively, naming its holder; a holder that no
 * longer runs left a stale lock, which the next writer takes over.
 */
export interface TreeLock {
  release(): Promise<void>
}

interface Holder {
  pid: number
  command: string
}

export function treeLockFile(dir: string): string {
  const out = path.resolve(dir)
  return `${out}.reg-lock`
}

/** Take the write lock of the tree at `dir` for `command` (`reg build`…), or refuse, naming who holds it. */
export async function lockTree(dir: string, command: string): Promise<TreeLock> {
  const file = treeLockFile(dir)
  await mkdir(path.dirname(file), {recursive: true})
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(file, 'wx')
      try {
        await handle.writeFile(JSON.stringify({pid: process.pid, command} satisfies Holder))
      } finally {
        await handle.close()
      }
      let released = false
      return {
        release: async () => {
          if (released) return
          released = true
          await unlink(file).catch(() => undefined)
        },
      }
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw error
    }
    const holder = await readHolder(file)
    const hint = `wait until it finishes, or stop it: two writers at once would lose one's changes (the lock is ${file})`
    if (holder && processRunning(holder.pid)) throw new RegError(`${dir} is being written by ${holder.command} (process ${holder.pid})`, hint, 'TREE_LOCKED')
    // Unreadable and fresh: its holder is still writing its name.
    if (!holder && (await ageMs(file)) < FRESH_MS) throw new RegError(`${dir} is being written by another reg command`, hint, 'TREE_LOCKED')
    // Stale (its holder is gone): take it over; a race with another taker is settled by 'wx'.
    if (attempt >= 2) throw new RegError(`cannot take the write lock ${file}`, 'remove it if no reg command is writing this tree', 'TREE_LOCKED')
    await unlink(file).catch((unlinkError: unknown) => {
      if (errnoCode(unlinkError) !== 'ENOENT') throw unlinkError
    })
  }
}

/** A lock younger than this whose holder cannot be read yet is taken to be held. */
const FRESH_MS = 10_000

async function ageMs(file: string): Promise<number> {
  try {
    return Date.now() - (await stat(file)).mtimeMs
  } catch {
    return Number.POSITIVE_INFINITY
  }
}

async function readHolder(file: string): Promise<Holder | undefined> {
  try {
    // A holder is a pid and a command name: anything larger is not ours, and is not read whole.
    const parsed = JSON.parse((await readFileBounded(file, 4096, `the write lock ${file}`)).toString('utf8')) as Partial<Holder>
    return typeof parsed.pid === 'number' && Number.isInteger(parsed.pid) && parsed.pid > 0 && typeof parsed.command === 'string' ? {pid: parsed.pid, command: parsed.command.slice(0, 100)} : undefined
  } catch {
    return undefined
  }
}
