import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {mapLimit} from '../../src/core/concurrency.js'
import {RegError} from '../../src/core/errors.js'
import type {Backend, HostDeployReport, RemoteState} from '../../src/publish/backend.js'
import {checkHostLimits} from '../../src/publish/header-file-host.js'
import type {RegistryObject} from '../../src/tree/model.js'
import type {RegistryTree} from '../../src/tree/registry-tree.js'
import type {CloudflareApi} from '../backend-cloudflare/cloudflare-api.js'
import {PAGES_INSTEAD, PAGES_LIMITS, pagesConfig, pagesStorageKey} from './pages-layout.js'

export interface PagesSettings {
  accountId: string
  project: string
  concurrency: number
  /** the origin CORS lets read (`*`, one origin), or undefined: no CORS headers */
  cors?: string
}

interface StagedFile {
  hash: string
  size: number
  source: {file: string} | {content: Buffer}
}

/** What the upload endpoints take at most per request (wrangler's buckets). */
const BUCKET_BYTES = 40 * 1024 * 1024
const BUCKET_FILES = 2000

function bytesOf(source: StagedFile['source']): Promise<Buffer> {
  return 'content' in source ? Promise.resolve(source.content) : readFile(source.file)
}

/**
 * An asset's key, as the Pages upload endpoints take it: 32 hex digits of a hash of the base64
 * content and the file's extension (wrangler hashes the same input with BLAKE3, which Node lacks;
 * the endpoints take any 32-hex key and deduplicate by it).
 */
function assetHash(bytes: Buffer, key: string): string {
  return createHash('sha256').update(bytes.toString('base64') + path.extname(key).slice(1)).digest('hex').slice(0, 32)
}

interface PagesDeployment {
  id?: string
  url?: string
}

/**
 * Cloudflare Pages by direct upload: every step of the plan is staged (path → content hash), and
 * `finish` makes one deployment, as `wrangler pages deploy` does: an upload token, the hashes Pages
 * is missing, those contents in buckets, then the deployment (manifest, _headers, _redirects).
 * Atomic: a deployment goes live whole, and lists every file (nothing to prune on the host).
 */
export class PagesBackend implements Backend {
  readonly name = 'cloudflare-pages'
  // Tags are static rules, matched exactly; `v1` and `V1` are still refused, as on every header-file host.
  readonly capabilities = {serverSideCopy: true, caseSensitiveTags: false, stagesDeploy: true}
  readonly location: string
  private readonly staged = new Map<string, StagedFile>()
  private config?: ReturnType<typeof pagesConfig>

  constructor(private readonly api: CloudflareApi, private readonly settings: PagesSettings) {
    this.location = `Pages project ${settings.project}`
  }

  storageKeyOf(object: RegistryObject): string | null {
    return pagesStorageKey(object)
  }

  private projectPath(): string {
    return `/accounts/${this.settings.accountId}/pages/projects/${encodeURIComponent(this.settings.project)}`
  }

  /** The project must exist (a clear error before anything is staged); a deployment holds every file, so nothing is deployed already. */
  async describeRemote(signal?: AbortSignal): Promise<RemoteState> {
    const project = await this.api.call<{name: string}>('read the Pages project', 'GET', this.projectPath(), {signal, absentWhen: [404]})
    if (!project) throw new RegError(`no Cloudflare Pages project "${this.settings.project}" in account ${this.settings.accountId}`, `create it first: dashboard → Workers & Pages → Create → Pages → Upload assets, or \`wrangler pages project create ${this.settings.project}\``)
    return {objects: new Map()}
  }

  async putObject(key: string, object: RegistryObject, file: string): Promise<void> {
    if (object.size > PAGES_LIMITS.fileBytes) throw new RegError(`Cloudflare Pages takes files of at most ${PAGES_LIMITS.fileBytes} bytes (25 MiB); /${object.path} is ${object.size} bytes`, PAGES_INSTEAD)
    this.staged.set(key, {hash: assetHash(await readFile(file), key), size: object.size, source: {file}})
  }

  async copyObject(fromKey: string, key: string): Promise<void> {
    const from = this.staged.get(fromKey)
    if (!from) throw new RegError(`internal: nothing staged at ${fromKey} to copy to ${key}`)
    this.staged.set(key, from)
  }

  async deleteObject(): Promise<void> {
    // A deployment lists every file: what the tree no longer has is simply not in the next one.
  }

