import type http from 'node:http'
import {Readable} from 'node:stream'
import {mapLimit} from '../core/concurrency.js'
import {isDigest, sha256, verifyBytes} from '../core/digest.js'
import {HttpError} from '../core/api-errors.js'
import {RegError} from '../core/errors.js'
import {MAX_GRAPH_NODES, MAX_MANIFEST_BYTES, readFileBounded, TooLargeError} from '../core/limits.js'
import {type Descriptor, type ParsedManifest, parseManifest} from '../core/manifest.js'
import {isTag, validateName} from '../core/reference.js'
import {RegistryClient, RegistryStatusError} from '../sources/registry/client.js'
import {findCredentials} from '../sources/registry/credentials.js'
import {MANIFEST_ACCEPT, parseList} from '../sources/registry/registry-source.js'
import type {BlobStore} from '../tree/blob-store.js'
import {blobHeaders, IMMUTABLE} from '../tree/objects.js'
import type {RegistryTree} from '../tree/registry-tree.js'
import {BlobDownload} from './blob-download.js'
import type {LiveTree} from './live-tree.js'
import {sendJson, sendManifestBytes, sendObject, sendStoredBlob} from './respond.js'
import {type Handler, repositoryOf, type Route} from './routes.js'
import type {TreeWriter} from './tree-writer.js'

export interface ProxyUpstream {
  /** the namespace it is served under: `hub` serves `hub/library/alpine` */
  name: string
  /** `https://registry-1.docker.io` (`http://` for a plain-HTTP registry) */
  url: string
}

export interface ProxyOptions {
  upstreams: ProxyUpstream[]
  /** how long a tag is served from the tree before it is checked upstream again */
  ttlSeconds: number
  /** where background failures are told (publishing a proxied tag) */
  log?: (line: string) => void
}

export const DEFAULT_PROXY_TTL_SECONDS = 300

/** `--proxy NAME=URL`. */
export function parseProxyFlag(value: string): ProxyUpstream {
  const equals = value.indexOf('=')
  if (equals <= 0) throw new RegError(`--proxy ${value}: expected NAME=URL`, 'e.g. --proxy hub=https://registry-1.docker.io')
  const name = validateName(value.slice(0, equals))
  let url: URL
  try {
    url = new URL(value.slice(equals + 1))
  } catch {
    throw new RegError(`--proxy ${value}: ${value.slice(equals + 1)} is not a URL`, 'e.g. --proxy hub=https://registry-1.docker.io')
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || (url.pathname !== '/' && url.pathname !== '') || url.search) {
    throw new RegError(`--proxy ${value}: the upstream is a registry's root, http:// or https:// (no path)`)
  }
  return {name, url: url.origin}
}

/** `300`, `300s`, `5m`, `1h`: seconds. */
export function parseDuration(value: string): number {
  const match = /^(\d+)(s|m|h)?$/.exec(value.trim())
  if (!match) throw new RegError(`invalid duration "${value}"`, 'write seconds (300, 300s) or minutes (5m) or hours (1h)')
  return Number(match[1]) * {s: 1, m: 60, h: 3600}[(match[2] ?? 's') as 's' | 'm' | 'h']
}

/** One upstream registry, connected on first use (credentials as for docker:// sources). */
class Upstream {
  private client?: Promise<RegistryClient>
  readonly host: string
  private readonly dockerHub: boolean

  constructor(readonly name: string, private readonly url: string) {
    this.host = new URL(url).host
    this.dockerHub = this.host === 'registry-1.docker.io' || this.host === 'docker.io'
  }

  connect(): Promise<RegistryClient> {
    this.client ??= findCredentials(this.host).then((credentials) => new RegistryClient(this.host, {plainHttp: this.url.startsWith('http:'), credentials}))
    return this.client
  }

  /** Docker Hub keeps official images under `library/`, which clients add themselves only for docker.io. */
  repositoryFor(path: string): string {
    return this.dockerHub && !path.includes('/') ? `library/${path}` : path
  }
}

