// Two S3 implementations for the S3 backend tests (s3rver, and fauxqs's S3), each behind a proxy
// that makes it a virtual-host endpoint as AWS's is; and a counting proxy in front of the API.
import {spawn} from 'node:child_process'
import {mkdir, writeFile} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {freePort} from './static-hosts.js'
import {REPO_ROOT} from './support.js'

/** The bucket: an ordinary name; clients reach it at the root of a virtual host, `reg-test.s3.amazonaws.com`. */
export const S3_BUCKET = 'reg-test'
export const S3_CREDENTIALS = {AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1'}

export interface RunningS3 {
  /** the S3 API, path-style: reg deploys with --endpoint this --force-path-style */
  endpoint: string
  /** what clients pull from: the virtual-host proxy, `127.0.0.1:PORT`, serving the bucket at its root */
  hostPort: string
  url: string
  /** which implementation */
  name: string
  stop(): Promise<void>
}

/**
 * A proxy that sends every request on to `target` with `Host: <virtualHost>`, as DNS and a real
 * virtual-host endpoint would (`BUCKET.s3.amazonaws.com`, `BUCKET.s3-website-REGION.amazonaws.com`):
 * the bucket is found the way AWS finds it, and clients see it at the host root.
 */
export async function startVirtualHostProxy(target: string, virtualHost: string): Promise<{hostPort: string; stop(): Promise<void>}> {
  const server = http.createServer((req, res) => {
    const upstream = http.request(target + (req.url ?? ''), {method: req.method, headers: {...req.headers, host: virtualHost}}, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers)
      up.pipe(res)
    })
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  })
  const port = await freePort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()))
  return {
    hostPort: `127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}

/**
 * s3rver on 127.0.0.1:port with the bucket reg-test. `website`: the bucket has a website
 * configuration (index document `index.json`) and clients reach it through its website host name,
 * so plain GETs get website behaviour: index documents and WebsiteRedirectLocation redirects.
 */
export async function startS3rver(dir: string, port: number, options: {website?: boolean} = {}): Promise<RunningS3> {
  await mkdir(dir, {recursive: true})
  const bucketConfigs: string[] = []
  if (options.website) {
    const website = path.join(dir, '..', `website-${port}.xml`)
    await writeFile(website, '<WebsiteConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IndexDocument><Suffix>index.json</Suffix></IndexDocument></WebsiteConfiguration>')
    bucketConfigs.push(website)
  }
  // Its paged listings encrypt continuation tokens with DES: OpenSSL 3 needs the legacy provider.
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'node_modules/s3rver/bin/s3rver.js'), '-d', dir, '-p', String(port), '-a', '127.0.0.1', '--configure-bucket', S3_BUCKET, ...bucketConfigs, '--silent'], {
    stdio: 'ignore', env: {...process.env, NODE_OPTIONS: '--openssl-legacy-provider'},
  })
  const endpoint = `http://127.0.0.1:${port}`
  let up = false
  for (let i = 0; i < 200 && !up; i++) {
    up = await fetch(`${endpoint}/${S3_BUCKET}?list-type=2`).then(() => true, () => false)
    if (!up) await sleep(50)
  }
  if (!up) {
    child.kill('SIGTERM')
    throw new Error(`s3rver did not answer on ${endpoint}`)
  }
  const virtualHost = await startVirtualHostProxy(endpoint, `${S3_BUCKET}.${options.website ? 's3-website-us-east-1' : 's3'}.amazonaws.com`)
  return {
    endpoint, hostPort: virtualHost.hostPort, url: `http://${virtualHost.hostPort}`, name: 's3rver',
    stop: async () => {
      await virtualHost.stop()
      child.kill('SIGTERM')
      await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(undefined)))
    },
  }
}

/**
 * A Node that runs fauxqs (it needs node:sqlite, Node >= 22.5): REG_WRANGLER_NODE (.ci/run sets it
 * to its Node 24), else this one when it is new enough.
 */
function nodeForFauxqs(): string {
  if (process.env.REG_WRANGLER_NODE) return process.env.REG_WRANGLER_NODE
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
  if (major > 22 || (major === 22 && minor >= 5)) return process.execPath
  throw new Error(`fauxqs needs Node >= 22.5 and this is ${process.version}: set REG_WRANGLER_NODE to a newer node binary (.ci/run does)`)
}

