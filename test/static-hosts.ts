// Real nginx and apache2 for the backend tests: started on free ports on 127.0.0.1, stopped by the test.
import {execFileSync, spawn} from 'node:child_process'
import {readFileSync, rmSync} from 'node:fs'
import {access, chmod, mkdir, readFile, rm, writeFile} from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {processRunning} from '../src/core/process.js'

/**
 * A port of 127.0.0.1 that no other test of this run is given, for a server that must be told its port.
 * Test files run side by side, so a port found free by binding 0 and closing could be handed out twice,
 * and a readiness probe then answers from another test's server. Ports are drawn below the kernel's
 * ephemeral range (where `listen(0)` and outgoing connections never land) and each is reserved, for the
 * life of the process that drew it, by a file created exclusively; a reservation whose process is gone
 * is taken over.
 */
export async function freePort(draw?: () => number): Promise<number> {
  const [low, high] = reservablePorts()
  await mkdir(PORT_RESERVATIONS, {recursive: true})
  for (let attempt = 0; attempt < 200; attempt++) {
    // `draw`: the candidates, for the test of this function
    const port = draw ? draw() : low + Math.floor(Math.random() * (high - low))
    if (!(await reservePort(port))) continue
    if (await bindable(port)) return port
  }
  throw new Error(`no free port of 127.0.0.1 in ${low}-${high - 1} after 200 tries (reservations in ${PORT_RESERVATIONS})`)
}

export const PORT_RESERVATIONS = path.join(os.tmpdir(), 'reg-test-ports')

/** [low, high): the 12,000 ports below the kernel's ephemeral range, or below 32768 when it cannot be read. */
function reservablePorts(): [number, number] {
  let ephemeralLow = 32768
  try {
    ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || ephemeralLow
  } catch {
    // not Linux: the IANA dynamic range starts at 49152, above 32768, so the default still holds
  }
  return [Math.max(1024, ephemeralLow - 12_000), ephemeralLow]
}

const reservedHere: string[] = []