/** A request under an upstream's namespace, as the upstream will be asked it. */
interface Proxied {
  upstream: Upstream
  /** the repository in the tree: `hub/library/alpine` */
  name: string
  /** the repository upstream: `library/alpine` */
  repository: string
  reference: string
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** The status the upstream answered, when that is why a request failed. */
function upstreamStatus(error: unknown): number | undefined {
  return error instanceof RegistryStatusError ? error.status : undefined
}

/** The upstream failed (or sent what reg refuses): a gateway's error, 502. */
function upstreamFailure(proxied: Proxied, error: unknown): HttpError {
  return new HttpError(502, 'UNKNOWN', `proxy ${proxied.upstream.name} (${proxied.upstream.host}): ${describe(error)}`)
}

/** What the proxy learned while it runs (manifests, blob sizes): the oldest is forgotten past a bound, and asked upstream again. */
class Recent<V> {
  private readonly entries = new Map<string, V>()
  constructor(private readonly capacity: number) {}
  get(key: string): V | undefined {
    return this.entries.get(key)
  }
  set(key: string, value: V): void {
    this.entries.delete(key)
    this.entries.set(key, value)
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!)
  }
}

const REMEMBERED = 10 * MAX_GRAPH_NODES

/**
 * The pull-through proxy of `reg serve --proxy NAME=UPSTREAM`: a pull of `NAME/REPO` is answered
 * from the tree when it has the content, else fetched from the upstream through the registry
 * client, streamed to the client while it is verified into the store. Tags are checked upstream
 * again after the TTL (digests never are); a tag whose graph is complete is published into the
 * tree's index like a pushed one, so `reg build` and `reg deploy` see proxied images too.
 */
export class ProxyHandler {
  private readonly upstreams: Upstream[]
  private readonly store: BlobStore
  /** blobs arriving now: concurrent pulls of one blob share one upstream request and one file */
  private readonly downloads = new Map<string, BlobDownload>()
  private readonly manifestFetches = new Map<string, Promise<Buffer>>()
  /**
   * Digests this process fetched, verified and parsed as manifests: with the tree's published
   * manifests, the only stored objects ever read as manifests (a stored layer's digest is not).
   */
  private readonly knownManifests = new Recent<true>(REMEMBERED)
  /** `upstream digest` → size, from the manifests the proxy has: a blob stops there, whatever the upstream sends */
  private readonly blobSizes = new Recent<number>(REMEMBERED)
  /** `name:tag` → digest, and when the upstream last confirmed it */
  private readonly checkedTags = new Map<string, {digest: string; at: number}>()
  private readonly publishing = new Set<string>()

  constructor(private readonly tree: TreeWriter, private readonly live: LiveTree, private readonly options: ProxyOptions) {
    this.store = tree.store
    const names = new Set<string>()
    this.upstreams = options.upstreams.map(({name, url}) => {
      for (const other of names) {
        if (name === other || name.startsWith(`${other}/`) || other.startsWith(`${name}/`)) throw new RegError(`--proxy ${name}: overlaps --proxy ${other}`, 'give each upstream its own namespace')
      }
      names.add(name)
      return new Upstream(name, url)
    })
  }

  /** The upstream whose namespace a repository is in (pushes there are refused: the upstream owns it). */
  owner(name: string): Upstream | undefined {
    return this.upstreams.find((u) => name === u.name || name.startsWith(`${u.name}/`))
  }

  /** A repository under an upstream's namespace (not the namespace itself: the tree answers that). */
  private proxied(route: Route): Proxied | undefined {
    const upstream = this.owner(route.name ?? '')
    if (!upstream || route.name === upstream.name) return undefined
    const name = repositoryOf(route)
    return {upstream, name, repository: upstream.repositoryFor(name.slice(upstream.name.length + 1)), reference: route.reference ?? ''}
  }

  // ---- handlers, as the routing table holds them (fields: arrow functions)

  /** A manifest by tag (checked upstream after the TTL) or by digest; false when the tree answers it. */
  readonly manifest: Handler = async ({req, res, method, route}) => {
    const proxied = this.proxied(route)
    if (!proxied || !(isDigest(proxied.reference) || isTag(proxied.reference))) return false
    const tree = await this.live.current()
    // Content addressed: what the tree has is final.
    if (isDigest(proxied.reference) && tree.objectsByPath.has(route.path)) return false
    await this.answering(proxied, 'manifest', () => this.sendManifest(req, res, method, proxied, tree))
    return true
  }

