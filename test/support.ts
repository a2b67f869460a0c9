// Small shared pieces for the CLI-level tests: run the built CLI, make temp dirs, snapshot a tree.
import {execFile, spawn} from 'node:child_process'
import {cp, mkdtemp, readdir, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'
import {freePort} from './static-hosts.js'

export const REPO_ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
export const EXAMPLE_LAYOUT = path.join(REPO_ROOT, 'examples', 'hello')

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

/** Run `reg ARGS` (the built CLI in lib/) and never throw: tests assert on the code and output. */
export function runReg(args: string[], options: {cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number} = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(REPO_ROOT, 'bin', 'run.js'), ...args], {
      cwd: options.cwd ?? REPO_ROOT, env: {...process.env, ...options.env}, timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024,
    }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0
      resolve({code, stdout, stderr})
    })
  })
}

const temps: string[] = []

export async function tempDir(prefix = 'reg-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix))
  temps.push(dir)
  return dir
}

export async function removeTempDirs(): Promise<void> {
  await Promise.all(temps.splice(0).map((d) => rm(d, {recursive: true, force: true})))
}

/** A private, writable copy of the example OCI layout (examples/hello, tagged example.com/examples/hello:1.0). */
export async function copyExampleLayout(dest: string): Promise<string> {
  await cp(EXAMPLE_LAYOUT, dest, {recursive: true})
  return dest
}

/** Everything that identifies a tree's content, to prove a failed command changed nothing. */
export async function treeSnapshot(dir: string): Promise<string> {
  const index = await readFile(path.join(dir, 'registry.json'), 'utf8')
  const blobs = (await readdir(path.join(dir, 'blobs', 'sha256'))).sort()
  const siblings = (await readdir(path.dirname(dir))).filter((n) => n.startsWith(path.basename(dir) + '.reg-')).sort()
  return JSON.stringify({index, blobs, siblings})
}

export {writeTinyIndexLayout, writeTinyOciLayout, type TinyImage} from '../scripts/tiny-image.js'

export interface ServeProcess {
  url: string
  hostPort: string
  pid: number
  /** the server's memory now (VmRSS) and at its peak (VmHWM), in bytes, from /proc */
  memory(): Promise<{rss: number; peak: number}>
  /** what the server wrote on stderr so far (warnings) */
  stderr(): string
  /** SIGTERM, and wait for the exit */
  stop(): Promise<void>
  /** SIGKILL: a crash, nothing cleaned up */
  kill(): Promise<void>
}

/** `reg serve DIR FLAGS` as a child process of its own (clients in this process would otherwise deadlock it), ready when /v2/ answers. */
export async function startServe(dir: string, flags: string[], env: NodeJS.ProcessEnv = {}): Promise<ServeProcess> {
  const port = await freePort()
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/run.js'), 'serve', dir, '-p', String(port), ...flags], {stdio: ['ignore', 'ignore', 'pipe'], env: {...process.env, ...env}})
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
  const memory = async () => {
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8')
    const kib = (field: string) => {
      const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)
      if (!match) throw new Error(`no ${field} in /proc/${child.pid}/status`)
      return Number(match[1]) * 1024
    }
    return {rss: kib('VmRSS'), peak: kib('VmHWM')}
  }
  return {url, hostPort: `127.0.0.1:${port}`, pid: child.pid!, memory, stderr: () => stderr, stop: () => exited('SIGTERM'), kill: () => exited('SIGKILL')}
}
