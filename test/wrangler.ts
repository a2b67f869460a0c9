// Cloudflare's own local runtime for the Cloudflare tests: `wrangler dev` (a Worker over a local R2
// bucket) and `wrangler pages dev` (a Pages output), started as real servers on 127.0.0.1 with
// their state in a temp dir, no network. Wrangler needs Node >= 22.12: REG_WRANGLER_NODE names that
// Node (.ci/run sets it), else this process's Node when it is new enough.
import {spawn} from 'node:child_process'
import {mkdir, writeFile} from 'node:fs/promises'
import path from 'node:path'
import nock from 'nock'
import {freePort, waitUntil} from './static-hosts.js'
import {REPO_ROOT, runReg} from './support.js'

export function wranglerNode(): string {
  if (process.env.REG_WRANGLER_NODE) return process.env.REG_WRANGLER_NODE
  const [major, minor] = process.versions.node.split('.').map(Number)
  if (major > 22 || (major === 22 && minor >= 12)) return process.execPath
  throw new Error(`wrangler needs Node >= 22.12 and this is Node ${process.versions.node}: set REG_WRANGLER_NODE to a newer node binary (.ci/run does)`)
}

/** What wrangler prints that is not about our files: it cannot reach Cloudflare for `Request.cf` (no network here). */
const EXPECTED_NOISE = [
  /Unable to fetch the `Request\.cf` object/,
  /getaddrinfo (ENOTFOUND|EAI_AGAIN) workers\.cloudflare\.com/,
]

export interface RunningWrangler {
  url: string
  hostPort: string
  /** everything it printed so far */
  output(): string
  /** warnings and errors it printed, but the expected ones: a test fails on any */
  problems(): string[]
  stop(): Promise<void>
}

/** `wrangler ARGS` in `cwd` (its own state there), on a free port of 127.0.0.1, once it says it is ready. */
export async function startWrangler(args: string[], cwd: string): Promise<RunningWrangler> {
  const port = await freePort()
  // Its own inspector port too: the default (9229) is shared by every wrangler started at once.
  const inspectorPort = await freePort()
  const home = path.join(cwd, '.home')
  await mkdir(home, {recursive: true})
  const child = spawn(wranglerNode(), [path.join(REPO_ROOT, 'node_modules/wrangler/bin/wrangler.js'), ...args, '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort)], {
    cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false', HOME: home, XDG_CONFIG_HOME: path.join(home, '.config'),
      WRANGLER_LOG_PATH: path.join(home, 'logs'), NO_COLOR: '1', FORCE_COLOR: '0',
    },
  })
  let printed = ''
  child.stdout.on('data', (chunk: Buffer) => (printed += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (printed += chunk.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      // its own process group: wrangler and the workerd it started
      try {
        process.kill(-child.pid, 'SIGTERM')
      } catch {}
      await exited
    }
  }
  try {
    await waitUntil(`wrangler ${args[0]} ${args[1] ?? ''} is ready on ${port}`, async () => printed.includes(`Ready on http://127.0.0.1:${port}`), {
      attempts: 600, intervalMs: 100,
      exited: () => (child.exitCode === null && child.signalCode === null ? undefined : `exited (${child.exitCode ?? child.signalCode}):\n${printed}`),
    })
  } catch (error) {
    await stop()
    throw error
  }
  return {
    url: `http://127.0.0.1:${port}`, hostPort: `127.0.0.1:${port}`,
    output: () => printed,
    problems: () => printed.split('\n').filter((line) => /warn|WARNING|ERROR|✘|▲/i.test(line) && !EXPECTED_NOISE.some((noise) => noise.test(line))),
    stop,
  }
}

/**
 * A test-only Worker that speaks the part of the S3 API reg's S3 engine uses (ListObjectsV2,
 * GetObject and HeadObject (the deploy state), PutObject, CopyObject with REPLACE, DeleteObject) over an R2 binding: the deploy code path writes
 * through it into wrangler's local R2 persistence exactly as R2 stores what its S3 API receives
 * (Content-Type and Cache-Control as HTTP metadata, x-amz-meta-* as custom metadata). Paths are
 * `/__s3/BUCKET/KEY` (path-style under the endpoint's path).
 */
