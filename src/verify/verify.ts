import {createHash} from 'node:crypto'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {mapLimit} from '../core/concurrency.js'
import {RegError} from '../core/errors.js'
import {MAX_DOCUMENT_BYTES, MAX_GRAPH_NODES, MAX_MANIFEST_BYTES} from '../core/limits.js'
import {type ParsedManifest, parseManifest} from '../core/manifest.js'
import {INDEX_MEDIA_TYPES, MediaType} from '../core/media-types.js'
import {quoted} from '../core/quote.js'
import {isTag, parseReference, validateName, validateTag} from '../core/reference.js'
import {referrersTag} from '../tree/objects.js'
import {RegistryTree} from '../tree/registry-tree.js'
import {type Answer, Prober, type ProbeRequest, seenHeader} from './probe.js'
import {CLIENT_IDS, type ClientId, type RuleId, RULES, RULES_BY_ID} from './rules.js'

export interface VerifyOptions {
  /** the registry's base URL: http(s)://HOST[:PORT] */
  url: string
  /** the tree that was deployed there: every tag and digest is compared with it */
  tree?: string
  /** the tree was deployed with --name-prefix: its repositories are served under this namespace */
  namePrefix?: string
  /** NAME:TAG to check (instead of, or among, what the catalog or the tree lists) */
  images?: readonly string[]
  /** the clients whose verdict decides the outcome (default: all) */
  clients?: readonly ClientId[]
  /** how many tags to check (a deterministic sample); ignored with `all` */
  sample?: number
  all?: boolean
  concurrency?: number
  /** bytes of blobs streamed and hashed in a sampled run; the rest are checked by HEAD */
  blobBytes?: number
}

export const DEFAULT_SAMPLE = 20
export const DEFAULT_BLOB_BYTES = 64 * 1024 * 1024
/** Findings kept per rule: the first ones say what is wrong; the count says how often. */
const FINDINGS_KEPT = 5

export interface Finding {
  rule: RuleId
  /** fail: a client in the rule's `breaks` fails; warn: nobody fails */
  severity: 'fail' | 'warn'
  method: string
  url: string
  status: number
  /** the header (or what stood in for it) the check read */
  seen: string
  message: string
  redirects?: string[]
}

export type Verdict = 'pass' | 'warn' | 'fail'

export interface VerifyReport {
  url: string
  clients: ClientId[]
  /** per client: its verdict, and the rules that decided it */
  verdicts: Record<ClientId, {verdict: Verdict; failedRules: RuleId[]; warnedRules: RuleId[]}>
  /** per rule: whether it was checked, how many times it was broken */
  rules: Array<{id: RuleId; checks: string; checked: boolean; broken: number; breaks: readonly ClientId[]; warns: readonly ClientId[]}>
  findings: Finding[]
  coverage: {
    sampled: boolean
    repositories: number
    tags: number
    tagsKnown: number
    manifests: number
    blobs: number
    blobsStreamed: number
    bytesStreamed: number
    requests: number
  }
  /** with a tree: what is not live, and what is live with other bytes */
  tree?: {missing: string[]; stale: string[]}
  /** the chosen clients that would fail */
  failing: ClientId[]
}

const ACCEPT_MANIFESTS = [MediaType.OciIndex, MediaType.OciManifest, MediaType.DockerManifestList, MediaType.DockerManifest].join(', ')
const MISSING_DIGEST = 'sha256:' + '0'.repeat(64)

interface Target {
  repository: string
  tag: string
  /** the tree's digest for it */
  expected?: string
}

interface Node {
  repository: string
  digest: string
  size: number
  mediaType: string
  kind: 'manifest' | 'blob'
  /** the manifest that lists it, for messages */
  from: string
}

/** A deterministic sample: the `n` items whose seeded hash sorts first (the same registry, the same sample). */
export function sampleOf<T>(items: readonly T[], n: number, key: (item: T) => string): T[] {
  if (items.length <= n) return [...items]
  const rank = (item: T) => createHash('sha256').update('reg-verify\0' + key(item)).digest('hex')
  return items.map((item) => ({item, r: rank(item)})).sort((a, b) => (a.r < b.r ? -1 : a.r > b.r ? 1 : 0)).slice(0, n).map((x) => x.item)
}

