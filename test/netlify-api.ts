// A fake Netlify API for the tests: the endpoints of a file-digest deploy (site, site files, create
// deploy, poll, upload), on 127.0.0.1, recording every request, with injectable failures. It keeps
// what a real site keeps: content by SHA-1 (so a second deploy needs nothing) and the published deploy.
import {createHash, randomUUID} from 'node:crypto'
import http from 'node:http'
import type {AddressInfo} from 'node:net'

export interface RecordedRequest {
  method: string
  path: string
  at: number
  status: number
  bodyBytes: number
}

export interface InjectedFault {
  /** e.g. "PUT /api/v1/deploys/" (prefix of "METHOD PATH") */
  prefix: string
  status: number
  headers?: Record<string, string>
  /** how many matching requests get the fault (default 1) */
  times?: number
}

export interface FakeDeploy {
  id: string
  files: Record<string, string>
  required: string[]
  state: string
  draft: boolean
  title?: string
  async: boolean
  polls: number
  errorMessage?: string
}

export interface FakeNetlify {
  apiUrl: string
  token: string
  siteId: string
  siteName: string
  requests: RecordedRequest[]
  /** content the "CDN" holds, by SHA-1 */
  contents: Map<string, Buffer>
  deploys: Map<string, FakeDeploy>
  published?: FakeDeploy
  faults: InjectedFault[]
  /** the next deploy ends in state "error" with this message */
  failNextDeploy?: string
  /** the site's metadata (GET/PUT /sites/:id/metadata): reg keeps its deploy state in it */
  metadata: Record<string, unknown>
  /** the files of the published deploy, path → bytes */
  publishedFiles(): Map<string, Buffer>
  stop(): Promise<void>
}

function json(response: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  response.writeHead(status, {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers})
  response.end(text)
}

export async function startFakeNetlify(options: {siteName?: string; customDomain?: string} = {}): Promise<FakeNetlify> {
  const siteId = randomUUID()
  const siteName = options.siteName ?? 'reg-test'
  const fake: FakeNetlify = {
    apiUrl: '', token: `token-${randomUUID()}`, siteId, siteName, requests: [], contents: new Map(), deploys: new Map(), faults: [], metadata: {},
    publishedFiles() {
      return new Map(Object.entries(fake.published?.files ?? {}).map(([file, sha1]) => [file, fake.contents.get(sha1) ?? Buffer.alloc(0)]))
    },
    stop: async () => {},
  }
  const site = () => ({id: siteId, name: siteName, url: `http://${siteName}.netlify.app`, ssl_url: `https://${siteName}.netlify.app`, custom_domain: options.customDomain ?? null})
  const deployView = (deploy: FakeDeploy) => ({
    id: deploy.id, site_id: siteId, state: deploy.state, required: deploy.required, draft: deploy.draft, title: deploy.title ?? null,
    error_message: deploy.errorMessage ?? null, ssl_url: site().ssl_url, deploy_ssl_url: `https://${deploy.id}--${siteName}.netlify.app`,
  })
  const advance = (deploy: FakeDeploy) => {
    deploy.polls++
    if (deploy.state === 'preparing') deploy.state = 'prepared'
    else if (deploy.state === 'prepared' && deploy.required.every((sha1) => fake.contents.has(sha1))) deploy.state = 'processing'
    else if (deploy.state === 'processing') {
      if (deploy.errorMessage) deploy.state = 'error'
      else {
        deploy.state = 'ready'
        if (!deploy.draft) fake.published = deploy
      }
    }
  }

  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const body = Buffer.concat(chunks)
      const url = new URL(request.url ?? '/', 'http://fake')
      const method = request.method ?? 'GET'
      const record: RecordedRequest = {method, path: url.pathname, at: Date.now(), status: 0, bodyBytes: body.length}
      fake.requests.push(record)
      response.on('finish', () => { record.status = response.statusCode })
      const fault = fake.faults.find((f) => `${method} ${url.pathname}`.startsWith(f.prefix) && (f.times ?? 1) > 0)
      if (fault) {
        fault.times = (fault.times ?? 1) - 1
        json(response, fault.status, {code: fault.status, message: 'injected'}, fault.headers)
        return
      }
      if (request.headers.authorization !== `Bearer ${fake.token}`) return json(response, 401, {code: 401, message: 'Access Denied: Invalid token'})
      const parts = url.pathname.replace(/^\/api\/v1\//, '').split('/')
      const isSite = (id: string | undefined) => id === siteId || id === `${siteName}.netlify.app`
      if (method === 'GET' && parts[0] === 'sites' && parts.length === 2) {
        return isSite(parts[1]) ? json(response, 200, site()) : json(response, 404, {code: 404, message: 'Not Found'})
      }
      if (method === 'GET' && parts[0] === 'sites' && parts[2] === 'files' && isSite(parts[1])) {
        const files = Object.entries(fake.published?.files ?? {}).map(([file, sha1]) => ({id: file, path: file, sha: sha1, size: fake.contents.get(sha1)?.length ?? 0, mime_type: 'application/octet-stream'}))
        return json(response, 200, files)
      }
      if (parts[0] === 'sites' && parts[2] === 'metadata' && parts.length === 3 && isSite(parts[1])) {
        if (method === 'PUT') fake.metadata = JSON.parse(body.toString('utf8')) as Record<string, unknown>
        return json(response, 200, fake.metadata)
      }
      if (method === 'POST' && parts[0] === 'sites' && parts[2] === 'deploys' && isSite(parts[1])) {
        const request = JSON.parse(body.toString('utf8')) as {files: Record<string, string>; async?: boolean; draft?: boolean}
        const required = [...new Set(Object.values(request.files))].filter((sha1) => !fake.contents.has(sha1))
        const deploy: FakeDeploy = {
          id: randomUUID().replace(/-/g, '').slice(0, 24), files: request.files, required, draft: Boolean(request.draft), async: Boolean(request.async),
          title: url.searchParams.get('title') ?? undefined, state: request.async ? 'preparing' : 'prepared', polls: 0, errorMessage: fake.failNextDeploy,
        }
        fake.failNextDeploy = undefined
        fake.deploys.set(deploy.id, deploy)
        // an async deploy answers before the diff is known
        return json(response, 200, {...deployView(deploy), required: deploy.async ? [] : required})
      }
      if (method === 'GET' && parts[0] === 'sites' && parts[2] === 'deploys' && isSite(parts[1])) {
        const deploy = fake.deploys.get(parts[3] ?? '')
        if (!deploy) return json(response, 404, {code: 404, message: 'Not Found'})
        advance(deploy)
        return json(response, 200, deployView(deploy))
      }
      if (method === 'PUT' && parts[0] === 'deploys' && parts[2] === 'files') {
        const deploy = fake.deploys.get(parts[1] ?? '')
        if (!deploy) return json(response, 404, {code: 404, message: 'Not Found'})
        const file = '/' + decodeURI(parts.slice(3).join('/'))
        const sha1 = createHash('sha1').update(body).digest('hex')
        if (deploy.files[file] !== sha1) return json(response, 422, {code: 422, message: `SHA1 mismatch for ${file}`})
        if (!deploy.required.includes(sha1)) return json(response, 422, {code: 422, message: `${file} was not required`})
        fake.contents.set(sha1, body)
        return json(response, 200, {id: file, path: file, sha: sha1, size: body.length})
      }
      json(response, 404, {code: 404, message: `fake Netlify: no route ${method} ${url.pathname}`})
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  fake.apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`
  fake.stop = () => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  })
  return fake
}