export const S3_OVER_R2_WORKER = String.raw`
const xml = (text) => text.replace(/[<>&'"]/g, (c) => ({'<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;'})[c])
function metadataOf(headers) {
  const custom = {}
  for (const [name, value] of headers) if (name.startsWith('x-amz-meta-')) custom[name.slice('x-amz-meta-'.length)] = value
  const http = {}
  if (headers.get('content-type')) http.contentType = headers.get('content-type')
  if (headers.get('cache-control')) http.cacheControl = headers.get('cache-control')
  return {httpMetadata: http, customMetadata: custom}
}
export default {
  async fetch(request, env) {
    const url = new URL(request.url)
    const match = /^\/__s3\/([^/]+)\/?(.*)$/.exec(url.pathname)
    if (!match) return new Response('not an S3 path', {status: 404})
    const key = decodeURIComponent(match[2])
    if (request.method === 'GET' && key === '' && url.searchParams.get('list-type') === '2') {
      const listed = await env.BUCKET.list({prefix: url.searchParams.get('prefix') ?? '', cursor: url.searchParams.get('continuation-token') ?? undefined, limit: 1000})
      const contents = listed.objects.map((o) => '<Contents><Key>' + xml(o.key) + '</Key><Size>' + o.size + '</Size><ETag>&quot;' + o.etag + '&quot;</ETag></Contents>').join('')
      const next = listed.truncated ? '<NextContinuationToken>' + xml(listed.cursor) + '</NextContinuationToken>' : ''
      return new Response('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><IsTruncated>' + listed.truncated + '</IsTruncated><KeyCount>' + listed.objects.length + '</KeyCount>' + contents + next + '</ListBucketResult>', {headers: {'Content-Type': 'application/xml'}})
    }
    if ((request.method === 'GET' || request.method === 'HEAD') && key !== '') {
      const object = await env.BUCKET.get(key)
      if (!object) return new Response(request.method === 'HEAD' ? null : '<Error><Code>NoSuchKey</Code><Message>no ' + xml(key) + '</Message></Error>', {status: 404, headers: {'Content-Type': 'application/xml'}})
      const headers = {'Content-Length': String(object.size), ETag: '"' + object.etag + '"', 'Content-Type': object.httpMetadata?.contentType ?? 'application/octet-stream'}
      return new Response(request.method === 'HEAD' ? null : object.body, {headers})
    }
    if (request.method === 'PUT' && key !== '' && !url.searchParams.has('uploadId')) {
      const copySource = request.headers.get('x-amz-copy-source')
      let body
      if (copySource) {
        const from = decodeURI(copySource).replace(/^\//, '')
        const source = await env.BUCKET.get(from.slice(from.indexOf('/') + 1))
        if (!source) return new Response('<Error><Code>NoSuchKey</Code><Message>no ' + xml(from) + '</Message></Error>', {status: 404})
        body = await source.arrayBuffer()
      } else {
        body = await request.arrayBuffer()
      }
      const stored = await env.BUCKET.put(key, body, metadataOf(request.headers))
      if (copySource) return new Response('<CopyObjectResult><ETag>&quot;' + stored.etag + '&quot;</ETag><LastModified>' + stored.uploaded.toISOString() + '</LastModified></CopyObjectResult>', {headers: {'Content-Type': 'application/xml'}})
      return new Response(null, {headers: {ETag: '"' + stored.etag + '"'}})
    }
    if (request.method === 'DELETE' && key !== '') {
      await env.BUCKET.delete(key)
      return new Response(null, {status: 204})
    }
    return new Response('<Error><Code>NotImplemented</Code><Message>' + request.method + ' ' + xml(url.pathname + url.search) + '</Message></Error>', {status: 501})
  },
}
`

/** A Worker project in `dir`: the script as `main`, a wrangler.json of its bindings, secrets in .dev.vars. */
export async function writeWorkerProject(dir: string, project: {name: string; script: string; compatibilityDate: string; r2: Record<string, string>; vars?: Record<string, string>; secrets?: Record<string, string>}): Promise<void> {
  await mkdir(dir, {recursive: true})
  await writeFile(path.join(dir, 'worker.js'), project.script)
  await writeFile(path.join(dir, 'wrangler.json'), JSON.stringify({
    name: project.name, main: 'worker.js', compatibility_date: project.compatibilityDate,
    r2_buckets: Object.entries(project.r2).map(([binding, bucket]) => ({binding, bucket_name: bucket})),
    vars: project.vars ?? {},
  }, null, 2))
  if (project.secrets) await writeFile(path.join(dir, '.dev.vars'), Object.entries(project.secrets).map(([name, value]) => `${name}=${JSON.stringify(value)}`).join('\n') + '\n')
}