  /** A blob the tree does not have (the routing table asks the tree first). */
  readonly blob: Handler = async ({req, res, method, route}) => {
    const proxied = this.proxied(route)
    if (!proxied || !isDigest(proxied.reference)) return false
    await this.answering(proxied, 'blob', () => this.sendBlob(req, res, method, proxied))
    return true
  }

  /**
   * Tags lists come from the upstream as they are (renamed to our namespace); false (the tree's
   * list) when it cannot be asked. An answer that is not a tags list is the upstream's fault: 502.
   */
  readonly tagsList: Handler = async ({res, method, route, url}) => {
    const proxied = this.proxied(route)
    if (!proxied) return false
    let answer
    let tags: string[]
    try {
      const client = await proxied.upstream.connect()
      answer = await client.getBytes(`/v2/${proxied.repository}/tags/list${url.search}`, proxied.repository)
      tags = parseList(answer.bytes, 'tags', `the tags list of ${proxied.repository}`).sort()
    } catch (error) {
      if (upstreamStatus(error) === 404) throw new HttpError(404, 'NAME_UNKNOWN', 'repository name not known to registry')
      if (answer || error instanceof TooLargeError) throw upstreamFailure(proxied, error)
      return false
    }
    // The next page, only as a path of this repository (a Link elsewhere is dropped).
    const next = /^<([^>]*)>;\s*rel="?next"?$/.exec(String(answer.headers.link ?? '').trim())
    const target = next ? new URL(next[1], 'http://upstream.invalid') : undefined
    const link = target?.origin === 'http://upstream.invalid' && target.pathname === `/v2/${proxied.repository}/tags/list` ? `</v2/${proxied.name}/tags/list${target.search}>; rel="next"` : ''
    sendJson(res, method, 200, JSON.stringify({name: proxied.name, tags}), 'application/json', 'no-cache', link ? {Link: link} : {})
    return true
  }

  /** What the upstream's failure means to the client: it does not have it (404), or it failed (502). */
  private async answering(proxied: Proxied, what: 'manifest' | 'blob', send: () => Promise<void>): Promise<void> {
    try {
      await send()
    } catch (error) {
      if (upstreamStatus(error) !== 404) throw upstreamFailure(proxied, error)
      throw what === 'blob' ? new HttpError(404, 'BLOB_UNKNOWN', 'blob unknown to registry') : new HttpError(404, 'MANIFEST_UNKNOWN', 'manifest unknown')
    }
  }

  // ---- blobs

  private async sendBlob(req: http.IncomingMessage, res: http.ServerResponse, method: string, route: Proxied): Promise<void> {
    const digest = route.reference
    if (await this.store.has(digest)) {
      await sendStoredBlob(req, res, method, this.store, digest)
      return
    }
    let download = this.downloads.get(digest)
    const knownSize = this.blobSizes.get(`${route.upstream.name} ${digest}`)
    if (!download && method === 'HEAD') {
      // A client asking whether it exists: ask upstream, fetch nothing.
      const client = await route.upstream.connect()
      const answer = await client.request('HEAD', `/v2/${route.repository}/blobs/${digest}`, route.repository)
      answer.body.resume()
      if (answer.status !== 200) throw new RegistryStatusError(answer.status, `proxy ${route.upstream.name}: HEAD of blob ${digest} of ${route.repository}: the upstream answered ${answer.status}`)
      const length = Number(answer.headers['content-length'])
      sendObject(req, res, method, {class: 'blob', digest, size: knownSize ?? (Number.isSafeInteger(length) && length >= 0 ? length : 0), headers: blobHeaders(digest)}, () => Readable.from([]))
      return
    }
    download ??= this.download(route, digest, knownSize)
    await download.started
    const following = download
    sendObject(req, res, method, {class: 'blob', digest, size: download.size, headers: blobHeaders(digest)}, (start, end) => following.follow(start, end))
  }

