import {createReadStream} from 'node:fs'
import http from 'node:http'
import {errorBody, notFoundError, UNSUPPORTED_MESSAGE} from '../core/api-errors.js'
import {RegError} from '../core/errors.js'
import {MAX_FILTERED_REFERRERS_BYTES, readFileBounded} from '../core/limits.js'
import {MediaType} from '../core/media-types.js'
import {validateName} from '../core/reference.js'
import type {RegistryObject} from '../tree/model.js'
import {API_VERSION_HEADER} from '../tree/objects.js'
import {RegistryTree} from '../tree/registry-tree.js'
import {LiveTree} from './live-tree.js'
import {ProxyHandler, type ProxyOptions} from './proxy.js'
import {PushHandler, type PushOptions} from './push.js'
import {sendError, sendJson, sendObject} from './respond.js'
import {TreeWriter} from './tree-writer.js'

/** `v2/<name>/referrers/<digest>`: the last segment is checked as a digest, so a malformed one is a 400, not a 404. */
const REFERRERS_URL = /^v2\/(.+)\/referrers\/([^/]*)$/

/** The encoded part of the registered digest algorithms; others are taken as the spec's grammar allows. */
const DIGEST_ENCODINGS = new Map([['sha256', /^[a-f0-9]{64}$/], ['sha512', /^[a-f0-9]{128}$/]])

/** A digest as the distribution spec writes one: `algorithm:encoded`. */
function isWellFormedDigest(value: string): boolean {
  const match = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(value)
  return match !== null && (DIGEST_ENCODINGS.get(match[1])?.test(match[2]) ?? true)
}

/**
 * Answers exactly the static registry's URL space (DESIGN §3) from a tree: what every backend must
 * reproduce. Reloads the tree when a rebuild swapped it in.
 */
