import {createHash} from 'node:crypto'
import {createReadStream, type ReadStream} from 'node:fs'
import {setTimeout as sleep} from 'node:timers/promises'
import {NetlifyAPI} from '@netlify/api'
import type {RequestInit} from 'node-fetch'
import {mapLimit} from '../../src/core/concurrency.js'
import {corsPreflightHeaders} from '../../src/core/cors.js'
import {RegError} from '../../src/core/errors.js'
import {withRetries} from '../../src/core/retry.js'
import type {Backend, BackendCapabilities, HostDeployReport, RemoteObject, RemoteState} from '../../src/publish/backend.js'
import {offloadRedirects} from '../../src/publish/offload.js'
import type {HostConfigFile} from '../../src/publish/local-host.js'
import {parseUnreferenced} from '../../src/publish/local-files.js'
import {checkHostLimits, headerFileConfig, headerFileStorageKey, type HostLimits} from '../../src/publish/header-file-host.js'
import type {RegistryObject} from '../../src/tree/model.js'
import type {RegistryTree} from '../../src/tree/registry-tree.js'

export interface NetlifySettings {
  /** site ID, or its name (`NAME` → `NAME.netlify.app`) or domain */
  site: string
  token: string
  /** API base, e.g. https://api.netlify.com/api/v1 */
  apiUrl: string
  draft: boolean
  message?: string
  maxFileSize: number
  concurrency: number
  retries: number
  /** the origin CORS lets read (`*`, one origin), or undefined: no CORS headers */
  cors?: string
}

/**
 * `_headers` with CORS: one rule for every path (no other rule sets these headers, so hosts that
 * merge and hosts that override agree). The preflight's headers ride along on every answer, so that
 * the host's answer to OPTIONS has them wherever it applies `_headers` to it.
 */
export function netlifyCorsHeaders(headers: string, origin: string | undefined): string {
  if (origin === undefined) return headers
  const lines = Object.entries(corsPreflightHeaders(origin)).map(([name, value]) => `  ${name}: ${value}`)
  return `${headers}\n/*\n${lines.join('\n')}\n`
}

/** The key of the site's metadata that holds reg's deploy state. */
export const NETLIFY_STATE_KEY = 'reg-deploy-state'

/** Netlify refuses deploys with more files in one directory (docs: "Files per directory limit"). */
export const NETLIFY_MAX_FILES_PER_DIRECTORY = 54_000
/** The CLI deploys synchronously up to this many files, asynchronously (polling the diff) beyond. */
const SYNC_FILE_LIMIT = 100
const DEPLOY_TIMEOUT_MS = 20 * 60_000

interface StagedFile {
  sha1: string
  size: number
  /** where the bytes are: a file of the tree, generated content, or nowhere here (a copy of a live file Netlify has) */
  source?: {file: string} | {content: Buffer}
}

interface NetlifyDeploy {
  id: string
  state: string
  required?: string[]
  error_message?: string
  ssl_url?: string
  url?: string
  deploy_ssl_url?: string
  deploy_url?: string
}

interface NetlifySite {
  id: string
  name?: string
  ssl_url?: string
  url?: string
  custom_domain?: string | null
}

interface HttpError {
  status?: number
  json?: {message?: string; code?: number}
  /** the response body of an HTTP error; on a network failure the client puts its request options here */
  data?: unknown
  code?: string
  message: string
}

function httpStatus(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null && typeof (error as HttpError).status === 'number' ? (error as HttpError).status : undefined
}

function sha1Of(source: NonNullable<StagedFile['source']>): Promise<string> {
  const hash = createHash('sha1')
  if ('content' in source) return Promise.resolve(hash.update(source.content).digest('hex'))
  return new Promise((resolve, reject) => {
    createReadStream(source.file).on('data', (chunk) => hash.update(chunk)).on('error', reject).on('end', () => resolve(hash.digest('hex')))
  })
}

function pullHint(tree: RegistryTree, url: string): string[] {
  const [name, repository] = Object.entries(tree.index.repositories).sort(([a], [b]) => a.localeCompare(b))[0] ?? []
  const tag = repository ? Object.keys(repository.tags).sort()[0] : undefined
  return name && tag && url ? [`pull: docker pull ${new URL(url).host}/${name}:${tag}`] : []
}

/**
 * Netlify, through its API's file-digest deploy: every step of the publish plan is staged (path →
 * SHA-1), and `finish` creates one deploy listing every file, uploads only the contents Netlify
 * asks for (each SHA-1 once, whatever number of paths share it) and waits until the deploy is live.
 * Atomic: nothing is visible before the whole registry is, so the publish order holds trivially.
 */