  private download(route: Pick<Proxied, 'upstream' | 'repository'>, digest: string, size?: number): BlobDownload {
    const existing = this.downloads.get(digest)
    if (existing) return existing
    const label = `proxy ${route.upstream.name}: blob ${digest} of ${route.repository}`
    const download = new BlobDownload(this.store, digest, label, async () => {
      const client = await route.upstream.connect()
      return client.request('GET', `/v2/${route.repository}/blobs/${digest}`, route.repository)
    }, size)
    this.downloads.set(digest, download)
    download.finished.finally(() => this.downloads.delete(digest)).catch(() => undefined)
    return download
  }

  /** A blob in the store, fetched if need be (shares a download a client started). */
  private async ensureBlob(route: Proxied, blob: Descriptor): Promise<void> {
    if (await this.store.has(blob.digest)) return
    await this.download(route, blob.digest, blob.size).finished
  }

  // ---- manifests

  /** A stored object read as a manifest: one the tree publishes, or one this proxy fetched and parsed. */
  private isKnownManifest(digest: string, tree: RegistryTree): boolean {
    return digest in tree.index.manifests || this.knownManifests.get(digest) === true
  }

  /** A manifest parsed, and what the proxy learns from it (it is one; the sizes of its blobs). */
  private parseManifest(route: Proxied, raw: Buffer, digest: string, declaredMediaType?: string): ParsedManifest {
    const manifest = parseManifest(raw, `proxy ${route.upstream.name}: ${route.repository}@${digest}`, declaredMediaType)
    this.knownManifests.set(digest, true)
    if (manifest.kind === 'image') for (const blob of [manifest.config, ...manifest.layers]) this.blobSizes.set(`${route.upstream.name} ${blob.digest}`, blob.size)
    return manifest
  }

  /**
   * A manifest by digest: from the store when it is known to be one, else fetched once upstream
   * (bounded), verified, stored. A digest the store has as a blob is never read as a manifest.
   */
  private manifestBytes(route: Proxied, digest: string, tree: RegistryTree): Promise<Buffer> {
    let fetching = this.manifestFetches.get(digest)
    if (!fetching) {
      fetching = (async () => {
        const label = `proxy ${route.upstream.name}: manifest ${route.repository}@${digest}`
        if (this.isKnownManifest(digest, tree) && (await this.store.has(digest))) return readFileBounded(this.store.pathOf(digest), MAX_MANIFEST_BYTES, label)
        const bytes = await this.fetchManifest(route, digest)
        verifyBytes(bytes, {digest, label})
        await this.store.writeBytes(bytes)
        return bytes
      })()
      this.manifestFetches.set(digest, fetching)
      fetching.finally(() => this.manifestFetches.delete(digest)).catch(() => undefined)
    }
    return fetching
  }

  private async fetchManifest(route: Proxied, reference: string): Promise<Buffer> {
    const client = await route.upstream.connect()
    const {bytes, headers} = await client.getBytes(`/v2/${route.repository}/manifests/${reference}`, route.repository, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES)
    const advertised = headers['docker-content-digest']
    if (typeof advertised === 'string' && isDigest(advertised) && advertised !== sha256(bytes)) {
      throw new RegError(`${route.repository}:${reference} says Docker-Content-Digest ${advertised} but its bytes hash to ${sha256(bytes)}`)
    }
    return bytes
  }

  private async sendManifest(req: http.IncomingMessage, res: http.ServerResponse, method: string, route: Proxied, tree: RegistryTree): Promise<void> {
    const byDigest = isDigest(route.reference)
    const digest = byDigest ? route.reference : await this.resolveTag(route, route.reference, tree)
    const raw = await this.manifestBytes(route, digest, tree)
    const manifest = this.parseManifest(route, raw, digest)
    sendManifestBytes(req, res, method, raw, {digest, mediaType: manifest.mediaType}, byDigest ? IMMUTABLE : `public, max-age=${tree.index.settings.tagMaxAge}`)
    if (!byDigest && tree.index.repositories[route.name]?.tags[route.reference] !== digest) {
      this.publish(route, route.reference, {mediaType: manifest.mediaType, digest, size: raw.length}, tree)
    }
  }