/** The media type in a Content-Type, without parameters, lowercased. */
function baseType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0].trim().toLowerCase()
}

function maxAgeOf(cacheControl: string | undefined): number | undefined {
  const match = /(?:^|,)\s*(?:s-)?max-age=(\d+)/i.exec(cacheControl ?? '')
  return match ? Number(match[1]) : undefined
}

/** One `reg verify` run: probes, findings, and the verdict of each client. */
class Verification {
  private readonly prober: Prober
  private readonly found = new Map<RuleId, {kept: Finding[]; count: number}>()
  private readonly checked = new Set<RuleId>()
  private readonly visited = new Set<string>()
  private readonly missing: string[] = []
  private readonly stale: string[] = []
  private tree?: RegistryTree
  private readonly concurrency: number
  private blobBudget: number
  private rangeChecked = false
  private corsChecked = false
  readonly counts = {repositories: 0, tags: 0, tagsKnown: 0, manifests: 0, blobs: 0, blobsStreamed: 0, bytesStreamed: 0}

  constructor(private readonly options: VerifyOptions) {
    this.concurrency = options.concurrency ?? 8
    this.blobBudget = options.all ? Number.POSITIVE_INFINITY : options.blobBytes ?? DEFAULT_BLOB_BYTES
    this.prober = new Prober(options.url, this.concurrency)
  }

  private find(rule: RuleId, answer: Pick<Answer, 'method' | 'url' | 'status' | 'redirects'>, seen: string, message: string): void {
    const severity = RULES_BY_ID.get(rule)!.breaks.length > 0 ? 'fail' : 'warn'
    const entry = this.found.get(rule) ?? {kept: [], count: 0}
    entry.count++
    if (entry.kept.length < FINDINGS_KEPT) {
      entry.kept.push({rule, severity, method: answer.method, url: answer.url, status: answer.status, seen, message, ...(answer.redirects.length ? {redirects: answer.redirects} : {})})
    }
    this.found.set(rule, entry)
  }

  private probe(request: ProbeRequest): Promise<Answer> {
    return this.prober.probe(request)
  }

  /** A request that did not get an HTTP answer, or whose redirects went nowhere. */
  private transportFailed(answer: Answer): boolean {
    if (!answer.error) return false
    if (answer.status === 0) this.find('reachable', answer, 'no answer', answer.error)
    else if (answer.redirects.length > 0 && /redirect/.test(answer.error)) this.find('redirect', answer, seenHeader(answer, 'Location'), answer.error)
    return answer.status === 0 || answer.redirects.length > 0
  }

  async run(): Promise<VerifyReport> {
    const scratch = this.options.tree && this.options.namePrefix ? await mkdtemp(path.join(os.tmpdir(), 'reg-verify-')) : undefined
    try {
      if (this.options.tree) {
        const loaded = await RegistryTree.load(this.options.tree)
        this.tree = scratch ? await loaded.withNamePrefix(this.options.namePrefix!, scratch) : loaded
      }
      this.checked.add('reachable')
      const root = await this.probe({method: 'GET', path: '/v2/', read: 'none'})
      if (root.status === 0) {
        this.find('reachable', root, 'no answer', root.error ?? 'no answer')
        return this.report()
      }
      this.checkApiRoot(root)
      const targets = await this.targets()
      this.counts.tags = targets.length
      this.counts.repositories = new Set(targets.map((t) => t.repository)).size
      const roots = await mapLimit(targets, this.concurrency, (target) => this.checkTag(target))
      await this.walk(roots.flatMap((r) => (r ? [r] : [])))
      if (targets.length > 0) {
        await this.checkMissing(targets[0].repository)
        const firstLive = roots.find((r) => r !== undefined)
        if (firstLive) await this.checkReferrers(firstLive.repository, firstLive.digest)
      }
      if (this.tree) await this.checkTreeDocuments(targets)
      return this.report()
    } finally {
      this.prober.close()
      if (scratch) await rm(scratch, {recursive: true, force: true})
    }
  }

  private checkApiRoot(root: Answer): void {
    this.checked.add('api-root')
    if (this.transportFailed(root)) return
    if (root.status !== 200 && root.status !== 401) {
      this.find('api-root', root, `status ${root.status}`, `/v2/ answered ${root.status}: clients that ping the registry first stop here (a host needs a v2/ object or route answering 200)`)
    }
  }

