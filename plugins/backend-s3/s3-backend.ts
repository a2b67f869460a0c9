import {createReadStream} from 'node:fs'
import {
  CopyObjectCommand, type CORSRule, DeleteObjectCommand, GetBucketCorsCommand, ListObjectsV2Command, type ObjectCannedACL, PutBucketCorsCommand,
  PutObjectCommand, S3Client, S3ServiceException, type StorageClass,
} from '@aws-sdk/client-s3'
import {CORS_ALLOW_HEADERS, CORS_ALLOW_METHODS, CORS_EXPOSE_HEADERS, CORS_MAX_AGE_SECONDS} from '../../src/core/cors.js'
import {RegError} from '../../src/core/errors.js'
import {publicReadPolicy} from './index.js'
import {type RetryVerdict, serverDelayMs} from '../../src/core/retry.js'
import {offloadTarget} from '../../src/publish/offload.js'
import type {Backend, BackendCapabilities, RemoteObject, RemoteState} from '../../src/publish/backend.js'
import type {RegistryObject} from '../../src/tree/model.js'
import {PAGE_ROOTS, ROOT_PAGE} from '../../src/page/documents.js'
import {abortUpload, copyInParts, MAX_PART_BYTES, MULTIPART_RESUME_MS, type PendingUploads, uploadInParts} from './multipart.js'
import {readS3DeployState, S3_STATE_KEY, type S3DeployState, serializeS3DeployState, writeS3DeployState} from './deploy-state.js'

export interface S3Settings {
  bucket: string
  region: string
  endpoint?: string
  keyPrefix: string
  acl?: ObjectCannedACL
  forcePathStyle: boolean
  storageClass?: StorageClass
  /** 'WHEN_REQUIRED' unless asked: newer SDK defaults break R2 and corrupt streamed uploads on some S3-compatible servers */
  checksums: 'WHEN_REQUIRED' | 'WHEN_SUPPORTED'
  /**
   * What "another repository's copy of a blob" is: a server-side CopyObject; a tiny object that
   * redirects to one shared copy under `_blobs/` (S3 website endpoints only); or a second upload.
   */
  dedupe: 'copy' | 'redirect' | 'none'
  /** a name for messages: s3, r2, scaleway */
  provider: string
  /** the origin the bucket's CORS configuration lets read (`*`, one origin), or undefined: reg leaves it as it is */
  cors?: string
}

/** The bucket CORS rule of an origin: S3 answers preflights and adds the headers itself (the API and website endpoints). */
export function s3CorsRule(origin: string): CORSRule {
  return {
    AllowedOrigins: [origin], AllowedMethods: [...CORS_ALLOW_METHODS], AllowedHeaders: [...CORS_ALLOW_HEADERS],
    ExposeHeaders: [...CORS_EXPOSE_HEADERS], MaxAgeSeconds: CORS_MAX_AGE_SECONDS,
  }
}

/** A rule as S3 lists it back, for comparing: the fields reg sets, lists in order. */
function corsRuleKey(rule: CORSRule): string {
  return JSON.stringify([rule.AllowedOrigins ?? [], rule.AllowedMethods ?? [], rule.AllowedHeaders ?? [], rule.ExposeHeaders ?? [], rule.MaxAgeSeconds ?? null])
}

const MiB = 1024 * 1024
export {partSizeFor} from './multipart.js'

/** sha256 of no bytes: an empty blob, which a redirect mode bucket also holds as an empty object */
const EMPTY_DIGEST = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

/** S3's single CopyObject limit; larger objects are copied in parts. */
const COPY_LIMIT = MAX_PART_BYTES

/**
 * One plugin for the S3 family (AWS S3, Cloudflare R2, Scaleway, any endpoint). Every URL is an
 * object (S3 cannot rewrite), with Content-Type and Cache-Control, and the digest as
 * x-amz-meta-docker-content-digest (S3 cannot send Docker-Content-Digest itself: clients hash
 * the body instead). Other repositories' copies of a blob are made server-side.
 */