/**
 * Offloaded blobs (`reg deploy --offload`): a 302 rule for each of their URLs, first in `_redirects`
 * (the first rule that matches wins). Paths and URLs are of a checked alphabet: no spaces.
 */
export function withOffloadRedirects(files: HostConfigFile[], routed: readonly RegistryObject[]): HostConfigFile[] {
  const offloads = offloadRedirects(routed)
  if (offloads.size === 0) return files
  const rules = routed.filter((o) => o.class === 'blob' && offloads.has(o.digest)).map((o) => `/${o.path}  ${offloads.get(o.digest)}  302`).sort()
  return files.map((file) => {
    if (file.path !== '_redirects') return file
    const [first, ...rest] = file.content.split('\n')
    return {...file, content: [first, '# blobs served from elsewhere (reg deploy --offload)', ...rules, ...rest].join('\n')}
  })
}

export class NetlifyBackend implements Backend {
  readonly name = 'netlify'
  // Netlify matches paths case-insensitively: tags equal but for case are refused by the plan.
  readonly capabilities: BackendCapabilities = {serverSideCopy: true, caseSensitiveTags: false, stagesDeploy: true, offloadRedirects: {how: 'a 302 rule in _redirects', by: 'configuration'}}
  readonly location: string
  private readonly api: NetlifyAPI
  private site?: NetlifySite
  /** the published deploy's files: kept in the new deploy unless pruned */
  private readonly live = new Map<string, {sha1: string; size: number}>()
  private readonly staged = new Map<string, StagedFile>()
  private readonly removed = new Set<string>()
  /** the site's metadata as read (the deploy state is one key of it) */
  private siteMetadata: Record<string, unknown> = {}
  private savedUnreferenced = new Map<string, number>()
  /** what this deploy leaves unreferenced, written once it is live */
  private unreferenced?: Map<string, number>
  /** the deploy's Ctrl-C, for the API calls of describeRemote and finish */
  private signal?: AbortSignal

  constructor(private readonly settings: NetlifySettings) {
    const base = new URL(settings.apiUrl)
    this.api = new NetlifyAPI(settings.token, {scheme: base.protocol.replace(':', ''), host: base.host, pathPrefix: base.pathname.replace(/\/$/, ''), userAgent: 'reg (static registry)'})
    this.location = `site ${settings.site}${settings.draft ? ' (draft)' : ''}`
  }

  storageKeyOf(object: RegistryObject): string {
    return headerFileStorageKey(object)
  }

  private siteId(): string {
    const site = this.settings.site
    // Netlify's API takes a site ID or a domain; a bare name is a netlify.app subdomain.
    return /^[0-9a-f-]{36}$/i.test(site) || site.includes('.') ? site : `${site}.netlify.app`
  }

  /** how often a failed API call was tried, for messages */
  private tried(): string {
    const tries = this.settings.retries + 1
    return `tried ${tries} time${tries === 1 ? '' : 's'}`
  }

  private explain(error: unknown, doing: string): RegError {
    const status = httpStatus(error)
    const failure = error as HttpError
    const detail = failure.json?.message ?? (typeof failure.data === 'string' ? failure.data : undefined) ?? failure.message
    if (status === 401) return new RegError(`Netlify refused the token when asked to ${doing} (401)`, 'set NETLIFY_AUTH_TOKEN (or --auth) to a personal access token: Netlify → User settings → Applications')
    if (status === 403) return new RegError(`the token may not ${doing} (403): ${detail}`, 'use a token of a member of the site\'s team')
    if (status === 404 && doing.startsWith('read the site')) return new RegError(`no Netlify site "${this.settings.site}" (404)`, 'give --site the site ID (Site configuration → Site details) or its name; create the site first in the Netlify UI or with `netlify sites:create`')
    if (status === undefined) {
      const reason = failure.code ?? detail
      return new RegError(`cannot reach the Netlify API at ${this.settings.apiUrl} to ${doing} (${reason}; ${this.tried()})`, 'check the network and try again; --api-url (or NETLIFY_API_URL) says where the API is, --retries how often to try')
    }
    return new RegError(`Netlify answered ${status} when asked to ${doing}: ${detail}`, status >= 500 || status === 429 ? `${this.tried()}; try again later (--retries sets how often)` : undefined)
  }

  /** fetch options for one API call: Ctrl-C aborts the request (the client hands them to node-fetch) */
  private static request(signal: AbortSignal | undefined): RequestInit {
    return {signal: signal as RequestInit['signal']}
  }