  /** What to check: --image, else the tree's tags, else what the catalog and tags lists name; sampled unless --all. */
  private async targets(): Promise<Target[]> {
    const n = this.options.all ? Number.POSITIVE_INFINITY : this.options.sample ?? DEFAULT_SAMPLE
    const treeTags = this.tree ? Object.keys(this.tree.index.repositories).sort().flatMap((repository) =>
      Object.keys(this.tree!.index.repositories[repository].tags).sort().map((tag) => ({repository, tag, expected: this.tree!.index.repositories[repository].tags[tag]}))) : undefined
    if (this.options.images && this.options.images.length > 0) {
      const given = this.options.images.map((image) => {
        const {name, tag} = parseReference(image)
        validateName(name)
        if (tag === undefined) throw new RegError(`--image ${quoted(image)} has no tag`, 'name an image as NAME:TAG, e.g. team/app:1')
        validateTag(tag, name)
        return {repository: name, tag, expected: this.tree?.index.repositories[name]?.tags[tag]}
      })
      this.counts.tagsKnown = given.length
      await this.checkCatalog()
      for (const repository of new Set(given.map((g) => g.repository))) await this.checkTagsList(repository)
      return given
    }
    if (treeTags) {
      this.counts.tagsKnown = treeTags.length
      const chosen = sampleOf(treeTags, n, (t) => `${t.repository}:${t.tag}`)
      await this.checkCatalog()
      const repositories = [...new Set(chosen.map((t) => t.repository))]
      await mapLimit(repositories, this.concurrency, (repository) => this.checkTagsList(repository))
      return chosen
    }
    const catalog = await this.checkCatalog()
    if (!catalog) {
      throw new RegError(
        `cannot tell what ${this.options.url} serves: /v2/_catalog does not list its repositories`,
        'name what to check with --image NAME:TAG (repeatable), or pass the deployed tree with --tree DIR; crane catalog, oras repo ls and regctl repo ls cannot list this registry either',
      )
    }
    const repositories = sampleOf(catalog, n, (r) => r)
    const listed = await mapLimit(repositories, this.concurrency, async (repository) => ({repository, tags: await this.checkTagsList(repository)}))
    const all = listed.flatMap(({repository, tags}) => (tags ?? []).map((tag) => ({repository, tag})))
    this.counts.tagsKnown = all.length
    return sampleOf(all, n, (t) => `${t.repository}:${t.tag}`)
  }

  /** The catalog's repositories, or undefined when it does not answer one; with a tree, compared with it. */
  private async checkCatalog(): Promise<string[] | undefined> {
    this.checked.add('catalog')
    const answer = await this.probe({method: 'GET', path: '/v2/_catalog', read: 'body', limit: MAX_DOCUMENT_BYTES})
    if (this.transportFailed(answer)) return undefined
    if (answer.status !== 200 || !answer.body) {
      this.find('catalog', answer, `status ${answer.status}`, `/v2/_catalog answered ${answer.status}${answer.error ? ` (${answer.error})` : ''}: repositories cannot be listed`)
      return undefined
    }
    let repositories: unknown
    try {
      repositories = (JSON.parse(answer.body.toString('utf8')) as {repositories?: unknown}).repositories
    } catch {
      repositories = undefined
    }
    if (!Array.isArray(repositories) || repositories.some((r) => typeof r !== 'string')) {
      this.find('catalog', answer, seenHeader(answer, 'Content-Type'), '/v2/_catalog is not {"repositories": [...]}')
      return undefined
    }
    const names = (repositories as string[]).filter((name) => {
      try {
        validateName(name)
        return true
      } catch {
        this.find('catalog', answer, seenHeader(answer, 'Content-Type'), `/v2/_catalog lists an invalid repository name ${quoted(name)}`)
        return false
      }
    })
    if (this.tree) {
      const expected = Object.keys(this.tree.index.repositories).sort()
      const live = [...names].sort()
      if (expected.join('\n') !== live.join('\n')) {
        const absent = expected.filter((r) => !live.includes(r))
        const extra = live.filter((r) => !expected.includes(r))
        this.find('catalog', answer, `${live.length} repositories`, `/v2/_catalog differs from the tree${absent.length ? `: lacks ${absent.slice(0, 5).join(', ')}` : ''}${extra.length ? `; lists ${extra.slice(0, 5).join(', ')} the tree has not` : ''}`)
      }
    }
    return names
  }

