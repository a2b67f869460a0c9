import {createHash, randomUUID} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdir, readdir, readFile, rm, stat, truncate, writeFile} from 'node:fs/promises'
import type http from 'node:http'
import path from 'node:path'
import {Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {HttpError, httpErrorOf} from '../core/api-errors.js'
import {digestHex, isDigest, sha256, verifyBytes} from '../core/digest.js'
import {errnoCode, RegError} from '../core/errors.js'
import {MAX_DOCUMENT_BYTES, MAX_GRAPH_NODES, MAX_MANIFEST_BYTES, readFileBounded, TooLargeError} from '../core/limits.js'
import {type Descriptor, parseManifest} from '../core/manifest.js'
import {quoted} from '../core/quote.js'
import {validateTag} from '../core/reference.js'
import type {BlobStore} from '../tree/blob-store.js'
import {type CheckResult, type PasswordCheckOptions, PasswordChecker} from './push-auth.js'
import {parseContentRange, sendManifestBytes, sendStatus, sendStoredBlob} from './respond.js'
import {type Handler, repositoryOf, type Route} from './routes.js'
import type {LiveTree} from './live-tree.js'
import type {TreeWriter} from './tree-writer.js'

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

/**
 * Read an htpasswd file (bounded: it is small; a huge file or a FIFO is refused, not read whole);
 * only bcrypt entries (`htpasswd -B`) are accepted. `flag` names the option in messages.
 */
export async function readHtpasswd(file: string, flag = '--push-auth'): Promise<Map<string, string>> {
  let text: string
  try {
    text = (await readFileBounded(file, MAX_DOCUMENT_BYTES, `${flag} ${file}`)).toString('utf8')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') throw new RegError(`${flag} ${file}: no such file`, 'create it with `htpasswd -B -c FILE USER` (bcrypt)')
    throw error
  }
  return parseHtpasswd(text, file)
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

/**
 * A manifest's body: small documents, read to at most MAX_MANIFEST_BYTES, never a layer's worth.
 * One that goes over is refused unread, and its connection ends with the answer.
 */
async function readManifestBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  let received = 0
  // Not destroyed on the way out: the answer must still reach the client.
  for await (const chunk of req.iterator({destroyOnReturn: false})) {
    received += (chunk as Buffer).length
    if (received > MAX_MANIFEST_BYTES) throw new HttpError(413, 'MANIFEST_INVALID', `a manifest is at most ${MAX_MANIFEST_BYTES} bytes`, {closeConnection: true})
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

/** Upload ids are the UUIDs this server hands out; nothing else in the uploads area is one. */
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const UPLOAD_UNKNOWN = 'blob upload unknown to registry'

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

  /** Basic auth for pushes, when --push-auth names users: refused with 401 (or 429 to an address that failed too often). */
  async authorize(req: http.IncomingMessage): Promise<void> {
    const verdict = await this.check(req)
    if (verdict === 'throttled') throw new HttpError(429, 'TOOMANYREQUESTS', 'too many failed logins from this address: try again later', {headers: {'Retry-After': 60}})
    if (verdict === 'denied') throw new HttpError(401, 'UNAUTHORIZED', 'authentication required to push', {headers: {'WWW-Authenticate': 'Basic realm="reg"'}})
  }

  private async check(req: http.IncomingMessage): Promise<CheckResult> {
    if (!this.checker) return 'ok'
    const header = String(req.headers.authorization ?? '')
    if (!header.startsWith('Basic ')) return 'denied'
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon <= 0) return 'denied'
    return this.checker.check(decoded.slice(0, colon), decoded.slice(colon + 1), req.socket.remoteAddress ?? '')
  }

  // ---- handlers, as the routing table holds them (fields: arrow functions)

  /** POST of the upload class: a mount, a single-request upload (`?digest=`), or a session started. */
  readonly startUpload: Handler = async ({req, res, route, url}) => {
    const name = repositoryOf(route)
    const mount = url.searchParams.get('mount')
    const from = url.searchParams.get('from')
    // A mount only takes what the source repository references: knowing a digest is not reading it.
    if (mount && isDigest(mount) && from && (await this.repositoryHas(from, mount, 'any')) && (await this.store.has(mount))) {
      req.resume()
      await this.record(name, (await this.repositoryHas(from, mount, 'manifest')) ? 'manifest' : 'blob', mount)
      sendStatus(res, 201, {Location: `/v2/${name}/blobs/${mount}`, 'Docker-Content-Digest': mount})
      return true
    }
    const id = await this.createUpload(name)
    this.busy.add(id)
    try {
      await pipeline(req, createWriteStream(this.uploadFile(id), {flags: 'a'}))
    } finally {
      this.busy.delete(id)
    }
    const digest = url.searchParams.get('digest')
    if (digest) await this.commitBlob(res, name, id, digest)
    else sendStatus(res, 202, {Location: this.location(name, id), 'Docker-Upload-UUID': id, Range: '0-0'})
    return true
  }

  readonly appendUpload: Handler = async ({req, res, route}) => {
    const {name, id} = await this.session(route)
    await this.receive(req, name, id)
    const now = (await this.size(id)) ?? 0
    sendStatus(res, 202, {Location: this.location(name, id), 'Docker-Upload-UUID': id, Range: `0-${Math.max(0, now - 1)}`})
    return true
  }

  readonly finishUpload: Handler = async ({req, res, route, url}) => {
    const {name, id} = await this.session(route)
    await this.receive(req, name, id)
    await this.commitBlob(res, name, id, url.searchParams.get('digest') ?? '')
    return true
  }

  readonly uploadStatus: Handler = async ({res, route}) => {
    const {name, id} = await this.session(route)
    const size = await this.size(id)
    if (size === undefined) throw new HttpError(404, 'BLOB_UPLOAD_UNKNOWN', UPLOAD_UNKNOWN)
    sendStatus(res, 204, {Location: this.location(name, id), 'Docker-Upload-UUID': id, Range: `0-${Math.max(0, size - 1)}`})
    return true
  }

  readonly cancelUpload: Handler = async ({res, route}) => {
    const {id} = await this.session(route)
    await this.removeUpload(id)
    sendStatus(res, 204)
    return true
  }

  readonly putManifest: Handler = async ({req, res, route}) => {
    const name = repositoryOf(route)
    const reference = route.reference ?? ''
    const raw = await readManifestBody(req)
    const digest = sha256(raw)
    let manifest
    try {
      if (isDigest(reference)) verifyBytes(raw, {digest: reference, label: `manifest ${reference}`})
      else validateTag(reference, name)
      manifest = parseManifest(raw, `manifest for ${name}:${reference}`, req.headers['content-type']?.split(';')[0])
    } catch (error) {
      // what this body is not: a manifest for this reference
      if (error instanceof RegError) throw new HttpError(400, 'MANIFEST_INVALID', error.message)
      throw error
    }
    const children = new Map<string, Descriptor>()
    const referenced = manifest.kind === 'index' ? manifest.manifests : [manifest.config, ...manifest.layers]
    for (const child of referenced) {
      const seen = children.get(child.digest)
      if (seen && seen.size !== child.size) throw new HttpError(400, 'SIZE_INVALID', `${child.digest} is listed twice, as ${seen.size} and as ${child.size} bytes`)
      children.set(child.digest, child)
    }
    if (children.size > MAX_GRAPH_NODES) throw new HttpError(400, 'MANIFEST_INVALID', `the manifest references ${children.size} objects, more than the ${MAX_GRAPH_NODES} reg accepts`)
    for (const child of children.values()) await this.checkChild(name, child, manifest.kind === 'index' ? 'manifest' : 'any')
    await this.store.writeBytes(raw)
    // The tree publishes what arrives, by tag or untagged (by digest): ingest (verifying the whole
    // graph) and rewrite the index, once. What the graph is refused for is the manifest's fault.
    const descriptor = {mediaType: manifest.mediaType, digest, size: raw.length}
    try {
      if (isDigest(reference)) await this.tree.publishUntagged(name, descriptor)
      else await this.tree.publishTag(name, reference, descriptor)
    } catch (error) {
      throw httpErrorOf(error) ?? (error instanceof RegError ? new HttpError(400, 'MANIFEST_INVALID', error.message) : error)
    }
    // After its tag is deleted the repository still serves it by digest, as a manifest.
    await this.record(name, 'manifest', digest)
    // The subject was processed: it is listed by the referrers API from now on.
    const subject: Record<string, string> = manifest.subject ? {'OCI-Subject': manifest.subject.digest} : {}
    sendStatus(res, 201, {Location: `/v2/${name}/manifests/${digest}`, 'Docker-Content-Digest': digest, ...subject})
    return true
  }

  /**
   * DELETE of a tag removes the tag. DELETE by digest removes the manifest from the repository:
   * every tag pointing at it, its untagged entry and the record of its push; the repository then
   * answers 404 for it (other repositories keep theirs). A manifest an index of the repository
   * still lists is refused (409 DENIED): delete the index first.
   */
  readonly deleteManifest: Handler = async ({res, route}) => {
    if (!this.options.allowDelete) throw new HttpError(405, 'UNSUPPORTED', 'deleting is off: start reg serve with --allow-delete')
    const name = repositoryOf(route)
    const reference = route.reference ?? ''
    if (!isDigest(reference)) {
      if (!(await this.tree.deleteTag(name, reference))) throw new HttpError(404, 'MANIFEST_UNKNOWN', `${name}:${reference} is not a tag`)
      sendStatus(res, 202)
      return true
    }
    const deletion = await this.tree.deleteManifest(name, reference)
    if (deletion.outcome === 'referenced') throw new HttpError(409, 'DENIED', `${reference} is listed by ${deletion.by}, which ${name} keeps: delete that index first`)
    const forgotten = await this.forget(name, 'manifest', reference)
    if (deletion.outcome !== 'deleted' && !forgotten) throw new HttpError(404, 'MANIFEST_UNKNOWN', `${name} has no manifest ${reference}`)
    sendStatus(res, 202)
    return true
  }

  /** A manifest pushed by digest into the repository, and not (or no longer) named by the tree's index. */
  readonly storedManifest: Handler = async ({req, res, method, route}) => {
    const digest = route.reference ?? ''
    return isDigest(digest) && this.sendManifest(req, res, method, route.name ?? '', digest)
  }

  /** A blob pushed or mounted into the repository (or reached by its manifests), not (yet) named by the tree's index. */
  readonly storedBlob: Handler = async ({req, res, method, route}) => {
    const digest = route.reference ?? ''
    if (!isDigest(digest) || !(await this.repositoryHas(route.name ?? '', digest, 'any')) || !(await this.store.has(digest))) return false
    await sendStoredBlob(req, res, method, this.store, digest)
    return true
  }

  /** The upload session a URL names. An upload belongs to the repository it was started in: through any other name it does not exist. */
  private async session(route: Route): Promise<{name: string; id: string}> {
    const name = repositoryOf(route)
    const id = route.reference ?? ''
    if ((await this.uploadRepository(id)) !== name || (await this.size(id)) === undefined) throw new HttpError(404, 'BLOB_UPLOAD_UNKNOWN', UPLOAD_UNKNOWN)
    return {name, id}
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
   */
  private async receive(req: http.IncomingMessage, name: string, id: string): Promise<void> {
    const size = await this.size(id)
    if (size === undefined) throw new HttpError(404, 'BLOB_UPLOAD_UNKNOWN', UPLOAD_UNKNOWN)
    const outOfOrder = () => new HttpError(416, 'BLOB_UPLOAD_INVALID', 'a chunk must start where the upload ends, and be as long as its Content-Range says', {
      headers: {Location: this.location(name, id), Range: this.rangeHeader(size)},
    })
    // One writer at a time: a second chunk now could not start where the first one ends.
    if (this.busy.has(id)) throw outOfOrder()
    const contentRange = req.headers['content-range']
    let expected: number | undefined
    if (contentRange !== undefined) {
      const range = parseContentRange(contentRange)
      if (range === 'invalid') throw new HttpError(400, 'BLOB_UPLOAD_INVALID', 'Content-Range must be "start-end" (byte offsets of the chunk in the upload)')
      const {start, end} = range
      const length = req.headers['content-length']
      if (start !== size || end < start || (length !== undefined && Number(length) !== end - start + 1)) throw outOfOrder()
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
        throw outOfOrder()
      }
    } finally {
      this.busy.delete(id)
    }
  }

  /** Verify the upload against its digest and move it into the store (atomically: temp file, rename). */
  private async commitBlob(res: http.ServerResponse, name: string, id: string, digest: string): Promise<void> {
    const file = this.uploadFile(id)
    this.busy.add(id)
    try {
      if (!isDigest(digest)) throw new HttpError(400, 'DIGEST_INVALID', `a sha256 digest is required, got ${quoted(digest)}`)
      const size = (await stat(file)).size
      // bytes that are not the digest's: DIGEST_MISMATCH, answered DIGEST_INVALID
      await this.store.ingest(createReadStream(file), {digest, size, label: `upload ${id}`})
      await this.record(name, 'blob', digest)
      sendStatus(res, 201, {Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest})
    } finally {
      this.busy.delete(id)
      await this.removeUpload(id)
    }
  }

  /**
   * A manifest of `name` may reference `child` when the repository references it (as a manifest,
   * for an index's children) and the descriptor's size is the stored object's: a descriptor never
   * redefines what stored content is.
   */
  private async checkChild(name: string, child: Descriptor, as: 'manifest' | 'any'): Promise<void> {
    const what = as === 'manifest' ? 'manifest' : 'blob'
    let stored: number
    try {
      stored = (await stat(this.store.pathOf(child.digest))).size
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error
      throw new HttpError(400, 'MANIFEST_BLOB_UNKNOWN', `${what} ${child.digest} is not in the registry: push it first`)
    }
    if (!(await this.repositoryHas(name, child.digest, as))) {
      throw new HttpError(400, 'MANIFEST_BLOB_UNKNOWN', `${what} ${child.digest} is not in ${name}: push it there first (or mount it from a repository that has it)`)
    }
    if (stored !== child.size) throw new HttpError(400, 'SIZE_INVALID', `${what} ${child.digest} is ${stored} bytes, the manifest says ${child.size}`)
  }
}