export class S3Backend implements Backend {
  readonly name: string
  readonly capabilities: BackendCapabilities
  readonly location: string
  readonly client: S3Client
  /** the bucket's deploy state, read with the listing */
  private deployState?: S3DeployState
  /** the state object's bytes as last read or written: unchanged, it is not written again */
  private savedState?: string
  /** writes of the state object, one after the other */
  private stateWrites: Promise<void> = Promise.resolve()

  constructor(private readonly settings: S3Settings) {
    this.name = settings.provider
    this.location = `s3://${settings.bucket}/${settings.keyPrefix}${settings.endpoint ? ` at ${settings.endpoint}` : ''}`
    this.capabilities = {
      serverSideCopy: settings.dedupe !== 'none', caseSensitiveTags: true,
      // Website redirect objects: answered 301 by AWS S3's website endpoint (R2 and Scaleway have none that does).
      ...(settings.provider === 's3' ? {offloadRedirects: {how: 'a website redirect object, answered 301 by the bucket\'s website endpoint', by: 'redirect-objects' as const}} : {}),
    }
    // The SDK's documented opt-out of its 8-line NodeVersionSupportWarning (emitted once, when the first
    // client is made, on Node < 22): reg supports Node 20 and says so once itself (bin/run.js).
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
    this.client = new S3Client({
      region: settings.region,
      endpoint: settings.endpoint,
      forcePathStyle: settings.forcePathStyle,
      requestChecksumCalculation: settings.checksums,
      responseChecksumValidation: settings.checksums,
      // reg's one retry policy retries each step (and the listing); the SDK's own would retry under it.
      maxAttempts: 1,
    })
  }

  /** the prefix of every key (a Worker in front of the bucket reads the same keys) */
  get keyPrefix(): string {
    return this.settings.keyPrefix
  }

  /** `v2/` is an object of its own (GET /v2/ in API mode); `v2/index.json` serves it in website mode. */
  storageKeyOf(object: RegistryObject): string {
    return this.settings.keyPrefix + object.path
  }

  private objectParams(object: RegistryObject) {
    return {
      Bucket: this.settings.bucket,
      ContentType: object.headers['Content-Type'],
      CacheControl: object.headers['Cache-Control'],
      Metadata: {'docker-content-digest': object.headers['Docker-Content-Digest'] ?? object.digest},
      ...(this.settings.acl ? {ACL: this.settings.acl} : {}),
      ...(this.settings.storageClass ? {StorageClass: this.settings.storageClass} : {}),
    }
  }

  /** Redirect mode: every repository's blob URL redirects to one shared copy under `_blobs/`. */
  sharedKeyOf(object: RegistryObject): string | undefined {
    return this.settings.dedupe === 'redirect' && object.class === 'blob' ? this.sharedBlobKey(object.digest) : undefined
  }

  private sharedBlobKey(digest: string): string {
    return `${this.settings.keyPrefix}_blobs/${digest}`
  }

  /** One flat, paginated ListObjectsV2 over a key prefix: no per-object HEAD. */
  private async list(prefix: string, signal?: AbortSignal): Promise<Map<string, RemoteObject>> {
    const objects = new Map<string, RemoteObject>()
    let ContinuationToken: string | undefined
    try {
      do {
        const page = await this.client.send(new ListObjectsV2Command({Bucket: this.settings.bucket, Prefix: prefix, ContinuationToken}), {abortSignal: signal})
        for (const item of page.Contents ?? []) {
          if (!item.Key) continue
          const etag = item.ETag?.replaceAll('"', '')
          objects.set(item.Key, {key: item.Key, size: item.Size ?? 0, md5: etag && /^[a-f0-9]{32}$/.test(etag) ? etag : undefined})
        }
        ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined
      } while (ContinuationToken)
    } catch (error) {
      throw explainS3Error(error, this.settings)
    }
    return objects
  }