  /** A repository's tags from its tags list (undefined when there is none); with a tree, compared with it. */
  private async checkTagsList(repository: string): Promise<string[] | undefined> {
    this.checked.add('tags-list')
    const answer = await this.probe({method: 'GET', path: `/v2/${repository}/tags/list`, read: 'body', limit: MAX_DOCUMENT_BYTES})
    if (this.transportFailed(answer)) return undefined
    this.checkCacheHeaders(answer, 'mutable')
    if (answer.status !== 200 || !answer.body) {
      this.find('tags-list', answer, `status ${answer.status}`, `${repository}: tags/list answered ${answer.status}${answer.error ? ` (${answer.error})` : ''}: tags cannot be listed`)
      return undefined
    }
    let doc: {name?: unknown; tags?: unknown} | undefined
    try {
      doc = JSON.parse(answer.body.toString('utf8')) as typeof doc
    } catch {
      doc = undefined
    }
    if (!doc || doc.name !== repository || !Array.isArray(doc.tags) || doc.tags.some((t) => typeof t !== 'string' || !isTag(t))) {
      this.find('tags-list', answer, seenHeader(answer, 'Content-Type'), `${repository}: tags/list is not {"name": "${repository}", "tags": [...]} with valid tags`)
      return undefined
    }
    const tags = doc.tags as string[]
    const expected = this.tree?.index.repositories[repository]
    if (this.tree && (!expected || Object.keys(expected.tags).sort().join('\n') !== [...tags].sort().join('\n'))) {
      this.find('tags-list', answer, `${tags.length} tags`, `${repository}: tags/list differs from the tree (${expected ? Object.keys(expected.tags).length : 0} tags there)`)
    }
    return tags
  }

  private checkCacheHeaders(answer: Answer, kind: 'mutable' | 'immutable'): void {
    if (answer.status !== 200) return
    this.checked.add('cache-headers')
    const cacheControl = answer.headers['cache-control']
    const maxAge = maxAgeOf(cacheControl)
    if (kind === 'immutable' && !/immutable/i.test(cacheControl ?? '') && (maxAge === undefined || maxAge < 86_400)) {
      this.find('cache-headers', answer, seenHeader(answer, 'Cache-Control'), 'content addressed by digest never changes: caches could keep it for a year (public, max-age=31536000, immutable)')
    } else if (kind === 'mutable' && (/immutable/i.test(cacheControl ?? '') || (maxAge !== undefined && maxAge > 86_400))) {
      this.find('cache-headers', answer, seenHeader(answer, 'Cache-Control'), 'a tag or a list changes: cached this long, a retag is not seen for a long time')
    }
  }

  private checkCors(answer: Answer): void {
    if (this.corsChecked || answer.status !== 200) return
    this.corsChecked = true
    this.checked.add('cors')
    if (answer.headers['access-control-allow-origin'] === undefined) {
      this.find('cors', answer, seenHeader(answer, 'Access-Control-Allow-Origin'), 'browsers (registry web UIs) cannot read this registry')
    }
  }

  /** Content-Type of a manifest answer against the manifest's media type. */
  private checkContentType(answer: Answer, mediaType: string, what: string): void {
    const contentType = answer.headers['content-type']
    const isIndex = INDEX_MEDIA_TYPES.has(mediaType)
    this.checked.add(isIndex ? 'index-content-type' : 'manifest-content-type')
    this.checked.add('content-type-parameters')
    if (baseType(contentType) !== mediaType) {
      this.find(isIndex ? 'index-content-type' : 'manifest-content-type', answer, seenHeader(answer, 'Content-Type'), `${what} is ${mediaType}, served as ${contentType === undefined ? 'no type' : quoted(contentType)}`)
    } else if (contentType !== mediaType) {
      this.find('content-type-parameters', answer, seenHeader(answer, 'Content-Type'), `${what}: Content-Type carries parameters`)
    }
  }

