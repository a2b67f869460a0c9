import http from 'node:http'
import {HttpError, httpErrorOf, notFoundError, UNSUPPORTED_MESSAGE} from '../core/api-errors.js'
import {corsHeaders, corsPreflightHeaders, type CorsOrigin, parseCorsOrigin} from '../core/cors.js'
import {describeError} from '../core/errors.js'
import {API_VERSION_HEADER} from '../tree/objects.js'
import {RegistryTree} from '../tree/registry-tree.js'
import {lockTree} from '../tree/tree-lock.js'
import {LiveTree} from './live-tree.js'
import {ProxyHandler, type ProxyOptions} from './proxy.js'
import {PushHandler, type PushOptions} from './push.js'
import {ReadAuth, type ReadAuthOptions} from './read-auth.js'
import {sendError} from './respond.js'
import {type Exchange, type Handler, type Route, routeOf, type UrlClass} from './routes.js'
import {TreeReader} from './tree-reader.js'
import {TreeWriter} from './tree-writer.js'

type Method = 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE'
/** Per URL class and method, the handlers asked in turn until one answers. GET answers HEAD too. */
type RouteTable = Record<UrlClass, Partial<Record<Method, Handler[]>>>

/** The handlers that exist: a table entry without push (or proxy) has none, and its method is refused. */
const present = (...handlers: Array<Handler | undefined>): Handler[] | undefined => {
  const kept = handlers.filter((handler): handler is Handler => handler !== undefined)
  return kept.length > 0 ? kept : undefined
}

const redirectToApiRoot: Handler = async ({res, url}) => {
  res.writeHead(301, {Location: '/v2/' + url.search, ...API_VERSION_HEADER, 'Content-Length': '0'}).end()
  return true
}

/**
 * `reg serve`: the distribution API over a tree. A request is routed by the class of its URL,
 * then by its method; what no handler answers is a 404 of its class. Every refusal is an
 * HttpError, answered in one place (`fail`).
 */
export class RegistryServer {
  private readonly routes: RouteTable
  /** Under a proxied namespace (read-only): the upstream is asked for what the tree does not have yet. */
  private readonly proxiedRoutes: Partial<RouteTable>

  constructor(live: LiveTree, private readonly push?: PushHandler, private readonly proxy?: ProxyHandler, private readonly log: (line: string) => void = (line) => console.error(line), private readonly cors: CorsOrigin = undefined, private readonly readAuth?: ReadAuth) {
    const tree = new TreeReader(live)
    this.routes = {
      'api-version': {GET: [redirectToApiRoot]},
      'api-root': {GET: [tree.object]},
      catalog: {GET: [tree.object]},
      'tags-list': {GET: [tree.tagsList]},
      // what the tree's index names, then what was pushed and is not (or no longer) tagged
      manifest: {GET: present(tree.object, push?.storedManifest), PUT: present(push?.putManifest), DELETE: present(push?.deleteManifest)},
      blob: {GET: present(tree.object, push?.storedBlob)},
      upload: {POST: present(push?.startUpload)},
      'upload-session': {GET: present(push?.uploadStatus), PATCH: present(push?.appendUpload), PUT: present(push?.finishUpload), DELETE: present(push?.cancelUpload)},
      referrers: {GET: [tree.referrers]},
      page: {GET: [tree.object]},
      unknown: {},
    }
    this.proxiedRoutes = proxy ? {
      // a tag is checked upstream after its TTL; content by digest the tree has is final
      manifest: {GET: [proxy.manifest, tree.object]},
      blob: {GET: [tree.object, proxy.blob]},
      // the upstream's list; the tree's when the upstream cannot be asked
      'tags-list': {GET: [proxy.tagsList, tree.tagsList]},
    } : {}
  }

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://registry.invalid')
    const method = req.method ?? 'GET'
    const exchange: Exchange = {req, res, method, url, route: routeOf(decodedPath(url))}
    if (this.cors !== undefined) {
      // Browsers: a preflight for any URL, and every answer (errors too) readable from the allowed origin.
      if (method === 'OPTIONS') {
        req.resume()
        res.writeHead(204, {...API_VERSION_HEADER, ...corsPreflightHeaders(this.cors)}).end()
        return
      }
      for (const [name, value] of Object.entries(corsHeaders(this.cors))) res.setHeader(name, value)
    }
    try {
      await this.dispatch(exchange)
    } catch (error) {
      this.fail(exchange, error)
    }
  }

  private async dispatch(exchange: Exchange): Promise<void> {
    const {req, method, route} = exchange
    const reading = method === 'GET' || method === 'HEAD'
    const upstream = route.name === undefined ? undefined : this.proxy?.owner(route.name)
    if (upstream && !reading) throw new HttpError(405, 'UNSUPPORTED', `${upstream.name}/ is a pull-through proxy of ${upstream.host}: read-only`, {headers: {Allow: 'GET, HEAD'}})
    // Clients decide from the /v2/ ping whether to send credentials at all (containers/image never
    // answers a later 401): with --push-auth, the ping challenges unless credentials came, and
    // upload sessions, part of a push, need them too.
    // With --read-auth, the read side's users answer the ping.
    const readAccess = await this.readAccess(exchange)
    if (this.push && (!reading || (route.class === 'api-root' && !this.readAuth) || route.class === 'upload' || route.class === 'upload-session')) await this.push.authorize(req)
    const methods = {...this.routes[route.class], ...(upstream ? this.proxiedRoutes[route.class] : {}), ...readAccess}
    const handlers = methods[(reading ? 'GET' : method) as Method]
    if (!handlers && !reading) throw this.unsupported(method, Object.keys(methods))
    for (const handler of handlers ?? []) {
      if (await handler(exchange)) return
    }
    throw notFound(route)
  }

  /**
   * With --read-auth: refuses (401) what needs a user and came without good credentials; an
   * anonymous reader gets the catalog of the public repositories instead of the tree's.
   */
  private async readAccess({req, route}: Exchange): Promise<Partial<Record<Method, Handler[]>>> {
    if (!this.readAuth) return {}
    const reader = await this.readAuth.authorize(req, route)
    return reader === 'anonymous' && route.class === 'catalog' ? {GET: [this.readAuth.publicCatalog]} : {}
  }

  private unsupported(method: string, allowed: string[]): HttpError {
    if (!this.push) return new HttpError(405, 'UNSUPPORTED', UNSUPPORTED_MESSAGE, {headers: {Allow: 'GET, HEAD'}})
    const allow = ['GET', 'HEAD', ...allowed.filter((m) => m !== 'GET')].join(', ')
    return new HttpError(405, 'UNSUPPORTED', `${method} is not supported here`, {headers: {Allow: allow}})
  }

  /**
   * The one place a failure becomes an answer: an HttpError (or an error of the core that the
   * spec has a code for) as itself; anything else is the registry's own failure, a 500 that says
   * nothing of the server (its detail goes to the log). A body already under way is cut instead,
   * so a client never takes it for a whole one.
   */
  private fail({req, res, method, url}: Exchange, error: unknown): void {
    let answer = httpErrorOf(error)
    if (!answer) {
      this.log(`reg serve: ${method} ${url.pathname}: ${describeError(error)}`)
      answer = new HttpError(500, 'UNKNOWN', 'internal error')
    }
    if (res.headersSent) {
      res.destroy()
      return
    }
    if (!req.complete) {
      // A body refused unread: read on to keep the connection, or end it when the body may be endless.
      if (answer.closeConnection) res.once('finish', () => req.destroy())
      else req.resume()
    }
    sendError(res, method, answer, answer.closeConnection ? {Connection: 'close'} : {})
  }
}