export class RegistryServer {
  constructor(private readonly live: LiveTree, private readonly push?: PushHandler, private readonly proxy?: ProxyHandler) {}

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://registry.invalid')
    let urlPath: string
    try {
      urlPath = decodeURIComponent(url.pathname).replace(/^\/+/, '')
    } catch {
      urlPath = url.pathname
    }
    const method = req.method ?? 'GET'
    const proxied = this.proxy?.owner(urlPath)
    if (proxied && method !== 'GET' && method !== 'HEAD') {
      sendError(res, 405, 'UNSUPPORTED', `${proxied.name}/ is a pull-through proxy of ${proxied.host}: read-only`, {Allow: 'GET, HEAD'})
      return
    }
    if (this.push && method !== 'GET' && method !== 'HEAD' && (await this.push.handle(req, res, method, urlPath, url))) return
    if (method !== 'GET' && method !== 'HEAD') {
      sendError(res, 405, 'UNSUPPORTED', UNSUPPORTED_MESSAGE, {Allow: 'GET, HEAD'})
      return
    }
    if (urlPath === 'v2') {
      res.writeHead(301, {Location: '/v2/' + url.search, ...API_VERSION_HEADER, 'Content-Length': '0'}).end()
      return
    }
    if (urlPath === 'v2/' && this.push && (await this.push.handle(req, res, method, urlPath, url))) return
    const tree = await this.live.current()
    if (proxied && (await this.proxy!.handle(req, res, method, urlPath, url, tree))) return
    const referrers = REFERRERS_URL.exec(urlPath)
    if (referrers) {
      await this.sendReferrers(req, res, method, tree, referrers[1], referrers[2], url)
      return
    }
    const object = tree.objectsByPath.get(urlPath)
    if (object) {
      if (object.class === 'tags-list' && (url.searchParams.has('n') || url.searchParams.has('last'))) {
        this.sendTagsPage(res, method, tree, object, url)
        return
      }
      this.sendObject(req, res, method, tree, object)
      return
    }
    if (this.push && (await this.push.handle(req, res, method, urlPath, url))) return
    const {code, message} = urlPath.startsWith('v2/') ? notFoundError(urlPath) : notFoundError('')
    sendError(res, 404, code, message)
  }

  /**
   * The referrers API: the tree's referrers document of the subject, else an empty index — never a
   * 404, for an unknown subject or repository alike. `?artifactType=` keeps the entries of that
   * artifact type and says so (`OCI-Filters-Applied`).
   */
  private async sendReferrers(req: http.IncomingMessage, res: http.ServerResponse, method: string, tree: RegistryTree, name: string, digest: string, url: URL): Promise<void> {
    validateName(name)
    if (!isWellFormedDigest(digest)) {
      sendError(res, 400, 'DIGEST_INVALID', 'the referrers API takes a digest, algorithm:encoded (sha256:<64 hex digits>)', {}, method)
      return
    }
    const document = tree.objectsByPath.get(`v2/${name}/referrers/${digest}`)
    const artifactType = url.searchParams.get('artifactType')
    // Unfiltered, or too large to filter in memory: the document as stored (the spec lets a registry not filter).
    if (document && (!artifactType || document.size > MAX_FILTERED_REFERRERS_BYTES)) {
      this.sendObject(req, res, method, tree, document)
      return
    }
    let manifests: Array<{artifactType?: string}> = []
    if (document) {
      const raw = await readFileBounded(tree.fileOf(document), MAX_FILTERED_REFERRERS_BYTES, `the referrers of ${digest}`)
      manifests = (JSON.parse(raw.toString('utf8')) as {manifests: Array<{artifactType?: string}>}).manifests
    }
    if (artifactType) manifests = manifests.filter((entry) => entry.artifactType === artifactType)
    const cacheControl = document?.headers['Cache-Control'] ?? `public, max-age=${tree.index.settings.tagMaxAge}`
    const filters: Record<string, string> = artifactType ? {'OCI-Filters-Applied': 'artifactType'} : {}
    sendJson(res, method, 200, JSON.stringify({schemaVersion: 2, mediaType: MediaType.OciIndex, manifests}), MediaType.OciIndex, cacheControl, filters)
  }

  private sendObject(req: http.IncomingMessage, res: http.ServerResponse, method: string, tree: RegistryTree, object: RegistryObject): void {
    sendObject(req, res, method, object, (start, end) => createReadStream(tree.fileOf(object), {start, end}))
  }

  /** `?n=&last=` pagination, as the spec describes, with a `Link` header to the next page. */
  private sendTagsPage(res: http.ServerResponse, method: string, tree: RegistryTree, object: RegistryObject, url: URL): void {
    const name = object.repository ?? ''
    const all = Object.keys(tree.index.repositories[name]?.tags ?? {}).sort()
    const last = url.searchParams.get('last')
    const n = url.searchParams.has('n') ? Number(url.searchParams.get('n')) : undefined
    if (n !== undefined && (!Number.isInteger(n) || n < 0)) {
      sendError(res, 400, 'PAGINATION_NUMBER_INVALID', 'invalid number of results requested')
      return
    }
    const after = last === null ? all : all.filter((t) => t > last)
    const page = n === undefined ? after : after.slice(0, n)
    const headers: Record<string, string> = {}
    if (n !== undefined && n > 0 && after.length > n) headers.Link = `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(page[page.length - 1])}>; rel="next"`
    sendJson(res, method, 200, JSON.stringify({name, tags: page}), 'application/json', object.headers['Cache-Control'], headers)
  }
}

export interface RunningServer {
  server: http.Server
  url: string
  port: number
  close(): Promise<void>
}

/** Start `reg serve` on host:port (port 0 picks a free one). */
export async function startRegistryServer(dir: string, options: {host?: string; port?: number; push?: boolean | PushOptions; proxy?: ProxyOptions} = {}): Promise<RunningServer> {
  // Pushes and the proxy write into the tree, through one writer.
  const writer = new TreeWriter(dir)
  if (options.push || options.proxy) await writer.ensureTree()
  await RegistryTree.load(dir) // fail early, with a clear message, when DIR is not a tree
  const live = new LiveTree(dir)
  const push = options.push ? new PushHandler(writer, live, options.push === true ? {} : options.push) : undefined
  const registry = new RegistryServer(live, push, options.proxy ? new ProxyHandler(writer, options.proxy) : undefined)
  const server = http.createServer((req, res) => {
    registry.handle(req, res).catch((error: unknown) => {
      // A RegError is the client's doing (a bad name, a bad reference): 400; anything else is ours.
      const status = error instanceof RegError ? 400 : 500
      const message = error instanceof RegError ? error.message : 'internal error'
      if (!res.headersSent) res.writeHead(status, {'Content-Type': 'application/json'})
      res.end(errorBody(status === 400 ? 'NAME_INVALID' : 'UNKNOWN', message))
    })
  })
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 5000, host, () => resolve())
  })
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : options.port ?? 5000
  const displayHost = host.includes(':') ? `[${host}]` : host
  return {
    server, port, url: `http://${displayHost}:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}
