// Small shared pieces for the CLI-level tests: run the built CLI, make temp dirs, snapshot a tree.
import {execFile, spawn} from 'node:child_process'
import {cp, mkdtemp, readdir, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {Config, run as runCli} from '@oclif/core'
import {Exit, handle} from '@oclif/core/handle'
import {freePort, makeServable, type RunningHost, startApache, startNginx, waitUntil} from './static-hosts.js'

export const REPO_ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
export const EXAMPLE_LAYOUT = path.join(REPO_ROOT, 'examples', 'hello')

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

export interface RunOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** the call fails (throws) after this long: a hung command is a failure, never a silent pass */
  timeoutMs?: number
}

const DEFAULT_RUN_TIMEOUT_MS = 120_000

/**
 * Run `reg ARGS` (the built CLI in lib/, what bin/run.js runs) inside this test process, and never
 * throw for the command's own failure: tests assert on the code and output. Startup (oclif's config,
 * the command modules) is paid once per test process instead of once per call. stdout/stderr,
 * process.env, the cwd and process.argv are process-wide, so calls are serialized.
 */
export function runReg(args: string[], options: RunOptions = {}): Promise<RunResult> {
  const result = inProcessQueue.then(() => runInProcess(args, options))
  inProcessQueue = result.then(() => undefined, () => undefined)
  return result
}

let inProcessQueue: Promise<void> = Promise.resolve()
let loadedConfig: Promise<Config> | undefined

/** One call at a time (see runReg); mirrors bin/run.js: `execute` = run, flush, else handle(error) → exit code. */
async function runInProcess(args: string[], options: RunOptions): Promise<RunResult> {
  loadedConfig ??= Config.load(REPO_ROOT)
  const config = await loadedConfig
  const stdout: Buffer[] = []
  const stderr: Buffer[] = []
  const restoreStdout = captureWrites(process.stdout, stdout)
  const restoreStderr = captureWrites(process.stderr, stderr)
  const savedEnv = applyEnv(options.env ?? {})
  const savedCwd = process.cwd()
  const savedArgv = process.argv
  const savedExitCode = process.exitCode
  const savedExit = Exit.exit
  const savedProcessExit = process.exit
  let exitCode: number | undefined
  let calledProcessExit: number | undefined
  // handle() ends in Exit.exit(code) (process.exit in the real CLI): keep the code instead.
  Exit.exit = ((code = 0) => {
    exitCode ??= code
  }) as typeof Exit.exit
  // A command that calls process.exit itself cannot run in-process: say so instead of ending the test run.
  process.exit = ((code?: number) => {
    calledProcessExit = code ?? 0
    throw new Error(`reg ${args.join(' ')} called process.exit(${code ?? ''}) in-process; use runRegProcess for it`)
  }) as typeof process.exit
  process.argv = [process.execPath, path.join(REPO_ROOT, 'bin', 'run.js'), ...args]
  process.exitCode = undefined
  let timer: NodeJS.Timeout | undefined
  try {
    process.chdir(options.cwd ?? REPO_ROOT)
    const timeoutMs = options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`reg ${args.join(' ')} did not finish within ${timeoutMs} ms (in-process)`)), timeoutMs)
    })
    const finished = (async () => {
      try {
        await runCli(args, config)
        return Number(process.exitCode ?? 0)
      } catch (error) {
        await handle(error as Error)
        return exitCode ?? 1
      }
    })()
    const code = await Promise.race([finished, timedOut])
    if (calledProcessExit !== undefined) throw new Error(`reg ${args.join(' ')} called process.exit(${calledProcessExit}) in-process; use runRegProcess for it`)
    return {code, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8')}
  } finally {
    clearTimeout(timer)
    Exit.exit = savedExit
    process.exit = savedProcessExit
    process.exitCode = savedExitCode
    process.argv = savedArgv
    process.chdir(savedCwd)
    restoreEnv(savedEnv)
    restoreStderr()
    restoreStdout()
  }
}

/** Set by node:test in the process of each test file: its reports go to the runner as binary chunks on stdout. */
const UNDER_TEST_RUNNER = process.env.NODE_TEST_CONTEXT !== undefined

/**
 * Collect what is written to `stream` (oclif, console and the commands all write text through its
 * write method) until the returned restore is called. Under node:test, binary chunks are the test
 * runner's own reports of earlier tests, flushed late: they pass through.
 */
