import {pbkdf2, randomBytes} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'
import {corsHeaders, corsPreflightHeaders} from '../../src/core/cors.js'
import {RegError} from '../../src/core/errors.js'
import {MAX_DOCUMENT_BYTES, MAX_FILTERED_REFERRERS_BYTES, readFileBounded} from '../../src/core/limits.js'
import type {RetryVerdict} from '../../src/core/retry.js'
import type {Backend, HostDeployReport, RemoteState} from '../../src/publish/backend.js'
import type {RegistryObject} from '../../src/tree/model.js'
import type {RegistryTree} from '../../src/tree/registry-tree.js'
import type {S3Backend} from '../backend-s3/s3-backend.js'
import {CloudflareApi} from './cloudflare-api.js'

export interface CloudflareSettings {
  accountId: string
  bucket: string
  /** the Worker's name */
  worker: string
  /** route patterns (`registry.example.com/*`); none: the Worker answers on its workers.dev subdomain */
  routes: string[]
  keyPrefix: string
  /** the REG_BASIC_AUTH secret (`user:pbkdf2-sha256:…` lines), or none: a public registry */
  basicAuth?: string
  /** the REG_ACCESS binding (JSON: realm, private names), with basicAuth */
  access?: string
  /** the --private globs, for the summary (`**`: the whole registry) */
  privatePatterns?: readonly string[]
  /** the origin CORS lets read (`*`, one origin), or undefined: no CORS headers (--cors off) */
  cors?: string
  compatibilityDate: string
}

/** The Worker's bindings, by name: what the script reads from `env` (see worker.js). */
export const WORKER_BINDINGS = {bucket: 'REGISTRY', keyPrefix: 'REG_KEY_PREFIX', tagMaxAge: 'REG_TAG_MAX_AGE', maxFilterBytes: 'REG_MAX_FILTER_BYTES', basicAuth: 'REG_BASIC_AUTH', access: 'REG_ACCESS', cors: 'REG_CORS'} as const
/** The runtime version the Worker is written for (Cloudflare keeps old dates working). */
export const WORKER_COMPATIBILITY_DATE = '2025-01-01'
const WORKER_MODULE = 'worker.js'

/**
 * The Worker's source, a file of its own beside this module: found next to it (running from the
 * sources) or in the repository's plugins/ (running from lib/, which tsc fills with .ts output only).
 */
export async function workerSource(): Promise<string> {
  for (const candidate of ['./worker.js', '../../../plugins/backend-cloudflare/worker.js']) {
    const file = fileURLToPath(new URL(candidate, import.meta.url))
    const text = await readFile(file, 'utf8').catch(() => undefined)
    if (text !== undefined) return text
  }
  throw new RegError('internal: the Cloudflare Worker script plugins/backend-cloudflare/worker.js is missing from this installation')
}

/**
 * The REG_CORS binding: the headers of every answer and of the preflight's, computed here from
 * src/core/cors.ts (the Worker is uploaded as is and imports nothing), or undefined: no CORS.
 */
export function workerCorsBinding(origin: string | undefined): string | undefined {
  return origin === undefined ? undefined : JSON.stringify({response: corsHeaders(origin), preflight: corsPreflightHeaders(origin)})
}

/** The bindings' metadata as the Workers script upload takes it. */
export function workerBindings(settings: CloudflareSettings, tagMaxAge: number): Array<Record<string, string>> {
  const cors = workerCorsBinding(settings.cors)
  return [
    {type: 'r2_bucket', name: WORKER_BINDINGS.bucket, bucket_name: settings.bucket},
    {type: 'plain_text', name: WORKER_BINDINGS.keyPrefix, text: settings.keyPrefix},
    {type: 'plain_text', name: WORKER_BINDINGS.tagMaxAge, text: String(tagMaxAge)},
    {type: 'plain_text', name: WORKER_BINDINGS.maxFilterBytes, text: String(MAX_FILTERED_REFERRERS_BYTES)},
    ...(cors === undefined ? [] : [{type: 'plain_text', name: WORKER_BINDINGS.cors, text: cors}]),
    ...(settings.access === undefined ? [] : [{type: 'plain_text', name: WORKER_BINDINGS.access, text: settings.access}]),
    ...(settings.basicAuth === undefined ? [] : [{type: 'secret_text', name: WORKER_BINDINGS.basicAuth, text: settings.basicAuth}]),
  ]
}

const PBKDF2_ITERATIONS = 20_000
const HASHED_LINE = /^[^:\s]+:pbkdf2-sha256:\d+:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/

/**
 * The REG_BASIC_AUTH secret from a file of `user:password` lines (or lines already hashed): each
 * password as PBKDF2-SHA256 with a salt of its own, which the Worker checks with Web Crypto
 * (bcrypt is not in the Workers runtime, and would not fit its CPU budget).
 */