/**
 * fauxqs's S3 (an implementation of its own, not s3rver's code), in memory, on 127.0.0.1:port with
 * the bucket reg-test. Its CLI listens on every interface: this starts its app on 127.0.0.1 only.
 */
export async function startFauxqs(port: number): Promise<RunningS3> {
  const app = path.join(REPO_ROOT, 'node_modules/fauxqs/dist/app.js')
  const script = `const {buildApp} = await import(${JSON.stringify(app)}); const app = buildApp({logger: false}); await app.listen({port: ${port}, host: '127.0.0.1'});`
  const child = spawn(nodeForFauxqs(), ['--input-type=module', '--no-warnings', '-e', script], {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8')
  })
  const endpoint = `http://127.0.0.1:${port}`
  let up = false
  for (let i = 0; i < 200 && !up && child.exitCode === null; i++) {
    up = await fetch(`${endpoint}/${S3_BUCKET}`, {method: 'PUT'}).then((r) => r.ok, () => false)
    if (!up) await sleep(50)
  }
  if (!up) {
    child.kill('SIGTERM')
    throw new Error(`fauxqs did not answer on ${endpoint} (or refused to create the bucket): ${stderr}`)
  }
  const virtualHost = await startVirtualHostProxy(endpoint, `${S3_BUCKET}.s3.amazonaws.com`)
  return {
    endpoint, hostPort: virtualHost.hostPort, url: `http://${virtualHost.hostPort}`, name: 'fauxqs',
    stop: async () => {
      await virtualHost.stop()
      child.kill('SIGTERM')
      await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(undefined)))
    },
  }
}

export interface CountingProxy {
  endpoint: string
  /** `status`: what the target answered (unset while it has not) */
  requests: Array<{method: string; url: string; bodyBytes: number; copy: boolean; status?: number}>
  reset(): void
  /** answer this fraction of requests with a 503 or a reset connection instead of forwarding them; delay each request */
  faults: {rate: number; delayMs: number}
  /** hold every request (of `method`, if given) that arrives from now on until the returned function is called; `held` counts them */
  hold(method?: string): () => void
  held: number
  stop(): Promise<void>
}

/** A proxy that counts requests and request-body bytes, and injects faults on demand. */
export async function startCountingProxy(target: string, port: number): Promise<CountingProxy> {
  const requests: CountingProxy['requests'] = []
  const faults = {rate: 0, delayMs: 0}
  let n = 0
  let gate: Promise<void> | undefined
  let gatedMethod: string | undefined
  const state = {held: 0}
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      if (gate && (gatedMethod === undefined || req.method === gatedMethod)) {
        state.held++
        await gate
      }
      if (faults.delayMs) await sleep(faults.delayMs)
      const body = Buffer.concat(chunks)
      const record: CountingProxy['requests'][number] = {method: req.method ?? '', url: req.url ?? '', bodyBytes: body.length, copy: Boolean(req.headers['x-amz-copy-source'])}
      requests.push(record)
      // Deterministic faults: every k-th request, alternating a 503 and a reset connection.
      if (faults.rate > 0 && ++n % Math.round(1 / faults.rate) === 0) {
        if (n % 2 === 0) res.writeHead(503, {'Content-Type': 'application/xml'}).end('<Error><Code>SlowDown</Code><Message>injected</Message></Error>')
        else req.socket.destroy()
        return
      }
      const upstream = http.request(target + (req.url ?? ''), {method: req.method, headers: req.headers}, (up) => {
        record.status = up.statusCode
        res.writeHead(up.statusCode ?? 502, up.headers)
        up.pipe(res)
      })
      upstream.on('error', () => res.destroy())
      upstream.end(body)
    })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()))
  return {
    endpoint: `http://127.0.0.1:${port}`, requests, faults,
    get held() {
      return state.held
    },
    hold: (method?: string) => {
      gatedMethod = method
      let release = () => {}
      gate = new Promise<void>((resolve) => {
        release = () => {
          gate = undefined
          resolve()
        }
      })
      return release
    },
    reset: () => {
      requests.length = 0
    },
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}
