import {HttpError} from '../core/api-errors.js'
import {MAX_FILTERED_REFERRERS_BYTES, readFileBounded} from '../core/limits.js'
import {MediaType} from '../core/media-types.js'
import type {RegistryObject} from '../tree/model.js'
import type {RegistryTree} from '../tree/registry-tree.js'
import type {LiveTree} from './live-tree.js'
import {sendJson, sendObject} from './respond.js'
import {type Exchange, type Handler, repositoryOf} from './routes.js'

/** The encoded part of the registered digest algorithms; others are taken as the spec's grammar allows. */
const DIGEST_ENCODINGS = new Map([['sha256', /^[a-f0-9]{64}$/], ['sha512', /^[a-f0-9]{128}$/]])

/** A digest as the distribution spec writes one: `algorithm:encoded`. */
function isWellFormedDigest(value: string): boolean {
  const match = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(value)
  return match !== null && (DIGEST_ENCODINGS.get(match[1])?.test(match[2]) ?? true)
}

/**
 * The reads a tree answers, exactly as a static host serves its files (what every backend must
 * reproduce), and the little a static host cannot: tags pages and referrers filters.
 */
export class TreeReader {
  // Handlers are fields (arrow functions): the routing table holds them as they are.
  constructor(private readonly live: LiveTree) {}

  /** The tree's object at the URL's path, with its headers. */
  readonly object: Handler = async ({req, res, method, route}) => {
    const tree = await this.live.current()
    const object = tree.objectsByPath.get(route.path)
    if (!object) return false
    sendTreeObject(req, res, method, tree, object)
    return true
  }

  /** The tags list; `?n=&last=` pagination as the spec describes it, with a `Link` header to the next page. */
  readonly tagsList: Handler = async (exchange) => {
    const {res, method, route, url} = exchange
    if (!url.searchParams.has('n') && !url.searchParams.has('last')) return this.object(exchange)
    const tree = await this.live.current()
    const object = tree.objectsByPath.get(route.path)
    if (!object) return false
    const name = object.repository ?? ''
    const all = Object.keys(tree.index.repositories[name]?.tags ?? {}).sort()
    const last = url.searchParams.get('last')
    const n = url.searchParams.has('n') ? Number(url.searchParams.get('n')) : undefined
    if (n !== undefined && (!Number.isInteger(n) || n < 0)) throw new HttpError(400, 'PAGINATION_NUMBER_INVALID', 'invalid number of results requested')
    const after = last === null ? all : all.filter((t) => t > last)
    const page = n === undefined ? after : after.slice(0, n)
    const headers: Record<string, string> = {}
    if (n !== undefined && n > 0 && after.length > n) headers.Link = `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(page[page.length - 1])}>; rel="next"`
    sendJson(res, method, 200, JSON.stringify({name, tags: page}), 'application/json', object.headers['Cache-Control'], headers)
    return true
  }

  /**
   * The referrers API: the tree's referrers document of the subject, else an empty index — never a
   * 404, for an unknown subject or repository alike. `?artifactType=` keeps the entries of that
   * artifact type and says so (`OCI-Filters-Applied`).
   */
  readonly referrers: Handler = async ({req, res, method, route, url}) => {
    const name = repositoryOf(route)
    const digest = route.reference ?? ''
    if (!isWellFormedDigest(digest)) throw new HttpError(400, 'DIGEST_INVALID', 'the referrers API takes a digest, algorithm:encoded (sha256:<64 hex digits>)')
    const tree = await this.live.current()
    const document = tree.objectsByPath.get(`v2/${name}/referrers/${digest}`)
    const artifactType = url.searchParams.get('artifactType')
    // Unfiltered, or too large to filter in memory: the document as stored (the spec lets a registry not filter).
    if (document && (!artifactType || document.size > MAX_FILTERED_REFERRERS_BYTES)) {
      sendTreeObject(req, res, method, tree, document)
      return true
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
    return true
  }
}

function sendTreeObject(req: Exchange['req'], res: Exchange['res'], method: string, tree: RegistryTree, object: RegistryObject): void {
  sendObject(req, res, method, object, {file: tree.fileOf(object)})
}