  /** HEAD and GET of a tag: the rules of the clients that resolve a tag. Returns the manifest to walk. */
  private async checkTag(target: Target): Promise<{repository: string; digest: string; manifest: ParsedManifest} | undefined> {
    const ref = `${target.repository}:${target.tag}`
    const path = `/v2/${target.repository}/manifests/${target.tag}`
    const [head, get] = await Promise.all([
      this.probe({method: 'HEAD', path, accept: ACCEPT_MANIFESTS, read: 'none'}),
      this.probe({method: 'GET', path, accept: ACCEPT_MANIFESTS, read: 'body', limit: MAX_MANIFEST_BYTES}),
    ])
    this.checked.add('content-live')
    if (this.transportFailed(get)) return undefined
    if (get.status !== 200) {
      this.find('content-live', get, `status ${get.status}`, `${ref} answered ${get.status}${target.expected ? ' (the tree has it: missing)' : ''}`)
      if (target.expected) this.missing.push(ref)
      return undefined
    }
    this.checked.add('manifest-size')
    if (get.error || !get.body || !get.digest) {
      if (/larger than/.test(get.error ?? '')) this.find('manifest-size', get, seenHeader(get, 'Content-Length'), `${ref}: the manifest is larger than ${MAX_MANIFEST_BYTES} bytes`)
      else this.find('content-live', get, seenHeader(get, 'Content-Length'), `${ref}: ${get.error ?? 'no body'}`)
      return undefined
    }
    this.checkCors(get)
    this.checkCacheHeaders(get, 'mutable')
    this.checked.add('get-content-length')
    if (get.headers['content-encoding'] !== undefined || get.headers['content-length'] === undefined) {
      this.find('get-content-length', get, get.headers['content-encoding'] !== undefined ? seenHeader(get, 'Content-Encoding') : seenHeader(get, 'Content-Length'), `${ref}: a Go client gets this manifest without a length (oras pull refuses it)`)
    }
    const digest = get.digest
    this.checked.add('tag-digest-header')
    const getDigest = get.headers['docker-content-digest']
    if (getDigest !== undefined && getDigest !== digest) {
      this.find('tag-digest-header', get, seenHeader(get, 'Docker-Content-Digest'), `${ref}: GET says ${quoted(getDigest)} but its bytes are ${digest}`)
    }
    let manifest: ParsedManifest
    try {
      manifest = parseManifest(get.body, ref)
    } catch (error) {
      this.find('content-live', get, seenHeader(get, 'Content-Type'), `${ref}: not a manifest reg can read (${(error as Error).message})`)
      return undefined
    }
    const mediaType = this.tree?.index.manifests[digest]?.mediaType ?? manifest.mediaType
    this.checkContentType(get, mediaType, `GET ${ref}`)
    // HEAD: what containerd, oras, regctl and crane digest resolve the tag with.
    this.checked.add('head')
    this.checked.add('tag-head-digest')
    this.checked.add('head-content-length')
    if (!this.transportFailed(head)) {
      if (head.status !== 200) {
        this.find('head', head, `status ${head.status}`, `${ref}: HEAD answered ${head.status}, GET 200`)
      } else {
        this.checkContentType(head, mediaType, `HEAD ${ref}`)
        const headDigest = head.headers['docker-content-digest']
        if (headDigest === undefined) this.find('tag-head-digest', head, seenHeader(head, 'Docker-Content-Digest'), `${ref}: HEAD does not say the tag's digest`)
        else if (headDigest !== digest) this.find('tag-digest-header', head, seenHeader(head, 'Docker-Content-Digest'), `${ref}: HEAD says ${quoted(headDigest)} but GET serves ${digest}: clients that resolve with HEAD pull other content`)
        const length = head.headers['content-length']
        if (length === undefined) this.find('head-content-length', head, seenHeader(head, 'Content-Length'), `${ref}: HEAD has no Content-Length`)
        else if (Number(length) !== get.body.length) this.find('head', head, seenHeader(head, 'Content-Length'), `${ref}: HEAD says ${quoted(length)} bytes, GET serves ${get.body.length}`)
      }
    }
    if (target.expected && target.expected !== digest) {
      this.stale.push(`${ref} (live ${digest}, tree ${target.expected})`)
      this.find('content-live', get, seenHeader(get, 'Docker-Content-Digest'), `${ref} is stale: it serves ${digest}, the tree has ${target.expected}`)
      return undefined
    }
    this.visited.add(`${target.repository}@${digest}`)
    this.counts.manifests++
    return {repository: target.repository, digest, manifest}
  }

