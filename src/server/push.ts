import {randomUUID} from 'node:crypto'
import bcrypt from 'bcryptjs'
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdir, readFile, rm, stat} from 'node:fs/promises'
import type http from 'node:http'
import path from 'node:path'
import {pipeline} from 'node:stream/promises'
import {errorBody} from '../core/api-errors.js'
import {isDigest, sha256, verifyBytes} from '../core/digest.js'
import {errnoCode, RegError} from '../core/errors.js'
import {parseManifest} from '../core/manifest.js'
import {validateName, validateTag} from '../core/reference.js'
import type {BlobStore} from '../tree/blob-store.js'
import {API_VERSION_HEADER} from '../tree/objects.js'
import {sendManifestBytes, sendStoredBlob} from './respond.js'
import type {TreeWriter} from './tree-writer.js'

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024

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
 * manifests by digest and by tag. A tag becomes visible only when everything it references is in
 * the store; the tree's index is rewritten atomically, and `reg serve` picks it up.
 */
export interface PushOptions {
  /** htpasswd entries (bcrypt) allowed to push; reads stay anonymous */
  users?: ReadonlyMap<string, string>
  /** accept DELETE of tags */
  allowDelete?: boolean
}

/** Read an htpasswd file; only bcrypt entries (`htpasswd -B`) are accepted. */
export async function readHtpasswd(file: string): Promise<Map<string, string>> {
  const users = new Map<string, string>()
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    const [user, hash] = line.trim().split(':')
    if (!user || !hash) continue
    if (!/^\$2[aby]\$/.test(hash)) throw new RegError(`${file}: the entry for ${user} is not bcrypt`, 'write it with `htpasswd -B`')
    users.set(user, hash)
  }
  return users
}

export class PushHandler {
  private readonly store: BlobStore
  private readonly uploads: string

  constructor(private readonly tree: TreeWriter, private readonly options: PushOptions = {}) {
    this.store = tree.store
    this.uploads = `${path.resolve(tree.dir)}.reg-uploads`
  }

  /** Basic auth for writes, when --push-auth names users. */
  private async authorized(req: http.IncomingMessage): Promise<boolean> {
    if (!this.options.users) return true
    const header = String(req.headers.authorization ?? '')
    if (!header.startsWith('Basic ')) return false
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    const hash = this.options.users.get(decoded.slice(0, colon))
    return hash !== undefined && colon > 0 && bcrypt.compare(decoded.slice(colon + 1), hash)
  }

  /** Handles push requests; false when the request is not one (the read-only server answers it). */
  async handle(req: http.IncomingMessage, res: http.ServerResponse, method: string, urlPath: string, url: URL): Promise<boolean> {
    // Clients decide from the /v2/ ping whether to send credentials at all (containers/image
    // never answers a later 401): with --push-auth, the ping challenges unless credentials came.
    const ping = urlPath === 'v2/' && this.options.users !== undefined
    if ((ping || (method !== 'GET' && method !== 'HEAD')) && !(await this.authorized(req))) {
      req.resume()
      send(res, 401, {'WWW-Authenticate': 'Basic realm="reg"', 'Cache-Control': 'no-store'}, errorBody('UNAUTHORIZED', 'authentication required to push'))
      return true
    }
    const tagged = /^v2\/(.+)\/manifests\/([^/]+)$/.exec(urlPath)
    if (tagged && method === 'DELETE') {
      await this.deleteTag(res, tagged[1], tagged[2])
      return true
    }
    const upload = /^v2\/(.+)\/blobs\/uploads\/([A-Za-z0-9-]*)$/.exec(urlPath)
    if (upload) {
      const [, name, id] = upload
      validateName(name)
      if (method === 'POST' && !id) await this.startUpload(req, res, name, url)
      else if (method === 'PATCH' && id) await this.appendUpload(req, res, name, id)
      else if (method === 'PUT' && id) await this.finishUpload(req, res, name, id, url)
      else if (method === 'GET' && id) await this.uploadStatus(res, name, id)
      else if (method === 'DELETE' && id) {
        await rm(this.uploadFile(id), {force: true})
        send(res, 204)
      } else fail(res, 405, 'UNSUPPORTED', `${method} is not supported here`)
      return true
    }
    const manifest = /^v2\/(.+)\/manifests\/([^/]+)$/.exec(urlPath)
    if (manifest && method === 'PUT') {
      await this.putManifest(req, res, manifest[1], manifest[2])
      return true
    }
    const blob = /^v2\/(.+)\/(blobs|manifests)\/(sha256:[a-f0-9]{64})$/.exec(urlPath)
    if (blob && (method === 'GET' || method === 'HEAD') && (await this.store.has(blob[3]))) {
      // Pushed but not yet tagged: clients check what exists before uploading it again.
      if (blob[2] === 'manifests') {
        const raw = await readFile(this.store.pathOf(blob[3]))
        sendManifestBytes(req, res, method, raw, {digest: blob[3], mediaType: parseManifest(raw, blob[3]).mediaType})
      } else {
        await sendStoredBlob(req, res, method, this.store, blob[3])
      }
      return true
    }
    return false
  }