async function reservePort(port: number): Promise<boolean> {
  const file = path.join(PORT_RESERVATIONS, String(port))
  for (let round = 0; round < 2; round++) {
    try {
      await writeFile(file, String(process.pid), {flag: 'wx'})
      reservedHere.push(file)
      if (reservedHere.length === 1) process.once('exit', () => reservedHere.forEach((f) => rmSync(f, {force: true})))
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    const owner = Number(await readFile(file, 'utf8').catch(() => ''))
    if (owner === process.pid || processRunning(owner)) return false
    await rm(file, {force: true})
  }
  return false
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** Fail (never skip) when a tool the test needs is missing: CI must install it. */
export function requireTool(command: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${command}`], {encoding: 'utf8'}).trim()
  } catch {
    throw new Error(`${command} is not installed: .ci/run installs it (apt-get install)`)
  }
}

/**
 * Ask `ready` every `intervalMs`, at most `attempts` times, and throw a clear error when it never
 * answers yes (or `exited` says the process behind it is gone): a wait never gives up silently.
 */
export async function waitUntil(what: string, ready: () => Promise<boolean>, options: {attempts?: number; intervalMs?: number; exited?: () => string | undefined} = {}): Promise<void> {
  const {attempts = 200, intervalMs = 50} = options
  // A check that throws counts as "not yet": a server that is starting or reloading may refuse or drop
  // a connection (nginx closes its idle keep-alive connections on a reload). The last error is reported.
  let lastError: unknown
  for (let i = 0; i < attempts; i++) {
    try {
      if (await ready()) return
    } catch (error) {
      lastError = error
    }
    const exited = options.exited?.()
    if (exited !== undefined) throw new Error(`${what}: ${exited}`)
    await sleep(intervalMs)
  }
  const cause = lastError === undefined ? '' : `; the last check failed: ${lastError instanceof Error ? `${lastError.message}${lastError.cause instanceof Error ? ` (${lastError.cause.message})` : ''}` : String(lastError)}`
  throw new Error(`${what}: still not so after ${attempts} checks ${intervalMs} ms apart${cause}`)
}

async function waitForHttp(url: string, what: string, logFile?: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(url)
      return
    } catch {
      await sleep(50)
    }
  }
  const log = logFile ? await readFile(logFile, 'utf8').catch(() => '') : ''
  throw new Error(`${what} did not answer on ${url}\n${log}`)
}

/** The server workers run as an unprivileged user: every directory up to the served files must be traversable. */
export async function makeServable(dir: string): Promise<void> {
  let current = dir
  while (current !== path.dirname(current)) {
    await chmod(current, 0o755).catch(() => undefined)
    current = path.dirname(current)
    if (current === '/tmp' || current === '/') break
  }
}

export interface RunningHost {
  url: string
  hostPort: string
  stop(): Promise<void>
}

/** nginx with the configuration `reg deploy --backend nginx` generated in `out`. */
export async function startNginx(out: string, port: number): Promise<RunningHost> {
  requireTool('nginx')
  const nginx = requireTool('nginx') || 'nginx'
  // The generated nginx.conf names its own pid file, beside it.
  const pid = path.join(out, 'nginx.pid')
  const log = path.join(out, '..', `nginx-${port}.log`)
  execFileSync(nginx, ['-p', out, '-c', 'nginx.conf', '-e', log, '-t'], {stdio: 'pipe'})
  execFileSync(nginx, ['-p', out, '-c', 'nginx.conf', '-e', log], {stdio: 'pipe'})
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/v2/`, 'nginx', log)
  return {
    url, hostPort: `127.0.0.1:${port}`,
    stop: async () => {
      const pidText = await readFile(pid, 'utf8').catch(() => '')
      if (pidText) process.kill(Number(pidText), 'SIGQUIT')
      await waitUntil(`nginx on port ${port} removed its pid file after SIGQUIT`, () => access(pid).then(() => false, () => true))
    },
  }
}

/**
 * apache2 with its own -f configuration and ServerRoot (not the system service), serving `out` as
 * DocumentRoot with only `AllowOverride FileInfo`, and just the modules the README names.
 * `site`: the configuration that serves `out` instead (a virtual host, as the README gives it).
 */
export async function startApache(out: string, port: number, site?: string): Promise<RunningHost> {
  const apache = requireTool('apache2')
  const root = path.join(out, '..', `apache-${port}`)
  await mkdir(root, {recursive: true})
  const modules = '/usr/lib/apache2/modules'
  const config = `ServerRoot "${root}"
Listen 127.0.0.1:${port}
PidFile ${root}/httpd.pid
ServerName 127.0.0.1
LoadModule mpm_event_module ${modules}/mod_mpm_event.so
LoadModule authz_core_module ${modules}/mod_authz_core.so
LoadModule mime_module ${modules}/mod_mime.so
LoadModule rewrite_module ${modules}/mod_rewrite.so
LoadModule headers_module ${modules}/mod_headers.so
TypesConfig /etc/mime.types
User www-data
Group www-data
ErrorLog ${root}/error.log
<Directory />
    AllowOverride None
    Require all denied
</Directory>
${site ?? `DocumentRoot ${out}
<Directory ${out}>
    AllowOverride FileInfo
    Require all granted
</Directory>`}
`
  await writeFile(path.join(root, 'httpd.conf'), config)
  const env = {...process.env, APACHE_RUN_DIR: root, APACHE_LOCK_DIR: root, APACHE_LOG_DIR: root}
  execFileSync(apache, ['-f', path.join(root, 'httpd.conf'), '-t'], {stdio: 'pipe', env})
  const child = spawn(apache, ['-f', path.join(root, 'httpd.conf'), '-DFOREGROUND'], {stdio: 'ignore', env})
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/v2/`, 'apache2', path.join(root, 'error.log'))
  return {
    url, hostPort: `127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGTERM')
      await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(undefined)))
    },
  }
}