  /** Every manifest and blob the checked tags reach, once per repository and digest, level by level. */
  private async walk(roots: Array<{repository: string; digest: string; manifest: ParsedManifest}>): Promise<void> {
    let level: Node[] = roots.flatMap((root) => this.childrenOf(root.repository, root.digest, root.manifest))
    let reached = 0
    while (level.length > 0) {
      const next = level.filter((node) => {
        const key = `${node.repository}@${node.digest}`
        if (this.visited.has(key)) return false
        this.visited.add(key)
        return true
      })
      reached += next.length
      if (reached > MAX_GRAPH_NODES * Math.max(1, roots.length)) {
        throw new RegError(`the registry's images reach more than ${MAX_GRAPH_NODES} manifests and blobs each`, 'reg refuses graphs this large; the registry is broken or hostile')
      }
      const children = await mapLimit(next, this.concurrency, (node) => (node.kind === 'manifest' ? this.checkManifest(node) : this.checkBlob(node).then(() => [])))
      level = children.flat()
    }
  }

  private childrenOf(repository: string, digest: string, manifest: ParsedManifest): Node[] {
    const from = `${repository}@${digest}`
    if (manifest.kind === 'index') return manifest.manifests.map((d) => ({repository, digest: d.digest, size: d.size, mediaType: d.mediaType, kind: 'manifest' as const, from}))
    return [manifest.config, ...manifest.layers].map((d) => ({repository, digest: d.digest, size: d.size, mediaType: d.mediaType, kind: 'blob' as const, from}))
  }

  private async checkManifest(node: Node): Promise<Node[]> {
    const ref = `${node.repository}@${node.digest}`
    const get = await this.probe({method: 'GET', path: `/v2/${node.repository}/manifests/${node.digest}`, accept: ACCEPT_MANIFESTS, read: 'body', limit: MAX_MANIFEST_BYTES})
    this.counts.manifests++
    if (!this.checkContent(get, node, ref) || !get.body) return []
    this.checkCacheHeaders(get, 'immutable')
    this.checkContentType(get, node.mediaType, `${ref} (listed by ${node.from})`)
    try {
      return this.childrenOf(node.repository, node.digest, parseManifest(get.body, ref, node.mediaType))
    } catch (error) {
      this.find('content-live', get, seenHeader(get, 'Content-Type'), `${ref}: not a manifest reg can read (${(error as Error).message})`)
      return []
    }
  }

  /** Status, bytes and size of content addressed by digest; false when there is nothing more to read from it. */
  private checkContent(answer: Answer, node: Node, ref: string): boolean {
    this.checked.add('redirect')
    this.checked.add('redirect-token')
    this.checked.add('content-live')
    this.checked.add('digest-content')
    if (this.transportFailed(answer)) return false
    const challenge = answer.headers['www-authenticate'] ?? ''
    if (answer.status === 401 && answer.redirects.length > 0 && /^\s*bearer\b/i.test(challenge)) {
      // Redirected to a registry that wants a token: only clients that answer a challenge from another host pull.
      this.find('redirect-token', answer, seenHeader(answer, 'WWW-Authenticate'), `${ref} (listed by ${node.from}) is redirected to a location that asks for a token`)
      return false
    }
    if (answer.status !== 200) {
      this.find('content-live', answer, `status ${answer.status}`, `${ref} (listed by ${node.from}) answered ${answer.status}`)
      if (this.tree) this.missing.push(ref)
      return false
    }
    if (answer.error) {
      if (node.kind === 'manifest' && /larger than/.test(answer.error)) this.find('manifest-size', answer, seenHeader(answer, 'Content-Length'), `${ref}: ${answer.error}`)
      else this.find('content-live', answer, seenHeader(answer, 'Content-Length'), `${ref}: ${answer.error}`)
      return false
    }
    if (answer.digest !== undefined && (answer.digest !== node.digest || answer.length !== node.size)) {
      this.find('digest-content', answer, seenHeader(answer, 'Content-Length'), `${ref}: the bytes are ${answer.digest} (${answer.length} bytes), not ${node.digest} (${node.size} bytes)`)
      if (this.tree) this.stale.push(ref)
      return false
    }
    const length = answer.headers['content-length']
    if (answer.digest === undefined && (length === undefined || Number(length) !== node.size)) {
      this.find('digest-content', answer, seenHeader(answer, 'Content-Length'), `${ref}: the length is not the descriptor's ${node.size} bytes`)
      return false
    }
    const headerDigest = answer.headers['docker-content-digest']
    if (headerDigest !== undefined && headerDigest !== node.digest) {
      this.find('digest-content', answer, seenHeader(answer, 'Docker-Content-Digest'), `${ref}: the header names another digest`)
    }
    return true
  }