  async describeRemote(signal?: AbortSignal): Promise<RemoteState> {
    this.signal = signal
    this.site = await this.retried('read the site', (s) => this.api.getSite({site_id: this.siteId()}, NetlifyBackend.request(s)) as Promise<NetlifySite>)
    const site = this.site
    // A site that was never deployed has no files (404).
    const files = await this.retried('list the site\'s files', (s) => this.api.listSiteFiles({site_id: site.id}, NetlifyBackend.request(s)) as Promise<Array<{path: string; sha: string; size: number}>>, [404])
      ?? []
    const objects = new Map<string, RemoteObject>()
    for (const file of files) {
      const key = file.path.replace(/^\//, '')
      this.live.set(key, {sha1: file.sha, size: file.size})
      objects.set(key, {key, size: file.size})
    }
    return {objects, unreferencedSince: await this.readDeployState()}
  }

  /**
   * The deploy state lives in the site's metadata (one key of it, the rest left as it is): the files
   * the tree no longer has and since when, for --prune-grace. A draft leaves the live site as it
   * is: it neither reads nor writes the state.
   */
  private async readDeployState(): Promise<Map<string, number>> {
    if (this.settings.draft || !this.site) return new Map()
    const site = this.site
    this.siteMetadata = await this.retried('read the site\'s metadata', (s) => this.api.getSiteMetadata({site_id: site.id}, NetlifyBackend.request(s)) as Promise<Record<string, unknown>>, [404]) ?? {}
    const state = this.siteMetadata[NETLIFY_STATE_KEY] as {unreferenced?: unknown} | undefined
    this.savedUnreferenced = parseUnreferenced(state?.unreferenced)
    return this.savedUnreferenced
  }

  async recordUnreferenced(since: ReadonlyMap<string, number>): Promise<void> {
    this.unreferenced = new Map(since)
  }

  /** Once the deploy is live (what it no longer has is unreferenced from then): the state, when it changed. */
  private async writeDeployState(): Promise<void> {
    const site = this.site
    if (this.settings.draft || !site || !this.unreferenced) return
    const serialize = (map: ReadonlyMap<string, number>) => Object.fromEntries([...map].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, since]) => [key, new Date(since).toISOString()]))
    const unreferenced = serialize(this.unreferenced)
    if (JSON.stringify(unreferenced) === JSON.stringify(serialize(this.savedUnreferenced))) return
    const metadata = {...this.siteMetadata, [NETLIFY_STATE_KEY]: {unreferenced}}
    await this.retried('write the site\'s metadata', (s) => this.api.updateSiteMetadata({site_id: site.id, body: metadata} as never, NetlifyBackend.request(s)))
  }

  async putObject(key: string, object: RegistryObject, file: string): Promise<void> {
    // Refused before its bytes are hashed: a layer of tens of GB would be read whole for nothing.
    checkHostLimits(new Map([[key, object.size]]), this.limits())
    const source = {file}
    this.staged.set(key, {sha1: await sha1Of(source), size: object.size, source})
  }

  private limits(): HostLimits {
    return {
      host: 'Netlify', maxFilesPerDirectory: NETLIFY_MAX_FILES_PER_DIRECTORY, maxFileSize: this.settings.maxFileSize,
      instead: 'deploy this registry with --backend s3 or --backend r2 (no per-file or per-directory limits; blobs over 5 GiB go up and are copied in parts), or raise --max-file-size if your plan allows',
    }
  }

  async copyObject(fromKey: string, key: string): Promise<void> {
    const from: StagedFile | undefined = this.staged.get(fromKey) ?? this.live.get(fromKey)
    if (!from) throw new RegError(`internal: nothing staged at ${fromKey} to copy to ${key}`)
    this.staged.set(key, from)
  }

  async deleteObject(key: string): Promise<void> {
    this.removed.add(key)
  }

  async writeHostConfig(tree: RegistryTree, routed: readonly RegistryObject[] = []): Promise<void> {
    // `_headers` names every tag: the routed URLs are in the tree's index already.
    for (const config of withOffloadRedirects(headerFileConfig(tree.index), routed)) {
      const content = config.path === '_headers' ? netlifyCorsHeaders(config.content, this.settings.cors) : config.content
      const source = {content: Buffer.from(content)}
      this.staged.set(config.path, {sha1: await sha1Of(source), size: source.content.length, source})
    }
  }

  /**
   * An API call under reg's retry policy: 5xx, 429 and network failures are tried again (the client
   * itself first waits out 429s as X-RateLimit-Reset says; its errors carry no headers).
   */
  private retried<T>(doing: string, call: (signal: AbortSignal | undefined) => Promise<T>): Promise<T>
  /** `absentWhen`: statuses that mean "nothing there" (undefined), not a failure */
  private retried<T>(doing: string, call: (signal: AbortSignal | undefined) => Promise<T>, absentWhen: readonly number[]): Promise<T | undefined>
  private retried<T>(doing: string, call: (signal: AbortSignal | undefined) => Promise<T>, absentWhen: readonly number[] = []): Promise<T | undefined> {
    return withRetries(() => call(this.signal), {
      policy: {retries: this.settings.retries, maxMs: 8000},
      signal: this.signal,
      classify: (error) => {
        const status = httpStatus(error)
        return {retry: !this.signal?.aborted && (status === undefined || status >= 500 || status === 429)}
      },
    }).catch((error: unknown) => {
      const status = httpStatus(error)
      if (status !== undefined && absentWhen.includes(status)) return undefined
      throw this.signal?.aborted ? error : this.explain(error, doing)
    })
  }

  private async waitFor(deployId: string, done: readonly string[], doing: string): Promise<NetlifyDeploy> {
    const started = Date.now()
    for (let poll = 0; Date.now() - started < DEPLOY_TIMEOUT_MS; poll++) {
      const deploy = await this.retried(doing, (signal) => this.api.getSiteDeploy({site_id: this.site?.id ?? '', deploy_id: deployId}, NetlifyBackend.request(signal)) as Promise<NetlifyDeploy>)
      if (deploy.state === 'error') throw new RegError(`Netlify failed the deploy ${deployId}: ${deploy.error_message ?? 'no reason given'}`, 'see the deploy log in the Netlify UI; the site still serves its previous deploy')
      if (done.includes(deploy.state)) return deploy
      await sleep(Math.min(200 * 2 ** poll, 2000), undefined, {signal: this.signal})
    }
    throw new RegError(`Netlify did not finish ${doing} within ${DEPLOY_TIMEOUT_MS / 60_000} minutes (deploy ${deployId})`, 'the site still serves its previous deploy; try again')
  }

  async finish(tree: RegistryTree, signal?: AbortSignal): Promise<HostDeployReport> {
    this.signal = signal
    const site = this.site
    if (!site) throw new RegError('internal: finish before describeRemote')
    const files = new Map<string, {sha1: string; size: number}>()
    for (const [key, file] of this.live) if (!this.removed.has(key)) files.set(key, file)
    for (const [key, file] of this.staged) files.set(key, file)
    checkHostLimits(new Map([...files].map(([key, file]) => [key, file.size])), this.limits())

    const manifest = Object.fromEntries([...files].map(([key, file]) => [`/${key}`, file.sha1]))
    const asynchronous = files.size > SYNC_FILE_LIMIT
    let deploy = await this.retried('create the deploy', (signal) => this.api.createSiteDeploy({
      site_id: site.id, title: this.settings.message,
      body: {files: manifest, async: asynchronous, draft: this.settings.draft},
    }, NetlifyBackend.request(signal)) as Promise<NetlifyDeploy>)
    if (asynchronous && !['prepared', 'ready'].includes(deploy.state)) deploy = await this.waitFor(deploy.id, ['prepared', 'uploading', 'ready'], 'diffing the files')

    // Each required SHA-1 once, from whichever staged path holds it.
    const bySha1 = new Map<string, {key: string; source: NonNullable<StagedFile['source']>; size: number}>()
    for (const [key, file] of this.staged) if (file.source && !bySha1.has(file.sha1)) bySha1.set(file.sha1, {key, source: file.source, size: file.size})
    const uploads = (deploy.required ?? []).map((sha1) => {
      const holder = bySha1.get(sha1)
      if (!holder) throw new RegError(`Netlify asked for content reg does not have locally (sha1 ${sha1})`, 'deploy again with --prune, so every file comes from the tree')
      return holder
    })
    let uploadedBytes = 0
    await mapLimit(uploads, this.settings.concurrency, async ({key, source, size}) => {
      await this.retried(`upload /${key}`, (signal) => this.api.uploadDeployFile({
        deploy_id: deploy.id, path: encodeURI(key),
        // a function: the client calls it again for each retry of a 429, so a stream is never reused
        // (the client's types say ReadStream; node-fetch sends a Buffer just as well)
        body: 'content' in source ? source.content as unknown as ReadStream : () => createReadStream(source.file),
      }, NetlifyBackend.request(signal)))
      uploadedBytes += size
    })
    const ready = deploy.state === 'ready' ? deploy : await this.waitFor(deploy.id, ['ready'], 'publishing the deploy')
    await this.writeDeployState()
    const url = (this.settings.draft ? ready.deploy_ssl_url ?? ready.deploy_url : site.custom_domain ? `https://${site.custom_domain}` : ready.ssl_url ?? site.ssl_url ?? ready.url ?? site.url) ?? ''
    return {
      uploadedFiles: uploads.length, uploadedBytes, url,
      messages: [`Netlify deploy ${ready.id} is live${this.settings.draft ? ' as a draft' : ''}: ${url}`, ...pullHint(tree, url)],
    }
  }
}