export async function basicAuthSecret(file: string): Promise<string> {
  const text = (await readFileBounded(file, MAX_DOCUMENT_BYTES, `--basic-auth ${file}`)).toString('utf8')
  const lines: string[] = []
  for (const [number, raw] of text.split('\n').entries()) {
    const line = raw.replace(/\r$/, '')
    if (line.trim() === '' || line.startsWith('#')) continue
    if (HASHED_LINE.test(line)) {
      lines.push(line)
      continue
    }
    const colon = line.indexOf(':')
    // Never print the line: it holds a password.
    if (colon < 1 || colon === line.length - 1 || /\s/.test(line.slice(0, colon))) throw new RegError(`--basic-auth ${file}: line ${number + 1} is not user:password`, 'one user:password per line (or user:pbkdf2-sha256:… lines)')
    const salt = randomBytes(16)
    const hash = await promisify(pbkdf2)(line.slice(colon + 1), salt, PBKDF2_ITERATIONS, 32, 'sha256')
    lines.push(`${line.slice(0, colon)}:pbkdf2-sha256:${PBKDF2_ITERATIONS}:${salt.toString('base64')}:${hash.toString('base64')}`)
  }
  if (lines.length === 0) throw new RegError(`--basic-auth ${file} names no user`, 'one user:password per line')
  return `${lines.join('\n')}\n`
}

interface WorkersSubdomain {
  subdomain: string
}

/**
 * Cloudflare R2 behind a Worker that reg generates: the objects go to R2 through the S3 engine
 * (each blob uploaded once and copied server-side, incremental, in the plan's order, pruned), then,
 * as the host configuration, the Worker script is uploaded bound to the bucket and routed. The
 * Worker answers the registry's URL space with the headers S3 cannot send.
 */
export class CloudflareBackend implements Backend {
  readonly name = 'cloudflare'
  readonly capabilities
  readonly location: string
  private url?: string
  private scriptBytes = 0

  constructor(private readonly objects: S3Backend, private readonly api: CloudflareApi, private readonly settings: CloudflareSettings) {
    this.capabilities = objects.capabilities
    this.location = `R2 bucket ${settings.bucket} behind Worker ${settings.worker}`
  }

  storageKeyOf(object: RegistryObject): string {
    return this.objects.storageKeyOf(object)
  }

  describeRemote(signal?: AbortSignal): Promise<RemoteState> {
    return this.objects.describeRemote(signal)
  }

  putObject(key: string, object: RegistryObject, file: string, signal?: AbortSignal): Promise<void> {
    return this.objects.putObject(key, object, file, signal)
  }

  copyObject(fromKey: string, key: string, object: RegistryObject, signal?: AbortSignal): Promise<void> {
    return this.objects.copyObject(fromKey, key, object, signal)
  }

  deleteObject(key: string, signal?: AbortSignal): Promise<void> {
    return this.objects.deleteObject(key, signal)
  }

  /** The prune grace is counted in the S3 engine's deploy state in the bucket (never served: the Worker answers only the registry's and the page's URLs). */
  recordUnreferenced(since: ReadonlyMap<string, number>, signal?: AbortSignal): Promise<void> {
    return this.objects.recordUnreferenced(since, signal)
  }

  retryVerdict(error: unknown): RetryVerdict {
    // The API client retries its own calls; a RegError is final.
    if (error instanceof RegError) return {retry: false}
    return this.objects.retryVerdict(error)
  }

  /** The Worker, after every object it serves: script and bindings in one upload, then where it answers. */
  async writeHostConfig(tree: RegistryTree, _routed: readonly RegistryObject[], signal?: AbortSignal): Promise<void> {
    const {accountId, worker} = this.settings
    const script = `/accounts/${accountId}/workers/scripts/${encodeURIComponent(worker)}`
    const form = new FormData()
    form.set('metadata', new Blob([JSON.stringify({
      main_module: WORKER_MODULE,
      compatibility_date: this.settings.compatibilityDate,
      bindings: workerBindings(this.settings, tree.index.settings.tagMaxAge),
    })], {type: 'application/json'}), 'metadata.json')
    const source = await workerSource()
    this.scriptBytes = Buffer.byteLength(source)
    form.set(WORKER_MODULE, new Blob([source], {type: 'application/javascript+module'}), WORKER_MODULE)
    await this.api.call('upload the Worker', 'PUT', script, {body: form, signal})
    // PUT replaces the script's routes: the list given is the list served.
    await this.api.call('set the Worker\'s routes', 'PUT', `${script}/routes`, {body: this.settings.routes.map((pattern) => ({pattern})), signal})
    const workersDev = this.settings.routes.length === 0
    await this.api.call('set the Worker\'s workers.dev subdomain', 'POST', `${script}/subdomain`, {body: {enabled: workersDev, previews_enabled: false}, signal})
    if (workersDev) {
      const account = await this.api.call<WorkersSubdomain>('read the account\'s workers.dev subdomain', 'GET', `/accounts/${accountId}/workers/subdomain`, {signal})
      this.url = account?.subdomain ? `https://${worker}.${account.subdomain}.workers.dev` : undefined
    } else {
      // the registry answers at the route's host (its /v2/ URLs): a route may hold a path or a leading wildcard
      const route = this.settings.routes[0]
      this.url = `https://${route.slice(0, route.indexOf('/')).replace(/^\*\.?/, '')}`
    }
  }

  async finish(): Promise<HostDeployReport> {
    const url = this.url ?? ''
    return {
      // the Worker script; the objects went to R2 in the plan's steps
      uploadedFiles: 1, uploadedBytes: this.scriptBytes, url,
      messages: [`Worker ${this.settings.worker} serves R2 bucket ${this.settings.bucket}${url ? ` at ${url}` : ''}${this.settings.basicAuth === undefined ? '' : ` (Basic auth for ${this.settings.privatePatterns?.join(', ') ?? '**'})`}`],
    }
  }
}