  /**
   * The registry's key space, `[prefix]v2/`; in redirect mode also the shared blobs, and each empty
   * object at a blob URL is what it is: a redirect (written only by `putRedirect`) to its shared copy.
   */
  async describeRemote(signal?: AbortSignal): Promise<RemoteState> {
    this.deployState = await this.loadDeployState(signal)
    const objects = await this.list(`${this.settings.keyPrefix}v2/`, signal)
    // v2/index.json goes with v2/ (written together): not an object of its own.
    objects.delete(`${this.settings.keyPrefix}v2/index.json`)
    for (const [key, object] of await this.listPage(signal)) objects.set(key, object)
    await this.describeSharedBlobs(objects, this.deployState, signal)
    return {objects, unreferencedSince: this.deployState.unreferenced}
  }

  /**
   * Redirect mode, now or at the last deploy (or never recorded): the shared copies under `_blobs/`
   * are listed (so they are pruned like everything else, and a bucket leaving redirect mode copies
   * from them), and each empty object at a blob URL is what it is: a redirect (written only by
   * `putRedirect`) to its shared copy, which a bucket leaving redirect mode replaces by the blob.
   */
  private async describeSharedBlobs(objects: Map<string, RemoteObject>, state: S3DeployState, signal?: AbortSignal): Promise<void> {
    if (this.settings.dedupe !== 'redirect' && state.sharedBlobs === false) return
    const shared = await this.list(`${this.settings.keyPrefix}_blobs/`, signal)
    for (const [key, object] of objects) {
      const digest = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(key)?.[1]
      // The empty blob is empty either way: in copy mode, a redirect to it only while its shared copy is there.
      if (digest && object.size === 0 && (this.settings.dedupe === 'redirect' || digest !== EMPTY_DIGEST || shared.has(this.sharedBlobKey(digest)))) {
        objects.set(key, {key, size: 0, redirectTo: this.sharedBlobKey(digest)})
      }
    }
    for (const [key, object] of shared) {
      // Shared copies are written only under their digest, by this backend: a holder for copies.
      const digest = /_blobs\/(sha256:[a-f0-9]{64})$/.exec(key)?.[1]
      objects.set(key, digest ? {...object, digest} : object)
    }
  }

  private get stateKey(): string {
    return `${this.settings.keyPrefix}${S3_STATE_KEY}`
  }

  private async loadDeployState(signal?: AbortSignal): Promise<S3DeployState> {
    try {
      const state = await readS3DeployState(this.client, this.settings.bucket, this.stateKey, signal)
      this.savedState = serializeS3DeployState(state)
      return state
    } catch (error) {
      // The first request of a deploy, like the listing: the errors users hit (credentials, bucket, region) explained.
      throw explainS3Error(error, this.settings)
    }
  }

  /**
   * Uploads in parts a deploy left too long ago are aborted (their parts cost storage until then), not
   * resumed; dropped from the state, which is written next.
   */
  private async abortStaleUploads(state: S3DeployState, signal?: AbortSignal): Promise<void> {
    const now = Date.now()
    for (const [key, upload] of state.uploads) {
      if (now - upload.started < MULTIPART_RESUME_MS) continue
      await abortUpload(this.client, this.settings.bucket, key, upload.uploadId, signal)
      state.uploads.delete(key)
    }
  }

  /** The state object, rewritten only when it changed (a deploy that changes nothing sends nothing); one write at a time. */
  private saveDeployState(state: S3DeployState, signal?: AbortSignal): Promise<void> {
    const write = this.stateWrites.then(() => this.writeDeployState(state, signal))
    this.stateWrites = write.catch(() => undefined)
    return write
  }

  private async writeDeployState(state: S3DeployState, signal?: AbortSignal): Promise<void> {
    const next = serializeS3DeployState(state)
    if (next === this.savedState) return
    try {
      await writeS3DeployState(this.client, this.settings.bucket, this.stateKey, state, signal)
    } catch (error) {
      if (!this.retryVerdict(error).retry) throw explainS3Error(error, this.settings)
      throw error
    }
    this.savedState = next
  }