  async writeHostConfig(tree: RegistryTree): Promise<void> {
    this.config = pagesConfig(tree.index, this.settings.cors)
    const content = Buffer.from(this.config.notFound)
    this.staged.set('404.html', {hash: assetHash(content, '404.html'), size: content.length, source: {content}})
  }

  /** Every limit, before any upload. */
  private checkLimits(): void {
    if (this.staged.size > PAGES_LIMITS.files) throw new RegError(`Cloudflare Pages takes at most ${PAGES_LIMITS.files} files per deployment; this registry needs ${this.staged.size}`, PAGES_INSTEAD)
    checkHostLimits(new Map([...this.staged].map(([key, file]) => [key, file.size])), {host: 'Cloudflare Pages', maxFilesPerDirectory: PAGES_LIMITS.files, maxFileSize: PAGES_LIMITS.fileBytes, instead: PAGES_INSTEAD})
  }

  async finish(tree: RegistryTree, signal?: AbortSignal): Promise<HostDeployReport> {
    const config = this.config
    if (!config) throw new RegError('internal: finish before writeHostConfig')
    this.checkLimits()
    const token = await this.api.call<{jwt: string}>('get an upload token for the Pages project', 'GET', `${this.projectPath()}/upload-token`, {signal})
    const jwt = token?.jwt
    if (!jwt) throw new RegError('Cloudflare answered no upload token for the Pages project')
    const byHash = new Map<string, StagedFile & {key: string}>()
    for (const [key, file] of this.staged) if (!byHash.has(file.hash)) byHash.set(file.hash, {...file, key})
    const hashes = [...byHash.keys()]
    const missing = await this.api.call<string[]>('ask Pages which files it is missing', 'POST', '/pages/assets/check-missing', {body: {hashes}, token: jwt, signal}) ?? []

    const buckets: Array<Array<StagedFile & {key: string}>> = []
    let current: Array<StagedFile & {key: string}> = []
    let currentBytes = 0
    for (const hash of missing) {
      const file = byHash.get(hash)
      if (!file) throw new RegError(`Pages asked for a file reg did not offer (${hash})`)
      if (current.length > 0 && (currentBytes + file.size > BUCKET_BYTES || current.length >= BUCKET_FILES)) {
        buckets.push(current)
        current = []
        currentBytes = 0
      }
      current.push(file)
      currentBytes += file.size
    }
    if (current.length > 0) buckets.push(current)
    let uploadedBytes = 0
    await mapLimit(buckets, Math.min(this.settings.concurrency, 3), async (bucket) => {
      const payload = await Promise.all(bucket.map(async (file) => ({
        key: file.hash, value: (await bytesOf(file.source)).toString('base64'),
        // the stored type of a file without a known extension; the rules of _headers set the real ones
        metadata: {contentType: file.key.endsWith('.html') ? 'text/html' : file.key.endsWith('.json') ? 'application/json' : 'application/octet-stream'},
        base64: true,
      })))
      await this.api.call('upload files to Pages', 'POST', '/pages/assets/upload', {body: payload, token: jwt, signal})
      uploadedBytes += bucket.reduce((sum, file) => sum + file.size, 0)
    })
    await this.api.call('record the uploaded files', 'POST', '/pages/assets/upsert-hashes', {body: {hashes}, token: jwt, signal})

    const form = new FormData()
    form.append('manifest', JSON.stringify(Object.fromEntries([...this.staged].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, file]) => [`/${key}`, file.hash]))))
    form.append('_headers', new Blob([config.headers]), '_headers')
    form.append('_redirects', new Blob([config.redirects]), '_redirects')
    const deployment = await this.api.call<PagesDeployment>('create the Pages deployment', 'POST', `${this.projectPath()}/deployments`, {body: form, signal})
    const url = `https://${this.settings.project}.pages.dev`
    return {
      uploadedFiles: missing.length, uploadedBytes, url,
      messages: [
        `Pages deployment ${deployment?.id ?? ''} of ${this.settings.project}: ${deployment?.url ?? url} (${config.counts.headerRules}/${PAGES_LIMITS.headerRules} header rules, ${config.counts.staticRedirects}/${PAGES_LIMITS.staticRedirects} static and ${config.counts.dynamicRedirects}/${PAGES_LIMITS.dynamicRedirects} dynamic redirects, ${this.staged.size}/${PAGES_LIMITS.files} files)`,
      ],
    }
  }
}
