// The reference registry (Debian's docker-registry, distribution 2.8) for the registry-source tests:
// anonymous, htpasswd Basic auth, or Bearer token auth through a small token server of our own
// that works the way Docker Hub's does (401 challenge with realm/service/scope, then a JWT).
import {execFileSync, spawn} from 'node:child_process'
import {createSign, randomBytes, X509Certificate} from 'node:crypto'
import {readFile, writeFile, mkdir} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import {freePort, requireTool, waitUntil} from './static-hosts.js'

export interface RunningRegistry {
  hostPort: string
  stop(): Promise<void>
}

export interface TokenServer {
  realm: string
  /** scopes asked for, in order */
  requests: string[]
  stop(): Promise<void>
}

const base64url = (b: Buffer | string) => Buffer.from(b).toString('base64url')

/** A token server: Basic credentials in, a JWT signed with `key` (certificate in x5c) out. */
export async function startTokenServer(dir: string, port: number, users: Record<string, string>): Promise<TokenServer & {certificate: string}> {
  await mkdir(dir, {recursive: true})
  const keyFile = path.join(dir, 'token.key')
  const certFile = path.join(dir, 'token.crt')
  execFileSync(requireTool('openssl'), ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=reg-test-token'], {stdio: 'ignore'})
  const key = await readFile(keyFile, 'utf8')
  const der = new X509Certificate(await readFile(certFile)).raw
  const requests: string[] = []
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token')
    const scope = url.searchParams.get('scope') ?? ''
    requests.push(scope)
    const auth = String(req.headers.authorization ?? '')
    const [user, password] = auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString().split(':') : []
    if (!user || users[user] !== password) {
      res.writeHead(401, {'Content-Type': 'application/json'}).end(JSON.stringify({details: 'incorrect username or password'}))
      return
    }
    const access = scope.split(' ').filter(Boolean).map((s) => {
      const [type, name, actions] = s.split(':')
      return {type, name, actions: actions.split(',')}
    })
    const now = Math.floor(Date.now() / 1000)
    const header = base64url(JSON.stringify({alg: 'RS256', typ: 'JWT', x5c: [der.toString('base64')]}))
    const claims = base64url(JSON.stringify({iss: 'reg-test-issuer', sub: user, aud: url.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access}))
    const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key)
    res.writeHead(200, {'Content-Type': 'application/json'}).end(JSON.stringify({token: `${header}.${claims}.${base64url(signature)}`, expires_in: 300}))
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()))
  return {
    realm: `http://127.0.0.1:${port}/token`, requests, certificate: certFile,
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}

export async function startDistribution(dir: string, port: number, auth: {htpasswd?: string; token?: {realm: string; certificate: string}; deleteEnabled?: boolean} = {}): Promise<RunningRegistry> {
  const registry = requireTool('docker-registry')
  await mkdir(dir, {recursive: true})
  const lines = ['version: 0.1', 'log:', '  level: error', 'storage:', '  filesystem:', `    rootdirectory: ${path.join(dir, 'data')}`, ...(auth.deleteEnabled ? ['  delete:', '    enabled: true'] : []), 'http:', `  addr: 127.0.0.1:${port}`]
  if (auth.htpasswd) lines.push('auth:', '  htpasswd:', '    realm: reg-test', `    path: ${auth.htpasswd}`)
  if (auth.token) lines.push('auth:', '  token:', `    realm: ${auth.token.realm}`, '    service: reg-test', '    issuer: reg-test-issuer', `    rootcertbundle: ${auth.token.certificate}`)
  const config = path.join(dir, 'config.yml')
  await writeFile(config, lines.join('\n') + '\n')
  const child = spawn(registry, ['serve', config], {stdio: 'ignore'})
  try {
    await waitUntil(`docker-registry answers on 127.0.0.1:${port}`, () => fetch(`http://127.0.0.1:${port}/v2/`).then(() => true, () => false), {
      exited: () => (child.exitCode === null && child.signalCode === null ? undefined : `exited (${child.exitCode ?? child.signalCode})`),
    })
  } catch (error) {
    child.kill('SIGKILL')
    throw error
  }
  return {
    hostPort: `127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGTERM')
      await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(undefined)))
    },
  }
}

/** The distribution registry behind the token server, the way Docker Hub works; `stop` stops both. */
export async function startTokenDistribution(dir: string, users: Record<string, string>): Promise<{registry: RunningRegistry; token: TokenServer}> {
  const token = await startTokenServer(path.join(dir, 'token'), await freePort(), users)
  const registry = await startDistribution(path.join(dir, 'registry'), await freePort(), {token})
  return {token, registry: {...registry, stop: async () => {
    await registry.stop()
    await token.stop()
  }}}
}

/** An htpasswd file with bcrypt entries, as `htpasswd -B` writes them. */
export async function writeHtpasswd(file: string, user: string, password: string): Promise<string> {
  execFileSync(requireTool('htpasswd'), ['-Bbc', file, user, password], {stdio: 'ignore'})
  return file
}