function captureWrites(stream: NodeJS.WriteStream, sink: Buffer[]): () => void {
  const original = Object.getOwnPropertyDescriptor(stream, 'write')
  const passThrough = stream.write
  stream.write = ((chunk: string | Uint8Array, encoding?: BufferEncoding | ((error?: Error | null) => void), callback?: (error?: Error | null) => void) => {
    if (UNDER_TEST_RUNNER && typeof chunk !== 'string') return passThrough.call(stream, chunk, encoding as BufferEncoding, callback)
    if (typeof encoding === 'function') {
      callback = encoding
      encoding = undefined
    }
    sink.push(typeof chunk === 'string' ? Buffer.from(chunk, encoding) : Buffer.from(chunk))
    if (callback) process.nextTick(callback)
    return true
  }) as typeof stream.write
  return () => {
    if (original) Object.defineProperty(stream, 'write', original)
    else delete (stream as {write?: unknown}).write
  }
}

/** Set (or, for undefined values, unset) the given variables; returns what to put back. */
function applyEnv(env: NodeJS.ProcessEnv): Map<string, string | undefined> {
  const saved = new Map<string, string | undefined>()
  for (const [key, value] of Object.entries(env)) {
    saved.set(key, process.env[key])
    if (value === undefined) delete process.env[key]
    else process.env[key] = value
  }
  return saved
}

function restoreEnv(saved: Map<string, string | undefined>): void {
  for (const [key, value] of saved) {
    if (value === undefined) delete process.env[key]
    else process.env[key] = value
  }
}

/** `reg ARGS` as a child process: for what needs the process boundary (exit on signals, startup, a separate event loop). Never throws. */
export function runRegProcess(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const timeoutMs = options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS
    execFile(process.execPath, [path.join(REPO_ROOT, 'bin', 'run.js'), ...args], {
      cwd: options.cwd ?? REPO_ROOT, env: {...process.env, ...options.env}, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024,
    }, (error, stdout, stderr) => {
      if (error && error.killed && error.signal === 'SIGTERM' && error.code === null) {
        reject(new Error(`reg ${args.join(' ')} did not finish within ${timeoutMs} ms (killed); stderr: ${stderr}`))
        return
      }
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
  // -p 0: the server takes a port no one else holds and says which; a port chosen here could be taken by
  // another test's server before this one binds it, and the probe below would then answer from that one.
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/run.js'), 'serve', dir, '-p', '0', ...flags], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, ...env}})
  let stderr = ''
  let stdout = ''
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8')
  })
  child.stdout.on('data', (chunk: Buffer) => {
    if (stdout.length < 64 * 1024) stdout += chunk.toString('utf8')
  })
  let url = ''
  try {
    await waitUntil(`reg serve ${flags.join(' ')} says where it listens, and answers there`, async () => {
      url ||= /^reg serving .* at (http:\/\/[^/\s]+)\/v2\//m.exec(stdout)?.[1] ?? ''
      return url !== '' && (await fetch(`${url}/v2/`).then((r) => r.status < 500, () => false))
    }, {
      exited: () => (child.exitCode === null && child.signalCode === null ? undefined : `exited (${child.exitCode ?? child.signalCode}): ${stderr}`),
    })
  } catch (error) {
    child.kill('SIGKILL')
    throw error
  }
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
  return {url, hostPort: url.replace(/^http:\/\//, ''), pid: child.pid!, memory, stderr: () => stderr, stop: () => exited('SIGTERM'), kill: () => exited('SIGKILL')}
}

/** `reg deploy TREE --backend nginx|apache --dest OUT`, then that real server on a free port of 127.0.0.1, serving OUT. */
export async function deployToRealHost(tree: string, backend: 'nginx' | 'apache', out: string): Promise<RunningHost> {
  const port = await freePort()
  const flags = backend === 'nginx' ? ['--listen', `127.0.0.1:${port}`, '--server-name', '127.0.0.1'] : []
  const deployed = await runReg(['deploy', tree, '--backend', backend, '--dest', out, ...flags])
  if (deployed.code !== 0) throw new Error(`reg deploy --backend ${backend} failed (${deployed.code}): ${deployed.stderr}`)
  await makeServable(out)
  // startNginx runs `nginx -t` first: a configuration nginx refuses fails here.
  return backend === 'nginx' ? startNginx(out, port) : startApache(out, port)
}
