// `reg serve` as a child process whose pid a test can watch (its memory, in /proc), as startServe in support.ts otherwise.
import {spawn} from 'node:child_process'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {freePort} from './static-hosts.js'
import {REPO_ROOT, type ServeProcess} from './support.js'

export interface WatchedServe extends ServeProcess {
  pid: number
  /** resident memory of the server process now, in bytes (VmRSS) */
  rss(): Promise<number>
}

export async function startWatchedServe(dir: string, flags: string[]): Promise<WatchedServe> {
  const port = await freePort()
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/run.js'), 'serve', dir, '-p', String(port), ...flags], {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8')
  })
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 200 && child.exitCode === null && !(await fetch(`${url}/v2/`).then((r) => r.status < 500, () => false)); i++) await sleep(50)
  if (child.exitCode !== null) throw new Error(`reg serve ${flags.join(' ')} exited: ${stderr}`)
  const exited = (signal: NodeJS.Signals) => {
    child.kill(signal)
    return new Promise<void>((resolve) => (child.exitCode === null && child.signalCode === null ? child.once('exit', () => resolve()) : resolve()))
  }
  const rss = async () => {
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8')
    const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status)
    if (!kib) throw new Error(`no VmRSS for ${child.pid}`)
    return Number(kib[1]) * 1024
  }
  return {url, hostPort: `127.0.0.1:${port}`, pid: child.pid!, rss, stderr: () => stderr, stop: () => exited('SIGTERM'), kill: () => exited('SIGKILL')}
}