  /** A blob: streamed and hashed while the byte budget lasts (all of them with --all), else HEAD. */
  private async checkBlob(node: Node): Promise<void> {
    const ref = `${node.repository}@${node.digest} (blob)`
    const path = `/v2/${node.repository}/blobs/${node.digest}`
    const stream = node.size <= this.blobBudget
    if (stream) this.blobBudget -= node.size
    const answer = await this.probe(stream ? {method: 'GET', path, read: 'hash', limit: node.size} : {method: 'HEAD', path, read: 'none'})
    this.counts.blobs++
    if (stream) {
      this.counts.blobsStreamed++
      this.counts.bytesStreamed += answer.length ?? 0
    }
    this.checked.add('blob-encoding')
    const encoding = answer.headers['content-encoding']
    if (answer.status === 200 && encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
      this.find('blob-encoding', answer, seenHeader(answer, 'Content-Encoding'), `${ref}: a Go client decodes this and the bytes no longer match the digest`)
      return
    }
    if (!this.checkContent(answer, node, ref)) return
    this.checkCacheHeaders(answer, 'immutable')
    if (stream && !this.rangeChecked && node.size > 1) {
      this.rangeChecked = true
      await this.checkRange(path, answer, ref)
    }
  }

  private async checkRange(path: string, full: Answer, ref: string): Promise<void> {
    this.checked.add('range')
    const ranged = await this.probe({method: 'GET', path, range: 'bytes=0-0', read: 'hash', limit: 1})
    if (this.transportFailed(ranged)) return
    if (ranged.status !== 206 || ranged.length !== 1) {
      this.find('range', ranged, `status ${ranged.status}`, `${ref}: Range bytes=0-0 answered ${ranged.status}${ranged.status === 206 ? ` with ${ranged.length} bytes` : ''}: interrupted downloads start over`)
    } else if (!/\bbytes\b/i.test(full.headers['accept-ranges'] ?? '')) {
      this.find('range', full, seenHeader(full, 'Accept-Ranges'), `${ref}: ranges work but are not announced`)
    }
  }

  /** Missing content must answer 404: clients fall back (referrers, mirrors) only on 404. */
  private async checkMissing(repository: string): Promise<void> {
    this.checked.add('missing-404')
    for (const kind of ['manifests', 'blobs'] as const) {
      const answer = await this.probe({method: 'GET', path: `/v2/${repository}/${kind}/${MISSING_DIGEST}`, accept: kind === 'manifests' ? ACCEPT_MANIFESTS : undefined, read: 'none'})
      if (this.transportFailed(answer)) continue
      if (answer.status !== 404) {
        this.find('missing-404', answer, `status ${answer.status}`, `a ${kind === 'manifests' ? 'manifest' : 'blob'} that does not exist answered ${answer.status}, not 404: clients read that as an error, not as "absent"`)
      }
    }
  }

  /** The referrers API of a live manifest, or its fallback, the sha256-<hex> tag. */
  private async checkReferrers(repository: string, digest: string): Promise<void> {
    this.checked.add('referrers')
    const api = await this.probe({method: 'GET', path: `/v2/${repository}/referrers/${digest}`, accept: MediaType.OciIndex, read: 'body', limit: MAX_DOCUMENT_BYTES})
    if (this.transportFailed(api)) return
    if (api.status === 200) {
      if (baseType(api.headers['content-type']) !== MediaType.OciIndex) this.find('referrers', api, seenHeader(api, 'Content-Type'), `the referrers API answers 200 without being typed as an OCI index (${MediaType.OciIndex})`)
      return
    }
    if (api.status !== 404) {
      this.find('referrers', api, `status ${api.status}`, `the referrers API answered ${api.status}: clients fall back to the sha256-<hex> tag only on 404`)
      return
    }
    const tag = await this.probe({method: 'GET', path: `/v2/${repository}/manifests/${referrersTag(digest)}`, accept: MediaType.OciIndex, read: 'body', limit: MAX_MANIFEST_BYTES})
    if (this.transportFailed(tag)) return
    if (tag.status === 200 && baseType(tag.headers['content-type']) !== MediaType.OciIndex) {
      this.find('referrers', tag, seenHeader(tag, 'Content-Type'), `the referrers tag ${referrersTag(digest)} is not typed as an OCI index`)
    } else if (tag.status !== 200 && tag.status !== 404) {
      this.find('referrers', tag, `status ${tag.status}`, `the referrers tag ${referrersTag(digest)} answered ${tag.status}, neither an index nor 404`)
    }
  }