  /**
   * The digest a tag stands for: the one last confirmed while within the TTL, else what the
   * upstream says now (HEAD; GET only when it changed). An upstream that cannot be asked leaves
   * the stored copy in service; one that says 404 is believed.
   */
  private async resolveTag(route: Proxied, tag: string, tree: RegistryTree): Promise<string> {
    const key = `${route.name}:${tag}`
    const treeDigest = tree.index.repositories[route.name]?.tags[tag]
    const known = this.checkedTags.get(key) ?? (treeDigest ? {digest: treeDigest, at: -Infinity} : undefined)
    const stored = known && (await this.store.has(known.digest)) ? known.digest : undefined
    if (stored && Date.now() - known!.at < this.options.ttlSeconds * 1000) return stored
    const path = `/v2/${route.repository}/manifests/${tag}`
    let current: string | undefined
    try {
      const client = await route.upstream.connect()
      const head = await client.request('HEAD', path, route.repository, MANIFEST_ACCEPT)
      head.body.resume()
      if (head.status === 404) this.checkedTags.delete(key)
      if (head.status !== 200) throw new RegistryStatusError(head.status, `proxy ${route.upstream.name}: manifest ${route.repository}:${tag}: the upstream answered ${head.status}`)
      const advertised = head.headers['docker-content-digest']
      if (typeof advertised === 'string' && advertised === stored) current = stored
      else {
        const bytes = await this.fetchManifest(route, tag)
        this.parseManifest(route, bytes, sha256(bytes))
        current = await this.store.writeBytes(bytes)
      }
    } catch (error) {
      if (upstreamStatus(error) === 404) throw error
      if (!stored) throw error
      this.options.log?.(`proxy ${route.upstream.name}: serving the stored ${route.name}:${tag}, the upstream could not be asked (${describe(error)})`)
      return stored
    }
    this.checkedTags.set(key, {digest: current, at: Date.now()})
    return current
  }

  // ---- publishing

  /**
   * Fetch what a tag reaches that no client asked for (other platforms), then publish the tag:
   * the tree's index only ever names complete graphs. In the background; a failure is told and
   * the next pull of the tag tries again.
   */
  private publish(route: Proxied, tag: string, descriptor: Descriptor, tree: RegistryTree): void {
    const key = `${route.name}:${tag}@${descriptor.digest}`
    if (this.publishing.has(key)) return
    this.publishing.add(key)
    this.fetchGraph(route, descriptor, tree)
      .then(() => this.tree.publishTag(route.name, tag, descriptor))
      .catch((error: unknown) => this.options.log?.(`proxy ${route.upstream.name}: ${route.name}:${tag} not published: ${describe(error)}`))
      .finally(() => this.publishing.delete(key))
  }

  /** Every manifest and blob a descriptor reaches, each visited once, at most MAX_GRAPH_NODES of them. */
  private async fetchGraph(route: Proxied, root: Descriptor, tree: RegistryTree): Promise<void> {
    const seen = new Set<string>([root.digest])
    const pending: Descriptor[] = [root]
    const blobs: Descriptor[] = []
    while (pending.length > 0) {
      const descriptor = pending.pop()!
      const manifest = this.parseManifest(route, await this.manifestBytes(route, descriptor.digest, tree), descriptor.digest, descriptor.mediaType)
      for (const child of manifest.kind === 'index' ? manifest.manifests : [manifest.config, ...manifest.layers]) {
        if (seen.has(child.digest)) continue
        seen.add(child.digest)
        if (seen.size > MAX_GRAPH_NODES) {
          throw new RegError(`${route.repository}@${root.digest} reaches more than ${MAX_GRAPH_NODES} manifests and blobs`, 'reg refuses image graphs this large')
        }
        if (manifest.kind === 'index') pending.push(child)
        else blobs.push(child)
      }
    }
    await mapLimit(blobs, 4, (blob) => this.ensureBlob(route, blob))
  }
}