  /** After the prune phase: what stays unreferenced and since when, and whether shared copies are left to list. */
  async recordUnreferenced(since: ReadonlyMap<string, number>, signal?: AbortSignal): Promise<void> {
    const state = this.deployState ?? {unreferenced: new Map(), uploads: new Map()}
    const shared = `${this.settings.keyPrefix}_blobs/`
    const sharedBlobs = this.settings.dedupe === 'redirect' || [...since.keys()].some((key) => key.startsWith(shared))
    // Not when the state is read: a dry run touches nothing.
    await this.abortStaleUploads(state, signal)
    this.deployState = {...state, sharedBlobs, unreferenced: new Map(since)}
    await this.saveDeployState(this.deployState, signal)
  }

  /**
   * The catalog page's keys (reg build --page): its index.html and, when that is there (it goes up
   * with the rest of the page), its directories. A bucket without the page costs one small listing.
   * Website hosting (or a CDN's default root object) serves `/` and each directory from its index.html.
   */
  private async listPage(signal?: AbortSignal): Promise<Map<string, RemoteObject>> {
    const prefix = this.settings.keyPrefix
    const root = (await this.list(`${prefix}${ROOT_PAGE}`, signal)).get(`${prefix}${ROOT_PAGE}`)
    const found = new Map<string, RemoteObject>()
    if (!root) return found
    found.set(root.key, root)
    for (const directory of PAGE_ROOTS) for (const [key, object] of await this.list(`${prefix}${directory}/`, signal)) found.set(key, object)
    return found
  }

  async putObject(key: string, object: RegistryObject, file: string, signal?: AbortSignal): Promise<void> {
    await this.upload(key, object, file, signal)
    if (object.class === 'api-root') {
      await this.send(new PutObjectCommand({...this.objectParams(object), Key: `${key}index.json`, Body: createReadStream(file), ContentLength: object.size}), signal)
    }
  }

  /**
   * A tiny object the S3 website endpoint answers with a 301: to the shared copy (a key of this
   * bucket), or to where an offloaded blob is (`reg deploy --offload`: an absolute URL, checked).
   */
  async putRedirect(key: string, target: string, object: RegistryObject, signal?: AbortSignal): Promise<void> {
    const location = /^https?:\/\//.test(target) ? offloadTarget(object.digest, target) : `/${target}`
    await this.send(new PutObjectCommand({...this.objectParams(object), Key: key, Body: '', ContentLength: 0, WebsiteRedirectLocation: location}), signal)
  }

  private async upload(key: string, object: RegistryObject, file: string, signal?: AbortSignal): Promise<void> {
    if (object.size < 8 * MiB) {
      // Small objects in one request; the body is a stream with a known length (no aws-chunked framing).
      await this.send(new PutObjectCommand({...this.objectParams(object), Key: key, Body: createReadStream(file), ContentLength: object.size}), signal)
    } else {
      await this.uploadLarge(key, object, file, signal)
    }
  }

  /** The deploy state's uploads in parts, written through: an upload id is on the host before its first part is sent. */
  private pendingUploads(signal?: AbortSignal): PendingUploads {
    const state = () => (this.deployState ??= {unreferenced: new Map(), uploads: new Map()})
    return {
      get: (key) => state().uploads.get(key),
      set: async (key, upload) => {
        state().uploads.set(key, upload)
        await this.saveDeployState(state(), signal)
      },
      remove: async (key) => {
        if (state().uploads.delete(key)) await this.saveDeployState(state(), signal)
      },
    }
  }

  /** Large objects in parts, resumed after an interrupted deploy from the parts the store has. */
  private async uploadLarge(key: string, object: RegistryObject, file: string, signal?: AbortSignal): Promise<void> {
    const {Bucket: _bucket, ...params} = this.objectParams(object)
    try {
      await uploadInParts({client: this.client, bucket: this.settings.bucket, key, params, signal}, file, object.digest, object.size, this.pendingUploads(signal), Date.now())
    } catch (error) {
      if (!this.retryVerdict(error).retry) throw explainS3Error(error, this.settings)
      throw error
    }
  }