  /**
   * The tree's referrers documents (and with --all, every tag of the tree the sample skipped is already
   * covered): each live with the tree's bytes, typed as an OCI index.
   */
  private async checkTreeDocuments(targets: Target[]): Promise<void> {
    const tree = this.tree!
    const repositories = new Set(targets.map((t) => t.repository))
    const documents = tree.objects.filter((o) => o.class === 'referrers' && o.repository !== undefined && (this.options.all || repositories.has(o.repository)))
    await mapLimit(documents, this.concurrency, async (object) => {
      this.checked.add('referrers')
      const answer = await this.probe({method: 'GET', path: `/${object.path}`, accept: MediaType.OciIndex, read: 'body', limit: MAX_DOCUMENT_BYTES})
      const ref = `/${object.path}`
      const node: Node = {repository: object.repository!, digest: object.digest, size: object.size, mediaType: MediaType.OciIndex, kind: 'manifest', from: 'the tree'}
      if (!this.checkContent(answer, node, ref)) return
      if (baseType(answer.headers['content-type']) !== MediaType.OciIndex) this.find('referrers', answer, seenHeader(answer, 'Content-Type'), `${ref}: not typed as an OCI index`)
    })
  }

  private report(): VerifyReport {
    const clients = [...(this.options.clients ?? CLIENT_IDS)]
    const verdicts = Object.fromEntries(CLIENT_IDS.map((client) => {
      const failedRules = RULES.filter((rule) => this.found.has(rule.id) && rule.breaks.includes(client)).map((rule) => rule.id)
      const warnedRules = RULES.filter((rule) => this.found.has(rule.id) && rule.warns.includes(client)).map((rule) => rule.id)
      const verdict: Verdict = failedRules.length > 0 ? 'fail' : warnedRules.length > 0 ? 'warn' : 'pass'
      return [client, {verdict, failedRules, warnedRules}]
    })) as VerifyReport['verdicts']
    return {
      url: this.options.url,
      clients,
      verdicts,
      rules: RULES.map((rule) => ({id: rule.id, checks: rule.checks, checked: this.checked.has(rule.id), broken: this.found.get(rule.id)?.count ?? 0, breaks: rule.breaks, warns: rule.warns})),
      findings: RULES.flatMap((rule) => this.found.get(rule.id)?.kept ?? []),
      coverage: {sampled: !this.options.all, ...this.counts, requests: this.prober.requests},
      ...(this.tree ? {tree: {missing: this.missing, stale: this.stale}} : {}),
      failing: clients.filter((client) => verdicts[client].verdict === 'fail'),
    }
  }
}

/** Check a live registry against the rules of each client (and, with a tree, against what was deployed). */
export async function verifyRegistry(options: VerifyOptions): Promise<VerifyReport> {
  let url: URL
  try {
    url = new URL(options.url)
  } catch {
    throw new RegError(`${quoted(options.url)} is not a URL`, 'give the registry as http(s)://HOST[:PORT], e.g. https://registry.example.com')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RegError(`${quoted(options.url)} is not an http(s) URL`, 'give the registry as http(s)://HOST[:PORT]')
  if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
    throw new RegError(`${quoted(options.url)}: a registry lives at the root of its host`, 'clients only ask for /v2/ at the host root: give http(s)://HOST[:PORT], and name images with --image NAME:TAG')
  }
  if (options.sample !== undefined && (!Number.isSafeInteger(options.sample) || options.sample < 1)) throw new RegError('--sample must be a positive number of tags')
  // The authority as typed (not url.origin, which lowercases it): hosts like s3rver route by the Host header's case.
  return new Verification({...options, url: options.url.replace(/\/+$/, '')}).run()
}

