// Small shared pieces for the CLI-level tests: run the built CLI, make temp dirs, snapshot a tree.
import {execFile} from 'node:child_process'
import {cp, mkdtemp, readdir, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

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