  private uploadFile(id: string): string {
    return path.join(this.uploads, id)
  }

  private location(name: string, id: string): string {
    return `/v2/${name}/blobs/uploads/${id}`
  }

  private async startUpload(req: http.IncomingMessage, res: http.ServerResponse, name: string, url: URL): Promise<void> {
    const mount = url.searchParams.get('mount')
    if (mount && isDigest(mount) && (await this.store.has(mount))) {
      req.resume()
      send(res, 201, {Location: `/v2/${name}/blobs/${mount}`, 'Docker-Content-Digest': mount})
      return
    }
    await mkdir(this.uploads, {recursive: true})
    const id = randomUUID()
    await pipeline(req, createWriteStream(this.uploadFile(id)))
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

  private async appendUpload(req: http.IncomingMessage, res: http.ServerResponse, name: string, id: string): Promise<void> {
    const size = await this.size(id)
    if (size === undefined) {
      req.resume()
      fail(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry')
      return
    }
    const range = /^(\d+)-(\d+)$/.exec(String(req.headers['content-range'] ?? ''))
    if (range && Number(range[1]) !== size) {
      req.resume()
      send(res, 416, {Location: this.location(name, id), Range: size > 0 ? `0-${size - 1}` : '0-0'})
      return
    }
    await pipeline(req, createWriteStream(this.uploadFile(id), {flags: 'a'}))
    const now = (await this.size(id)) ?? 0
    send(res, 202, {Location: this.location(name, id), 'Docker-Upload-UUID': id, Range: `0-${Math.max(0, now - 1)}`})
  }

  private async uploadStatus(res: http.ServerResponse, name: string, id: string): Promise<void> {
    const size = await this.size(id)
    if (size === undefined) fail(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry')
    else send(res, 204, {Location: this.location(name, id), 'Docker-Upload-UUID': id, Range: `0-${Math.max(0, size - 1)}`})
  }

  private async finishUpload(req: http.IncomingMessage, res: http.ServerResponse, name: string, id: string, url: URL): Promise<void> {
    if ((await this.size(id)) === undefined) {
      req.resume()
      fail(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry')
      return
    }
    await pipeline(req, createWriteStream(this.uploadFile(id), {flags: 'a'}))
    await this.commitBlob(res, name, id, url.searchParams.get('digest') ?? '')
  }

  /** Verify the upload against its digest and move it into the store (atomically: temp file, rename). */
  private async commitBlob(res: http.ServerResponse, name: string, id: string, digest: string): Promise<void> {
    const file = this.uploadFile(id)
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
      send(res, 201, {Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest})
    } finally {
      await rm(file, {force: true})
    }
  }

  private async putManifest(req: http.IncomingMessage, res: http.ServerResponse, name: string, reference: string): Promise<void> {
    validateName(name)
    // Manifests are small documents: read at most 4 MiB (distribution's limit), never a layer's worth.
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
    const referenced = manifest.kind === 'index' ? manifest.manifests : [manifest.config, ...manifest.layers]
    for (const child of referenced) {
      if (!(await this.store.has(child.digest))) {
        fail(res, 400, 'MANIFEST_BLOB_UNKNOWN', `${child.digest} is not in the registry: push it first`)
        return
      }
    }
    await this.store.writeBytes(raw)
    if (!isDigest(reference)) {
      // Tags are what the tree publishes: ingest (verifying the whole graph) and rewrite the index.
      try {
        await this.tree.publishTag(name, reference, {mediaType: manifest.mediaType, digest, size: raw.length})
      } catch (error) {
        fail(res, 400, 'MANIFEST_INVALID', error instanceof RegError ? error.message : String(error))
        return
      }
    }
    send(res, 201, {Location: `/v2/${name}/manifests/${digest}`, 'Docker-Content-Digest': digest})
  }

  /** A tag, or by digest every tag of the repository that points at it (what `skopeo delete` sends). */
  private async deleteTag(res: http.ServerResponse, name: string, tag: string): Promise<void> {
    if (!this.options.allowDelete) {
      fail(res, 405, 'UNSUPPORTED', 'deleting is off: start reg serve with --allow-delete')
      return
    }
    if (await this.tree.deleteTag(name, tag)) send(res, 202)
    else fail(res, 404, 'MANIFEST_UNKNOWN', isDigest(tag) ? `no tag of ${name} points at ${tag}` : `${name}:${tag} is not a tag`)
  }
}
