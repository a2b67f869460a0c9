import {createReadStream} from 'node:fs'
import http from 'node:http'
import {errorBody, notFoundError, UNSUPPORTED_MESSAGE} from '../core/api-errors.js'
import {RegError} from '../core/errors.js'
import {MediaType} from '../core/media-types.js'
import type {RegistryObject} from '../tree/model.js'
import {API_VERSION_HEADER} from '../tree/objects.js'
import {RegistryTree} from '../tree/registry-tree.js'
import {LiveTree} from './live-tree.js'
import {ProxyHandler, type ProxyOptions} from './proxy.js'
import {PushHandler, type PushOptions} from './push.js'
import {sendError, sendJson, sendObject} from './respond.js'
import {TreeWriter} from './tree-writer.js'

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
    const referrers = /^v2\/(.+)\/referrers\/(sha256:[a-f0-9]{64})$/.exec(urlPath)
    if (referrers && tree.objectsByPath.has(`v2/${referrers[1]}/manifests/${referrers[2]}`)) {
      // The referrers API answers 200 with an empty index for a known manifest, never 404.
      sendJson(res, method, 200, JSON.stringify({schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: []}), MediaType.OciIndex, `public, max-age=${tree.index.settings.tagMaxAge}`)
      return
    }
    const {code, message} = urlPath.startsWith('v2/') ? notFoundError(urlPath) : notFoundError('')
    sendError(res, 404, code, message)
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
