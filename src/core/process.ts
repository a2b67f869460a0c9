import {errnoCode} from './errors.js'

/**
 * Whether a process of this machine with this pid is running (a lock's holder, a build's staging
 * directory). Signal 0 only asks; EPERM means it runs as another user. A pid read from a file that is
 * not a positive integer names no process: `kill(0)` and `kill(-1)` would ask about groups instead.
 */
export function processRunning(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return errnoCode(error) === 'EPERM'
  }
}