  /** Over 5 GiB, one CopyObject cannot: UploadPartCopy, range by range, still server-side. */
  private async copyLarge(fromKey: string, key: string, object: RegistryObject, signal?: AbortSignal): Promise<void> {
    const {Bucket: _bucket, ...params} = this.objectParams(object)
    try {
      await copyInParts({client: this.client, bucket: this.settings.bucket, key, params, signal}, encodeURI(`${this.settings.bucket}/${fromKey}`), object.size)
    } catch (error) {
      if (!this.retryVerdict(error).retry) throw explainS3Error(error, this.settings)
      throw error
    }
  }

  async copyObject(fromKey: string, key: string, object: RegistryObject, signal?: AbortSignal): Promise<void> {
    if (object.size > COPY_LIMIT) return this.copyLarge(fromKey, key, object, signal)
    // REPLACE: a tag and its manifest by digest share bytes but not Cache-Control.
    // CopySource keeps ':' as is (encodeURI): s3rver decodes it with decodeURI, AWS accepts either.
    await this.send(new CopyObjectCommand({...this.objectParams(object), Key: key, CopySource: encodeURI(`${this.settings.bucket}/${fromKey}`), MetadataDirective: 'REPLACE'}), signal)
  }

  /** lines for the user after the deploy */
  readonly notes: string[] = []

  /**
   * The configure phase: the bucket's CORS configuration (one read; a write only when it differs).
   * It is the bucket's, whatever the key prefix: `--cors off` leaves it as it is.
   */
  async writeHostConfig(_tree: unknown, _routed: unknown, signal?: AbortSignal): Promise<void> {
    if (this.settings.cors === undefined) return
    const wanted = s3CorsRule(this.settings.cors)
    let current: CORSRule[] = []
    try {
      current = (await this.client.send(new GetBucketCorsCommand({Bucket: this.settings.bucket}), {abortSignal: signal})).CORSRules ?? []
    } catch (error) {
      const missing = corsUnsupported(error)
      if (missing === 'none-yet') current = []
      else if (missing === 'no-api') {
        this.notes.push(`${this.settings.provider}: this endpoint has no bucket CORS API (${(error as Error).name}): browsers on other origins cannot read the registry; pass --cors off to skip this step`)
        return
      } else throw this.corsError(error)
    }
    if (current.length === 1 && corsRuleKey(current[0]) === corsRuleKey(wanted)) return
    try {
      await this.client.send(new PutBucketCorsCommand({Bucket: this.settings.bucket, CORSConfiguration: {CORSRules: [wanted]}}), {abortSignal: signal})
    } catch (error) {
      throw this.corsError(error)
    }
  }

  private corsError(error: unknown): Error {
    if (this.retryVerdict(error).retry) return error as Error
    const name = (error as Error).name
    if (name === 'AccessDenied') {
      return new RegError(`${this.settings.provider} bucket ${this.settings.bucket}: may not read or set its CORS configuration (AccessDenied)`, 'grant s3:GetBucketCORS and s3:PutBucketCORS on the bucket, or pass --cors off (browsers on other origins then cannot read the registry)')
    }
    return explainS3Error(error, this.settings)
  }

  async deleteObject(key: string, signal?: AbortSignal): Promise<void> {
    await this.send(new DeleteObjectCommand({Bucket: this.settings.bucket, Key: key}), signal)
  }

  /** Throttling, 5xx and timeouts are worth another try, after the delay S3 asks for if it does; network resets too. */
  retryVerdict(error: unknown): RetryVerdict {
    if (error instanceof S3ServiceException) {
      const status = error.$metadata.httpStatusCode ?? 0
      const retry = status >= 500 || status === 429 || error.name === 'SlowDown' || error.name === 'RequestTimeout'
      return {retry, afterMs: retry ? serverDelayMs(error.$response?.headers ?? {}) : undefined}
    }
    return {retry: !(error instanceof Error && error.name === 'AbortError')}
  }

  private async send(command: PutObjectCommand | CopyObjectCommand | DeleteObjectCommand, signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.client.send(command as PutObjectCommand, {abortSignal: signal})
    } catch (error) {
      if (!this.retryVerdict(error).retry) throw explainS3Error(error, this.settings)
      throw error
    }
  }
}