/** The URL's path without its leading `/`, percent-decoded (as it is, when it does not decode). */
function decodedPath(url: URL): string {
  try {
    return decodeURIComponent(url.pathname).replace(/^\/+/, '')
  } catch {
    return url.pathname
  }
}

/** The 404 of a route's class: a well-formed manifest or blob reference is unknown, anything else names nothing. */
function notFound(route: Route): HttpError {
  const {code, message} = notFoundError(route.path.startsWith('v2/') ? route.path : '')
  return new HttpError(404, code, message)
}

export interface RunningServer {
  server: http.Server
  url: string
  port: number
  close(): Promise<void>
}

export interface ServeOptions {
  host?: string
  port?: number
  push?: boolean | PushOptions
  proxy?: ProxyOptions
  /** Basic auth on reads (--read-auth, --private) */
  readAuth?: ReadAuthOptions
  /** where the registry's own failures are told (stderr when not given); clients only hear "internal error" */
  log?: (line: string) => void
  /** `--cors`: `*` (the default), one origin, or `off` */
  cors?: string
}

/** Start `reg serve` on host:port (port 0 picks a free one). */
export async function startRegistryServer(dir: string, options: ServeOptions = {}): Promise<RunningServer> {
  // Pushes and the proxy write into the tree, through one writer; no build or prune meanwhile.
  const writer = new TreeWriter(dir)
  const lock = options.push || options.proxy ? await lockTree(dir, `reg serve ${options.push ? '--push' : '--proxy'}`) : undefined
  try {
    if (options.push || options.proxy) await writer.ensureTree()
    await RegistryTree.load(dir) // fail early, with a clear message, when DIR is not a tree
  } catch (error) {
    await lock?.release()
    throw error
  }
  const live = new LiveTree(dir)
  const push = options.push ? new PushHandler(writer, live, options.push === true ? {} : options.push) : undefined
  const proxy = options.proxy ? new ProxyHandler(writer, live, options.proxy) : undefined
  const readAuth = options.readAuth ? new ReadAuth(live, options.readAuth) : undefined
  const registry = new RegistryServer(live, push, proxy, options.log, parseCorsOrigin(options.cors), readAuth)
  const server = http.createServer((req, res) => {
    registry.handle(req, res).catch(() => res.destroy())
  })
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 5000, host, () => resolve())
  }).catch(async (error: unknown) => {
    await lock?.release()
    throw error
  })
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : options.port ?? 5000
  const displayHost = host.includes(':') ? `[${host}]` : host
  return {
    server, port, url: `http://${displayHost}:${port}`,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      await lock?.release()
    },
  }
}
