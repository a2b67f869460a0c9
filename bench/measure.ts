// Timing a whole command as the benchmarks do: wall time, output, and its peak resident set.
import {spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {readFile, rm} from 'node:fs/promises'
import path from 'node:path'
import {performance} from 'node:perf_hooks'

const GNU_TIME = '/usr/bin/time'

export interface Run {
  seconds: number
  stdout: string
  stderr: string
  /** peak resident set of the process (the largest of it and its descendants), bytes */
  peakRssBytes?: number
  rssMethod?: string
}

/**
 * Run a command to completion, timing it. With `rss`, its peak resident set comes from GNU time
 * (`%M`: the kernel's ru_maxrss, which covers every descendant it waited for) or, without
 * /usr/bin/time, from sampling VmHWM in /proc/PID/status every 10 ms (a high-water mark, so a
 * sample taken any time before exit sees every earlier peak).
 */
export async function run(command: string, args: string[], {rss = false, work = '', env = process.env}: {rss?: boolean; work?: string; env?: NodeJS.ProcessEnv} = {}): Promise<Run> {
  const useTime = rss && existsSync(GNU_TIME)
  const timeFile = path.join(work, `.time-${process.pid}-${Math.random().toString(36).slice(2)}`)
  const [file, argv] = useTime ? [GNU_TIME, ['-f', '%M', '-o', timeFile, command, ...args]] : [command, args]
  const start = performance.now()
  const child = spawn(file, argv, {stdio: ['ignore', 'pipe', 'pipe'], env})
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  let hwmKb = 0
  const sample = async () => {
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '')
    const match = /VmHWM:\s+(\d+)/.exec(status)
    if (match) hwmKb = Math.max(hwmKb, Number(match[1]))
  }
  const timer = rss && !useTime ? setInterval(() => void sample(), 10) : undefined
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (c, signal) => resolve(c ?? (signal ? 128 : 1)))
  })
  const seconds = (performance.now() - start) / 1000
  if (timer) clearInterval(timer)
  if (code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${code}\n${stderr.trim()}${stdout.trim() ? `\n${stdout.trim()}` : ''}`)
  }
  const result: Run = {seconds, stdout, stderr}
  if (useTime) {
    const lines = (await readFile(timeFile, 'utf8')).trim().split('\n')
    await rm(timeFile, {force: true})
    result.peakRssBytes = Number(lines.at(-1)) * 1024
    result.rssMethod = 'GNU time %M (ru_maxrss)'
  } else if (rss) {
    result.peakRssBytes = hwmKb * 1024
    result.rssMethod = '/proc/PID/status VmHWM, sampled every 10 ms'
  }
  return result
}