/** A bucket without a CORS configuration yet (`none-yet`), an endpoint without the API (`no-api`), or another failure. */
function corsUnsupported(error: unknown): 'none-yet' | 'no-api' | undefined {
  const name = (error as Error | undefined)?.name
  if (name === 'NoSuchCORSConfiguration') return 'none-yet'
  const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined
  if (name === 'NotImplemented' || status === 501) return 'no-api'
  return undefined
}

/** Which link of the AWS default credential chain will answer, for error messages. */
export function credentialSource(env: NodeJS.ProcessEnv = process.env): string {
  if (env.AWS_ACCESS_KEY_ID) return 'credentials from the environment (AWS_ACCESS_KEY_ID)'
  if (env.AWS_WEB_IDENTITY_TOKEN_FILE) return `web identity (OIDC) credentials for role ${env.AWS_ROLE_ARN ?? '(AWS_ROLE_ARN unset)'}`
  if (env.AWS_PROFILE) return `profile "${env.AWS_PROFILE}" (shared config/credentials files, SSO)`
  return 'the default profile or the instance/container role (AWS default credential chain)'
}

/**
 * What to set when the credential chain finds nothing. Every S3-family backend reads the AWS default
 * chain only, so R2's and Scaleway's keys go into the AWS variables too.
 */
export function missingCredentialsHint(provider: string): string {
  if (provider === 'r2') return 'export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to the Access Key ID and Secret Access Key of an R2 API token (Cloudflare dashboard → R2 → Manage API tokens); in GitHub Actions, pass them from secrets in env:'
  if (provider === 'scaleway') return 'export AWS_ACCESS_KEY_ID=$SCW_ACCESS_KEY and AWS_SECRET_ACCESS_KEY=$SCW_SECRET_KEY (a Scaleway API key: Console → IAM → API keys); in GitHub Actions, pass them from secrets in env:'
  return 'export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE=NAME for a profile of ~/.aws/config (aws sso login for SSO); in GitHub Actions, add the step aws-actions/configure-aws-credentials with role-to-assume (OIDC) and `permissions: id-token: write`'
}

/** Turn the S3 errors users actually hit into what to do about them. */
export function explainS3Error(error: unknown, settings: S3Settings): Error {
  if (!(error instanceof Error)) return new Error(String(error))
  const name = error.name
  const where = `${settings.provider} bucket ${settings.bucket}`
  if (name === 'NoSuchBucket') return new RegError(`${where} does not exist`, 'create it first, or check --bucket and --region')
  if (name === 'CredentialsProviderError') {
    return new RegError(`${where}: no credentials found (the AWS default credential chain found none)`, missingCredentialsHint(settings.provider))
  }
  if (name === 'AccessDenied' || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch') {
    return new RegError(`${where}: access denied with ${credentialSource()} (${error.message})`, 'check those credentials, and that they may list, put, copy and delete objects in the bucket')
  }
  if (name === 'AccessControlListNotSupported') {
    const policy = publicReadPolicy(settings.bucket)
    return new RegError(`${where} refuses ACLs (new buckets have Object Ownership "bucket owner enforced")`, `run with --acl none and make the bucket public with this bucket policy (s3:ListBucket makes a missing key 404, not 403, as clients expect; it lets anyone list the bucket's keys):\n${JSON.stringify(policy, null, 2)}`)
  }
  if (name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed' || name === 'IllegalLocationConstraintException') {
    const region = (error as {Region?: string}).Region ?? (error as {$response?: {headers?: Record<string, string>}}).$response?.headers?.['x-amz-bucket-region']
    return new RegError(`${where} is in another region${region ? ` (${region})` : ''}`, region ? `run with --region ${region}` : 'pass the bucket\'s --region')
  }
  const code = (error as {code?: string}).code
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new RegError(`${settings.endpoint ?? 'the S3 endpoint'} is unreachable (${code})`, 'check --endpoint and the network')
  }
  return error
}
