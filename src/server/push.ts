import {createHash, randomUUID} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdir, readdir, readFile, rm, stat, truncate, writeFile} from 'node:fs/promises'
import type http from 'node:http'
import path from 'node:path'
import {Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {errorBody} from '../core/api-errors.js'
import {digestHex, isDigest, sha256, verifyBytes} from '../core/digest.js'
import {errnoCode, RegError} from '../core/errors.js'
import {MAX_GRAPH_NODES, MAX_MANIFEST_BYTES, readFileBounded, TooLargeError} from '../core/limits.js'
import {type Descriptor, parseManifest} from '../core/manifest.js'
import {quoted} from '../core/quote.js'
import {validateName, validateTag} from '../core/reference.js'
import type {BlobStore} from '../tree/blob-store.js'
import {API_VERSION_HEADER} from '../tree/objects.js'
import {type CheckResult, type PasswordCheckOptions, PasswordChecker} from './push-auth.js'
import {parseContentRange, sendManifestBytes, sendStoredBlob} from './respond.js'
import type {LiveTree} from './live-tree.js'
import type {TreeWriter} from './tree-writer.js'

function send(res: http.ServerResponse, status: number, headers: Record<string, string | number> = {}, body?: string): void {
  res.writeHead(status, {...API_VERSION_HEADER, 'Content-Length': body ? Buffer.byteLength(body) : 0, ...(body ? {'Content-Type': 'application/json'} : {}), ...headers})
  res.end(body)
}

function fail(res: http.ServerResponse, status: number, code: string, message: string): void {
  send(res, status, {'Cache-Control': 'no-store'}, errorBody(code, message))
}

/**
 * The push side of the distribution API for `reg serve --push`: chunked and monolithic blob
 * uploads (verified, in a private area beside the tree until complete), cross-repository mounts,
 * manifests by tag and by digest (held untagged). A manifest becomes visible only when everything
 * it references is in the store; the tree's index is rewritten atomically, and `reg serve` picks
 * it up.
 */
export interface PushOptions {
  /** htpasswd entries (bcrypt) allowed to push; reads stay anonymous */
  users?: ReadonlyMap<string, string>
  /** accept DELETE of tags, and of manifests by digest */
  allowDelete?: boolean
  /** unfinished uploads untouched this long are deleted (seconds) */
  uploadTtlSeconds?: number
  passwordChecks?: PasswordCheckOptions
}

export const DEFAULT_UPLOAD_TTL_SECONDS = 24 * 3600

/** A bcrypt hash as `htpasswd -B` writes it: version, cost 04-31, 22 characters of salt and 31 of hash. */
const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/
/** What Apache trims around an htpasswd line (isspace): a CRLF file's CR with it. */
const LINE_SPACE = /^[ \t\r\v\f]+|[ \t\r\v\f]+$/g

/** Read an htpasswd file; only bcrypt entries (`htpasswd -B`) are accepted. */
export async function readHtpasswd(file: string): Promise<Map<string, string>> {
  return parseHtpasswd(await readFile(file, 'utf8'), file)
}

/**
 * The users of an htpasswd file, read as Apache reads it: one `user:hash` a line, the user up to the
 * first `:`, blank lines and `#` comments skipped. Only bcrypt hashes are accepted. A message names
 * the line and the user, never the hash (nor a line that may be one).
 */
export function parseHtpasswd(text: string, file: string): Map<string, string> {
  const users = new Map<string, string>()
  const lines = text.replace(/^\ufeff/, '').split('\n')
  for (const [index, raw] of lines.entries()) {
    const line = raw.replaceAll(LINE_SPACE, '')
    if (line === '' || line.startsWith('#')) continue
    const colon = line.indexOf(':')
    const where = `${file}, line ${index + 1}`
    if (colon <= 0) throw new RegError(`${where}: not a "user:hash" entry`, 'write entries with `htpasswd -B`; comment lines start with #')
    const user = line.slice(0, colon)
    const hash = line.slice(colon + 1)
    if (!BCRYPT_HASH.test(hash)) throw new RegError(`${where}: the entry for ${quoted(user)} is not a bcrypt hash`, 'write it with `htpasswd -B`')
    if (users.has(user)) throw new RegError(`${where}: ${quoted(user)} has a second entry`, 'keep one line per user')
    users.set(user, hash)
  }
  return users
}

/** Upload ids are the UUIDs this server hands out; nothing else in the uploads area is one. */
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const UPLOAD_URL = /^v2\/(.+)\/blobs\/uploads\/([A-Za-z0-9-]*)$/
const MANIFEST_URL = /^v2\/(.+)\/manifests\/([^/]+)$/
const BY_DIGEST_URL = /^v2\/(.+)\/(blobs|manifests)\/(sha256:[a-f0-9]{64})$/

/** What a repository holds: content is `blob` (served from blobs/) or a `manifest` (served from both). */
type Kind = 'blob' | 'manifest'

export class PushHandler {
  private readonly store: BlobStore
  private readonly uploads: string
  /** per repository (by the sha256 of its name), an empty file per digest pushed or mounted into it */
  private readonly records: string
  private readonly checker?: PasswordChecker
  /** uploads receiving bytes right now: a second writer would interleave, and the purge leaves them alone */
  private readonly busy = new Set<string>()
  private readonly uploadTtlMs: number

  constructor(private readonly tree: TreeWriter, private readonly live: LiveTree, private readonly options: PushOptions = {}) {
    this.store = tree.store
    this.uploads = `${path.resolve(tree.dir)}.reg-uploads`
    this.records = path.join(this.uploads, 'repositories')
    if (options.users) this.checker = new PasswordChecker(options.users, options.passwordChecks)
    this.uploadTtlMs = (options.uploadTtlSeconds ?? DEFAULT_UPLOAD_TTL_SECONDS) * 1000
    // Abandoned uploads are purged at start and then regularly; the timer never keeps the process alive.
    this.purgeUploads().catch(() => undefined)
    setInterval(() => this.purgeUploads().catch(() => undefined), Math.min(Math.max(this.uploadTtlMs / 4, 1000), 15 * 60_000)).unref()
  }

  /** Basic auth for writes, when --push-auth names users. */
  private async authorize(req: http.IncomingMessage): Promise<CheckResult> {
    if (!this.checker) return 'ok'
    const header = String(req.headers.authorization ?? '')
    if (!header.startsWith('Basic ')) return 'denied'
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon <= 0) return 'denied'
    return this.checker.check(decoded.slice(0, colon), decoded.slice(colon + 1), req.socket.remoteAddress ?? '')
  }

  /** Handles push requests; false when the request is not one (the read-only server answers it). */
  async handle(req: http.IncomingMessage, res: http.ServerResponse, method: string, urlPath: string, url: URL): Promise<boolean> {
    const upload = UPLOAD_URL.exec(urlPath)
    // Clients decide from the /v2/ ping whether to send credentials at all (containers/image
    // never answers a later 401): with --push-auth, the ping challenges unless credentials came.
    // Upload sessions are part of a push: their status and cancellation need credentials too.
    const guarded = urlPath === 'v2/' || upload !== null || (method !== 'GET' && method !== 'HEAD')
    if (this.checker && guarded) {
      const verdict = await this.authorize(req)
      if (verdict !== 'ok') {
        req.resume()
        if (verdict === 'throttled') send(res, 429, {'Retry-After': 60, 'Cache-Control': 'no-store'}, errorBody('TOOMANYREQUESTS', 'too many failed logins from this address: try again later'))
        else send(res, 401, {'WWW-Authenticate': 'Basic realm="reg"', 'Cache-Control': 'no-store'}, errorBody('UNAUTHORIZED', 'authentication required to push'))
        return true
      }
    }
    const manifest = MANIFEST_URL.exec(urlPath)
    if (manifest && method === 'DELETE') {
      await this.deleteManifest(res, manifest[1], manifest[2])
      return true
    }
    if (upload) {
      const [, name, id] = upload
      validateName(name)
      if (method === 'POST' && !id) {
        await this.startUpload(req, res, name, url)
        return true
      }
      if (!id || !['PATCH', 'PUT', 'GET', 'DELETE'].includes(method)) {
        req.resume()
        fail(res, 405, 'UNSUPPORTED', `${method} is not supported here`)
        return true
      }
      // An upload belongs to the repository it was started in: through any other name it does not exist.
      if ((await this.uploadRepository(id)) !== name || (await this.size(id)) === undefined) {
        req.resume()
        fail(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry')
        return true
      }
      if (method === 'PATCH') await this.appendUpload(req, res, name, id)
      else if (method === 'PUT') await this.finishUpload(req, res, name, id, url)
      else if (method === 'GET') await this.uploadStatus(res, name, id)
      else {
        await this.removeUpload(id)
        send(res, 204)
      }
      return true
    }
    if (manifest && method === 'PUT') {
      await this.putManifest(req, res, manifest[1], manifest[2])
      return true
    }
    const byDigest = BY_DIGEST_URL.exec(urlPath)
    if (byDigest && (method === 'GET' || method === 'HEAD')) {
      // Pushed but not (or no longer) tagged: what the tree's index serves was answered before this.
      const [, name, where, digest] = byDigest
      if (where === 'manifests') return this.sendManifest(req, res, method, name, digest)
      if (!(await this.repositoryHas(name, digest, 'any')) || !(await this.store.has(digest))) return false
      await sendStoredBlob(req, res, method, this.store, digest)
      return true
    }
    return false
  }

  /**
   * A manifest by digest that was pushed into `name`: only content stored as a manifest is ever
   * read as one (a layer asked for as a manifest is unknown, and never read), and at most
   * MAX_MANIFEST_BYTES of it.
   */
  private async sendManifest(req: http.IncomingMessage, res: http.ServerResponse, method: string, name: string, digest: string): Promise<boolean> {
    if (!(await this.recorded(name, 'manifest', digest))) return false
    let raw: Buffer
    try {
      raw = await readFileBounded(this.store.pathOf(digest), MAX_MANIFEST_BYTES, `manifest ${digest}`)
    } catch (error) {
      if (errnoCode(error) === 'ENOENT' || error instanceof TooLargeError) return false
      throw error
    }
    sendManifestBytes(req, res, method, raw, {digest, mediaType: parseManifest(raw, digest).mediaType})
    return true
  }

  private recordFile(name: string, kind: Kind, digest: string): string {
    return path.join(this.records, createHash('sha256').update(name).digest('hex'), `${kind}s`, digestHex(digest))
  }

  /** Remember that `digest` was pushed or mounted into `name` (it survives restarts: a file). */
  private async record(name: string, kind: Kind, digest: string): Promise<void> {
    const file = this.recordFile(name, kind, digest)
    await mkdir(path.dirname(file), {recursive: true})
    await writeFile(file, '')
  }

  /** Forget that `digest` is in `name`; false when it was not recorded. */
  private async forget(name: string, kind: Kind, digest: string): Promise<boolean> {
    const file = this.recordFile(name, kind, digest)
    if (!(await this.recorded(name, kind, digest))) return false
    await rm(file, {force: true})
    return true
  }

  private async recorded(name: string, kind: Kind, digest: string): Promise<boolean> {
    try {
      await stat(this.recordFile(name, kind, digest))
      return true
    } catch (error) {
      if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return false
      throw error
    }
  }

  /**
   * Whether repository `name` references `digest`: a manifest of its tags reaches it, or it was
   * pushed or mounted into it. `manifest`: only as a manifest; `any`: as a blob or a manifest
   * (distribution serves manifests from blobs/ too).
   */
  private async repositoryHas(name: string, digest: string, as: 'manifest' | 'any'): Promise<boolean> {
    const tree = await this.live.current()
    if (tree.objectsByPath.has(`v2/${name}/manifests/${digest}`) || (await this.recorded(name, 'manifest', digest))) return true
    if (as === 'manifest') return false
    return Boolean(tree.objectsByPath.has(`v2/${name}/blobs/${digest}`)) || (await this.recorded(name, 'blob', digest))
  }

  private uploadFile(id: string): string {
    return path.join(this.uploads, id)
  }

  /** Beside each upload, the repository it was started in. */
  private repositoryFile(id: string): string {
    return path.join(this.uploads, `${id}.repository`)
  }

  private async uploadRepository(id: string): Promise<string | undefined> {
    if (!UPLOAD_ID.test(id)) return undefined
    try {
      return (await readFileBounded(this.repositoryFile(id), 1024, `upload ${id}`)).toString('utf8')
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return undefined
      throw error
    }
  }

  private async createUpload(name: string): Promise<string> {
    await mkdir(this.uploads, {recursive: true})
    const id = randomUUID()
    // The owner first: an upload file never exists without it.
    await writeFile(this.repositoryFile(id), name, {flag: 'wx'})
    await writeFile(this.uploadFile(id), '', {flag: 'wx'})
    return id
  }

  private async removeUpload(id: string): Promise<void> {
    await rm(this.uploadFile(id), {force: true})
    await rm(this.repositoryFile(id), {force: true})
  }

  /** Delete uploads nobody has written to for the TTL (with their owner files). */
  private async purgeUploads(): Promise<void> {
    let names: string[]
    try {
      names = await readdir(this.uploads)
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return
      throw error
    }
    const ids = new Set(names.map((n) => n.replace(/\.repository$/, '')).filter((id) => UPLOAD_ID.test(id)))
    const cutoff = Date.now() - this.uploadTtlMs
    for (const id of ids) {
      if (this.busy.has(id)) continue
      // An upload's age is that of its last bytes; the owner file only dates its start.
      const info = (await stat(this.uploadFile(id)).catch(() => undefined)) ?? (await stat(this.repositoryFile(id)).catch(() => undefined))
      if (info && info.mtimeMs < cutoff && !this.busy.has(id)) await this.removeUpload(id)
    }
  }

  private location(name: string, id: string): string {
    return `/v2/${name}/blobs/uploads/${id}`
  }

  private async startUpload(req: http.IncomingMessage, res: http.ServerResponse, name: string, url: URL): Promise<void> {
    const mount = url.searchParams.get('mount')
    const from = url.searchParams.get('from')
    // A mount only takes what the source repository references: knowing a digest is not reading it.
    if (mount && isDigest(mount) && from && (await this.repositoryHas(from, mount, 'any')) && (await this.store.has(mount))) {
      req.resume()
      await this.record(name, (await this.repositoryHas(from, mount, 'manifest')) ? 'manifest' : 'blob', mount)
      send(res, 201, {Location: `/v2/${name}/blobs/${mount}`, 'Docker-Content-Digest': mount})
      return
    }
    const id = await this.createUpload(name)
    this.busy.add(id)
    try {
      await pipeline(req, createWriteStream(this.uploadFile(id), {flags: 'a'}))
    } finally {
      this.busy.delete(id)
    }
    const digest = url.searchParams.get('digest')
    if (digest) {
      await this.commitBlob(res, name, id, digest)
      return
    }
    send(res, 202, {Location: this.location(name, id), 'Docker-Upload-UUID': id, Range: '0-0'})
  }

  private async size(id: string): Promise<number | undefined> {
    try {
      return (await stat(this.uploadFile(id))).size
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return undefined
      throw error
    }
  }

  private rangeHeader(size: number): string {
    return size > 0 ? `0-${size - 1}` : '0-0'
  }

  /**
   * Append a request's body to an upload. With `Content-Range: start-end` the chunk must start at
   * the upload's current size and be exactly end-start+1 bytes (by Content-Length, or counted):
   * otherwise nothing of it is kept and the answer is 416. Without one, the body is a stream.
   * False when an answer was sent.
   */
  private async receive(req: http.IncomingMessage, res: http.ServerResponse, name: string, id: string): Promise<boolean> {
    const size = await this.size(id)
    if (size === undefined) {
      req.resume()
      fail(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry')
      return false
    }
    const refuse = () => {
      req.resume()
      send(res, 416, {Location: this.location(name, id), Range: this.rangeHeader(size), 'Cache-Control': 'no-store'})
      return false
    }
    // One writer at a time: a second chunk now could not start where the first one ends.
    if (this.busy.has(id)) return refuse()
    const contentRange = req.headers['content-range']
    let expected: number | undefined
    if (contentRange !== undefined) {
      const range = parseContentRange(contentRange)
      if (range === 'invalid') {
        req.resume()
        fail(res, 400, 'BLOB_UPLOAD_INVALID', 'Content-Range must be "start-end" (byte offsets of the chunk in the upload)')
        return false
      }
      const {start, end} = range
      const length = req.headers['content-length']
      if (start !== size || end < start || (length !== undefined && Number(length) !== end - start + 1)) return refuse()
      expected = end - start + 1
    }
    this.busy.add(id)
    try {
      let received = 0
      const counted = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          received += chunk.length
          // Bytes past the announced end are counted (to refuse the chunk) but never written.
          const room = expected === undefined ? chunk.length : Math.max(0, expected - (received - chunk.length))
          callback(null, room >= chunk.length ? chunk : chunk.subarray(0, room))
        },
      })
      try {
        await pipeline(req, counted, createWriteStream(this.uploadFile(id), {flags: 'a'}))
      } catch (error) {
        // A chunk with a range is all or nothing.
        if (expected !== undefined) await truncate(this.uploadFile(id), size).catch(() => undefined)
        throw error
      }
      if (expected !== undefined && received !== expected) {
        await truncate(this.uploadFile(id), size).catch(() => undefined)
        return refuse()
      }
      return true
    } finally {
      this.busy.delete(id)
    }
  }

  private async appendUpload(req: http.IncomingMessage, res: http.ServerResponse, name: string, id: string): Promise<void> {
    if (!(await this.receive(req, res, name, id))) return
    const now = (await this.size(id)) ?? 0
    send(res, 202, {Location: this.location(name, id), 'Docker-Upload-UUID': id, Range: `0-${Math.max(0, now - 1)}`})
  }

  private async uploadStatus(res: http.ServerResponse, name: string, id: string): Promise<void> {
    const size = await this.size(id)
    if (size === undefined) fail(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry')
    else send(res, 204, {Location: this.location(name, id), 'Docker-Upload-UUID': id, Range: `0-${Math.max(0, size - 1)}`})
  }

  private async finishUpload(req: http.IncomingMessage, res: http.ServerResponse, name: string, id: string, url: URL): Promise<void> {
    if (!(await this.receive(req, res, name, id))) return
    await this.commitBlob(res, name, id, url.searchParams.get('digest') ?? '')
  }

  /** Verify the upload against its digest and move it into the store (atomically: temp file, rename). */
  private async commitBlob(res: http.ServerResponse, name: string, id: string, digest: string): Promise<void> {
    const file = this.uploadFile(id)
    this.busy.add(id)
    try {
      if (!isDigest(digest)) {
        fail(res, 400, 'DIGEST_INVALID', `a sha256 digest is required, got "${digest}"`)
        return
      }
      const size = (await stat(file)).size
      try {
        await this.store.ingest(createReadStream(file), {digest, size, label: `upload ${id}`})
      } catch (error) {
        fail(res, 400, 'DIGEST_INVALID', (error as Error).message)
        return
      }
      await this.record(name, 'blob', digest)
      send(res, 201, {Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest})
    } finally {
      this.busy.delete(id)
      await this.removeUpload(id)
    }
  }

  /**
   * Whether a manifest of `name` may reference `child`: the repository references it (as a
   * manifest, for an index's children), and the descriptor's size is the stored object's — a
   * descriptor never redefines what stored content is. An error message, or undefined.
   */
  private async refusal(name: string, child: Descriptor, as: 'manifest' | 'any'): Promise<{code: string; message: string} | undefined> {
    const what = as === 'manifest' ? 'manifest' : 'blob'
    let stored: number
    try {
      stored = (await stat(this.store.pathOf(child.digest))).size
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error
      return {code: 'MANIFEST_BLOB_UNKNOWN', message: `${what} ${child.digest} is not in the registry: push it first`}
    }
    if (!(await this.repositoryHas(name, child.digest, as))) {
      return {code: 'MANIFEST_BLOB_UNKNOWN', message: `${what} ${child.digest} is not in ${name}: push it there first (or mount it from a repository that has it)`}
    }
    if (stored !== child.size) {
      return {code: 'SIZE_INVALID', message: `${what} ${child.digest} is ${stored} bytes, the manifest says ${child.size}`}
    }
    return undefined
  }

  private async putManifest(req: http.IncomingMessage, res: http.ServerResponse, name: string, reference: string): Promise<void> {
    validateName(name)
    // Manifests are small documents: read at most MAX_MANIFEST_BYTES, never a layer's worth.
    const chunks: Buffer[] = []
    let received = 0
    for await (const chunk of req) {
      received += (chunk as Buffer).length
      if (received > MAX_MANIFEST_BYTES) {
        // Answer, then drop the connection instead of reading the rest.
        res.once('finish', () => req.destroy())
        send(res, 413, {'Cache-Control': 'no-store', Connection: 'close'}, errorBody('MANIFEST_INVALID', `a manifest is at most ${MAX_MANIFEST_BYTES} bytes`))
        return
      }
      chunks.push(chunk as Buffer)
    }
    const raw = Buffer.concat(chunks)
    const digest = sha256(raw)
    let manifest
    try {
      if (isDigest(reference)) verifyBytes(raw, {digest: reference, label: `manifest ${reference}`})
      else validateTag(reference, name)
      manifest = parseManifest(raw, `manifest for ${name}:${reference}`, req.headers['content-type']?.split(';')[0])
    } catch (error) {
      fail(res, 400, 'MANIFEST_INVALID', (error as Error).message)
      return
    }
    const children = new Map<string, Descriptor>()
    const referenced = manifest.kind === 'index' ? manifest.manifests : [manifest.config, ...manifest.layers]
    for (const child of referenced) {
      const seen = children.get(child.digest)
      if (seen && seen.size !== child.size) {
        fail(res, 400, 'SIZE_INVALID', `${child.digest} is listed twice, as ${seen.size} and as ${child.size} bytes`)
        return
      }
      children.set(child.digest, child)
    }
    if (children.size > MAX_GRAPH_NODES) {
      fail(res, 400, 'MANIFEST_INVALID', `the manifest references ${children.size} objects, more than the ${MAX_GRAPH_NODES} reg accepts`)
      return
    }
    for (const child of children.values()) {
      const refused = await this.refusal(name, child, manifest.kind === 'index' ? 'manifest' : 'any')
      if (refused) {
        fail(res, 400, refused.code, refused.message)
        return
      }
    }
    await this.store.writeBytes(raw)
    // The tree publishes what arrives, by tag or untagged (by digest): ingest (verifying the whole
    // graph) and rewrite the index, once.
    const descriptor = {mediaType: manifest.mediaType, digest, size: raw.length}
    try {
      if (isDigest(reference)) await this.tree.publishUntagged(name, descriptor)
      else await this.tree.publishTag(name, reference, descriptor)
    } catch (error) {
      fail(res, 400, 'MANIFEST_INVALID', error instanceof RegError ? error.message : String(error))
      return
    }
    // After its tag is deleted the repository still serves it by digest, as a manifest.
    await this.record(name, 'manifest', digest)
    // The subject was processed: it is listed by the referrers API from now on.
    const subject: Record<string, string> = manifest.subject ? {'OCI-Subject': manifest.subject.digest} : {}
    send(res, 201, {Location: `/v2/${name}/manifests/${digest}`, 'Docker-Content-Digest': digest, ...subject})
  }

  /**
   * DELETE of a tag removes the tag. DELETE by digest removes the manifest from the repository:
   * every tag pointing at it, its untagged entry and the record of its push; the repository then
   * answers 404 for it (other repositories keep theirs). A manifest an index of the repository
   * still lists is refused (409 DENIED): delete the index first.
   */
  private async deleteManifest(res: http.ServerResponse, name: string, reference: string): Promise<void> {
    if (!this.options.allowDelete) {
      fail(res, 405, 'UNSUPPORTED', 'deleting is off: start reg serve with --allow-delete')
      return
    }
    validateName(name)
    if (!isDigest(reference)) {
      if (await this.tree.deleteTag(name, reference)) send(res, 202)
      else fail(res, 404, 'MANIFEST_UNKNOWN', `${name}:${reference} is not a tag`)
      return
    }
    const deletion = await this.tree.deleteManifest(name, reference)
    if (deletion.outcome === 'referenced') {
      fail(res, 409, 'DENIED', `${reference} is listed by ${deletion.by}, which ${name} keeps: delete that index first`)
      return
    }
    const forgotten = await this.forget(name, 'manifest', reference)
    if (deletion.outcome === 'deleted' || forgotten) send(res, 202)
    else fail(res, 404, 'MANIFEST_UNKNOWN', `${name} has no manifest ${reference}`)
  }
}