export const CF_ACCOUNT = '0123456789abcdef0123456789abcdef'
export const CF_TOKEN = 'cf-test-token'
/** the one bucket the S3-over-R2 Worker binds; deploys of several trees share it under their own --key-prefix */
export const R2_BUCKET = 'reg-test'
const CF_API = 'https://api.cloudflare.com'

export interface ApiCall {
  method: string
  path: string
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** The Cloudflare API as nock answers it: every call recorded, each answered with its documented envelope. */
export function fakeCloudflareApi(): ApiCall[] {
  const calls: ApiCall[] = []
  const record = (method: string) => function (this: nock.ReplyFnContext, uri: string, body: nock.Body) {
    calls.push({method, path: uri, headers: this.req.headers, body: typeof body === 'string' ? body : JSON.stringify(body)})
    if (uri.endsWith('/workers/subdomain')) return [200, {success: true, errors: [], messages: [], result: {subdomain: 'acme'}}]
    return [200, {success: true, errors: [], messages: [], result: {}}]
  }
  nock(CF_API).persist().put(/.*/).reply(record('PUT')).post(/.*/).reply(record('POST')).get(/.*/).reply(record('GET'))
  return calls
}

/** What one `reg deploy --backend cloudflare` sent: its API calls, its output, and the Worker it uploaded. */
export interface UploadedWorker {
  calls: ApiCall[]
  stdout: string
  /** the upload's metadata part: main module, compatibility date, bindings */
  metadata: {main_module: string; compatibility_date: string; bindings: Array<Record<string, string>>}
  script: string
}

/** The script upload's multipart body, parsed the way a server would. */
export async function uploadedForm(call: ApiCall): Promise<FormData> {
  return new Response(call.body, {headers: {'Content-Type': String(call.headers['content-type'])}}).formData()
}

/**
 * `reg deploy TREE --backend cloudflare ARGS...` for each deploy, its objects written through one
 * S3-over-R2 Worker (started once) into wrangler's local R2 persistence at `persist`, the
 * Cloudflare API nock'd. Each deploy's Worker name is reg-BUCKET unless its args say otherwise.
 */
export async function deployThroughR2(work: string, persist: string, deploys: Array<{tree: string; args: string[]}>): Promise<UploadedWorker[]> {
  const shimDir = path.join(work, 's3-over-r2')
  await writeWorkerProject(shimDir, {name: 's3-over-r2', script: S3_OVER_R2_WORKER, compatibilityDate: '2025-01-01', r2: {BUCKET: R2_BUCKET}})
  const shim = await startWrangler(['dev', '--persist-to', persist], shimDir)
  nock.disableNetConnect()
  nock.enableNetConnect('127.0.0.1')
  const uploaded: UploadedWorker[] = []
  try {
    for (const {tree, args} of deploys) {
      nock.cleanAll()
      const calls = fakeCloudflareApi()
      const result = await runReg(['deploy', tree, '--backend', 'cloudflare', '--account-id', CF_ACCOUNT, '--bucket', R2_BUCKET, '--r2-endpoint', `${shim.url}/__s3`, ...args], {
        env: {CLOUDFLARE_API_TOKEN: CF_TOKEN, AWS_ACCESS_KEY_ID: 'r2-key', AWS_SECRET_ACCESS_KEY: 'r2-secret'},
      })
      if (result.code !== 0) throw new Error(`reg deploy ${args.join(' ')} failed (${result.code}): ${result.stderr}`)
      const upload = calls.find((c) => c.method === 'PUT' && /\/workers\/scripts\/[^/]+$/.test(c.path))
      if (!upload) throw new Error(`no script upload among ${calls.map((c) => `${c.method} ${c.path}`).join(', ')}`)
      const form = await uploadedForm(upload)
      uploaded.push({
        calls, stdout: result.stdout,
        metadata: JSON.parse(await (form.get('metadata') as Blob).text()) as UploadedWorker['metadata'],
        script: await (form.get('worker.js') as Blob).text(),
      })
    }
    const problems = shim.problems()
    if (problems.length > 0) throw new Error(`the S3-over-R2 Worker printed problems:\n${shim.output()}`)
  } finally {
    await shim.stop()
    nock.cleanAll()
    nock.enableNetConnect()
  }
  return uploaded
}

/** The Worker exactly as uploaded, in `wrangler dev` over the R2 persistence the deploy wrote: its script, its bindings as wrangler's configuration, its secrets in .dev.vars. */
export async function startUploadedWorker(dir: string, persist: string, uploaded: UploadedWorker): Promise<RunningWrangler> {
  const {bindings} = uploaded.metadata
  const byType = (type: string, value: string) => Object.fromEntries(bindings.filter((b) => b.type === type).map((b) => [b.name, b[value]]))
  const secrets = byType('secret_text', 'text')
  await writeWorkerProject(dir, {
    name: 'reg-worker', script: uploaded.script, compatibilityDate: uploaded.metadata.compatibility_date,
    r2: byType('r2_bucket', 'bucket_name'), vars: byType('plain_text', 'text'), secrets: Object.keys(secrets).length > 0 ? secrets : undefined,
  })
  return startWrangler(['dev', '--persist-to', persist], dir)
}

export const PAGES_ACCOUNT = 'fedcba9876543210fedcba9876543210'
export const PAGES_TOKEN = 'cf-pages-token'
export const PAGES_JWT = 'pages-upload-jwt'
export const PAGES_PROJECT = 'reg-pages'
const PAGES_PROJECT_PATH = `/client/v4/accounts/${PAGES_ACCOUNT}/pages/projects/${PAGES_PROJECT}`

export interface PagesApiCall {
  method: string
  path: string
  authorization: string
  contentType: string
  body: string
}

/** The Pages API as nock answers it, keeping what a project keeps: contents by hash, the last deployment. */
export function fakePagesApi() {
  const calls: PagesApiCall[] = []
  const contents = new Map<string, Buffer>()
  const deployments: Array<{manifest: Record<string, string>; headers: string; redirects: string}> = []
  const ok = (result: unknown) => [200, {success: true, errors: [], messages: [], result}] as const
  nock(CF_API).persist()
    .get(/.*/).reply(function (uri) {
      calls.push({method: 'GET', path: uri, authorization: String(this.req.headers.authorization), contentType: '', body: ''})
      if (uri === PAGES_PROJECT_PATH) return ok({name: PAGES_PROJECT})
      if (uri === `${PAGES_PROJECT_PATH}/upload-token`) return ok({jwt: PAGES_JWT})
      return [404, {success: false, errors: [{code: 8000007, message: 'Project not found'}], result: null}]
    })
    .post(/.*/).reply(async function (uri, body) {
      const text = typeof body === 'string' ? body : JSON.stringify(body)
      calls.push({method: 'POST', path: uri, authorization: String(this.req.headers.authorization), contentType: String(this.req.headers['content-type']), body: text})
      if (uri === '/client/v4/pages/assets/check-missing') return ok((JSON.parse(text) as {hashes: string[]}).hashes.filter((h) => !contents.has(h)))
      if (uri === '/client/v4/pages/assets/upload') {
        for (const entry of JSON.parse(text) as Array<{key: string; value: string}>) contents.set(entry.key, Buffer.from(entry.value, 'base64'))
        return ok({successful_key_count: 1})
      }
      if (uri === '/client/v4/pages/assets/upsert-hashes') return ok(null)
      if (uri === `${PAGES_PROJECT_PATH}/deployments`) {
        const form = await new Response(text, {headers: {'Content-Type': String(this.req.headers['content-type'])}}).formData()
        deployments.push({
          manifest: JSON.parse(String(form.get('manifest'))) as Record<string, string>,
          headers: await (form.get('_headers') as Blob).text(),
          redirects: await (form.get('_redirects') as Blob).text(),
        })
        return ok({id: `deployment-${deployments.length}`, url: `https://${deployments.length}.${PAGES_PROJECT}.pages.dev`})
      }
      return [404, {success: false, errors: [{code: 7003, message: 'No route'}], result: null}]
    })
  return {calls, contents, deployments}
}


/** A Pages deployment exactly as the fake API received it, as the directory `wrangler pages dev` serves: its files by the manifest, _headers, _redirects. */
export async function writePagesDeployment(api: ReturnType<typeof fakePagesApi>, deployment: ReturnType<typeof fakePagesApi>['deployments'][number], out: string): Promise<void> {
  for (const [file, hash] of Object.entries(deployment.manifest)) {
    const content = api.contents.get(hash)
    if (!content) throw new Error(`${file} was not uploaded`)
    await mkdir(path.dirname(path.join(out, file)), {recursive: true})
    await writeFile(path.join(out, file), content)
  }
  await writeFile(path.join(out, '_headers'), deployment.headers)
  await writeFile(path.join(out, '_redirects'), deployment.redirects)
}
