import {sha256} from '../core/digest.js'
import {formatPlatform} from '../core/manifest.js'
import type {GeneratedDocument} from '../tree/objects.js'
import type {ManifestRecord, TreeState} from '../tree/model.js'
import {formatBytes} from '../ui/format.js'
import {PAGE_CSS, PAGE_JS} from './assets.js'

/**
 * The catalog page: a static site generated from the tree's state, beside `/v2/` and never under
 * it. Every name, tag, label and artifact type in it was chosen by someone else: HTML gets them
 * escaped, the script gets them as JSON files (served as application/json, never inlined).
 *
 *   index.html                      the repositories (first REPOSITORIES_RENDERED; the rest in r/-/repositories-N.json)
 *   -/page.<hash>.css, .js          the stylesheet and script, immutable
 *   r/<name>/-/index.html           a repository: its newest TAGS_RENDERED tags; all of them in r/<name>/-/tags-N.json
 *
 * `-` cannot be a component of a repository name, so no repository's files run into another's.
 * Data files are cut in pieces from the oldest entry, so a new tag changes the last piece only
 * and an incremental deploy sends that one.
 */
export const ROOT_PAGE = 'index.html'
export const ASSETS_DIR = '-'
export const REPOSITORIES_DIR = 'r'
/** the top-level directories of the page's files, beside its root file (for hosts that list or route by prefix) */
export const PAGE_ROOTS = [ASSETS_DIR, REPOSITORIES_DIR] as const
/**
 * Where hosts that rewrite URLs (nginx, Apache) keep the root page: inside the page's directories,
 * which they list, so a deploy that changes nothing sends nothing and --prune removes it. They
 * answer `/` and `/index.html` from it.
 */
export const ROOT_PAGE_STORED = `${REPOSITORIES_DIR}/-/${ROOT_PAGE}`

/**
 * The page's URLs as patterns (without the leading `/`), for hosts that route or set headers by
 * pattern: the hashed assets, the data files, a repository's page (its directory URL or its file).
 */
export const PAGE_PATTERNS = {
  asset: `${ASSETS_DIR}/page\\.[a-f0-9]{16}\\.(css|js)`,
  data: `${REPOSITORIES_DIR}/(.+/)?-/[a-z]+-[0-9]+\\.json`,
  repository: `${REPOSITORIES_DIR}/.+/-/(${ROOT_PAGE.replace('.', '\\.')})?`,
} as const

const REPOSITORIES_RENDERED = 100
const REPOSITORIES_PER_CHUNK = 1000
const TAGS_RENDERED = 25
const TAGS_PER_CHUNK = 500
/** a data piece ends early when it reaches this many bytes (tags of indexes with many platforms) */
const CHUNK_BYTES = 256 * 1024
/** platforms listed per tag; an index may hold thousands */
const PLATFORMS_LISTED = 64
/** namespaces offered by the filter (the most populated); the search box finds the others */
const NAMESPACES_LISTED = 200

const HTML_ESCAPES: Record<string, string> = {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}

/** Text safe in HTML content and in a double-quoted attribute. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c])
}

/** `-/page.<16 hex of its sha256>.<extension>`: a new body is a new name. */
function assetPath(extension: string, body: string): string {
  return `${ASSETS_DIR}/page.${sha256(Buffer.from(body)).slice(7, 23)}.${extension}`
}

const CSS_PATH = assetPath('css', PAGE_CSS)
const JS_PATH = assetPath('js', PAGE_JS)

/** The page's URL of a repository, from the site's root. */
export function repositoryPagePath(name: string): string {
  return `${REPOSITORIES_DIR}/${name}/-/${ROOT_PAGE}`
}

interface Attachment {
  kind: string
  type: string
}

interface PlatformEntry {
  platform: string
  size: number
}

/** One tag as the page shows it (and as the data files hold it). */
interface TagEntry {
  tag: string
  digest: string
  created?: string
  platforms: PlatformEntry[]
  morePlatforms?: number
  attached?: Attachment[]
}

interface RepositoryEntry {
  name: string
  tags: number
  updated?: string
  description?: string
}

type State = Pick<TreeState, 'repositories' | 'manifests' | 'blobs' | 'settings'>

/** What a referrer is, from its artifact type, in a word a reader knows. */
function attachmentKind(artifactType: string): string {
  const type = artifactType.toLowerCase()
  if (/sbom|spdx|cyclonedx|syft/.test(type)) return 'SBOM'
  if (/signature|\.sig\b|cosign\.artifact\.sig|notary|sigstore/.test(type)) return 'signature'
  if (/in-toto|attestation|provenance|slsa|\.att\b/.test(type)) return 'attestation'
  return 'attached'
}

/** cosign's tags: `sha256-<hex>.sig` (signature), `.att` (attestation), `.sbom`, attached to `sha256:<hex>`. */
const COSIGN_TAG = /^sha256-([a-f0-9]{64})\.(sig|att|sbom)$/
const COSIGN_KINDS: Record<string, Attachment> = {
  sig: {kind: 'signature', type: 'cosign signature (tag)'},
  att: {kind: 'attestation', type: 'cosign attestation (tag)'},
  sbom: {kind: 'SBOM', type: 'cosign SBOM (tag)'},
}

/** buildx's attestation manifests in an index (platform unknown/unknown): not a platform to pull. */
function isPlatform(record: ManifestRecord | undefined): boolean {
  return record !== undefined && !(record.platform?.os === 'unknown' && record.platform.architecture === 'unknown')
}

function laterOf(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return Date.parse(b) > Date.parse(a) ? b : a
}

/** The compressed size of an image: its layers (every blob but the config). */
function imageSize(state: State, record: ManifestRecord): number {
  return record.blobs.slice(1).reduce((sum, blob) => sum + (state.blobs[blob]?.size ?? 0), 0)
}

class RepositoryView {
  readonly tags: TagEntry[]
  readonly labels: Record<string, string>
  readonly updated?: string

  constructor(private readonly state: State, readonly name: string) {
    const repository = state.repositories[name]
    const attachments = this.attachments(repository)
    this.tags = []
    for (const [tag, digest] of Object.entries(repository.tags)) {
      if (COSIGN_TAG.test(tag)) continue
      this.tags.push(this.entry(tag, digest, attachments))
    }
    // Oldest first (the order of the data files); the page shows them the other way round.
    const time = (t: TagEntry) => (t.created === undefined ? -Infinity : Date.parse(t.created))
    this.tags.sort((a, b) => time(a) - time(b) || (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0))
    const newest = this.tags.at(-1)
    this.updated = this.tags.reduce<string | undefined>((latest, t) => laterOf(latest, t.created), undefined)
    this.labels = newest ? this.labelsOf(newest.digest) : {}
  }

  /** subject digest → what is attached to it: referrers in the repository, and cosign's tags */
  private attachments(repository: TreeState['repositories'][string]): Map<string, Attachment[]> {
    const bySubject = new Map<string, Attachment[]>()
    const add = (subject: string, attachment: Attachment) => {
      // One badge per kind (the first artifact type names it): a subject may have thousands of referrers.
      const listed = bySubject.get(subject) ?? []
      if (!listed.some((a) => a.kind === attachment.kind)) listed.push(attachment)
      bySubject.set(subject, listed)
    }
    for (const digest of [...Object.values(repository.tags), ...(repository.untagged ?? [])]) {
      const record = this.state.manifests[digest]
      if (record?.subject) add(record.subject, {kind: attachmentKind(record.artifactType ?? ''), type: record.artifactType ?? 'unknown'})
    }
    for (const tag of Object.keys(repository.tags)) {
      const match = COSIGN_TAG.exec(tag)
      if (match) add(`sha256:${match[1]}`, COSIGN_KINDS[match[2]])
    }
    return bySubject
  }

  private entry(tag: string, digest: string, attachments: Map<string, Attachment[]>): TagEntry {
    const record = this.state.manifests[digest]
    const images = record.kind === 'index' ? record.children.filter((c) => isPlatform(this.state.manifests[c])) : [digest]
    let created: string | undefined
    const platforms: PlatformEntry[] = []
    const attached: Attachment[] = [...(attachments.get(digest) ?? [])]
    for (const image of images) {
      const child = this.state.manifests[image]
      created = laterOf(created, child.config?.created)
      if (platforms.length < PLATFORMS_LISTED) platforms.push({platform: formatPlatform(child.platform) ?? '', size: child.kind === 'image' ? imageSize(this.state, child) : 0})
      if (image !== digest) for (const a of attachments.get(image) ?? []) if (!attached.some((b) => b.kind === a.kind)) attached.push(a)
    }
    return {
      tag, digest, ...(created ? {created} : {}), platforms,
      ...(images.length > platforms.length ? {morePlatforms: images.length - platforms.length} : {}),
      ...(attached.length > 0 ? {attached} : {}),
    }
  }

  private labelsOf(digest: string): Record<string, string> {
    const record = this.state.manifests[digest]
    if (record.kind === 'image') return record.config?.labels ?? {}
    for (const child of record.children) {
      const labels = this.state.manifests[child]?.config?.labels
      if (labels) return labels
    }
    return {}
  }

  summary(): RepositoryEntry {
    const description = this.labels['org.opencontainers.image.description'] ?? this.labels['org.opencontainers.image.title']
    return {name: this.name, tags: this.tags.length, ...(this.updated ? {updated: this.updated} : {}), ...(description ? {description} : {})}
  }
}

/** Pieces of `entries` in order: at most `count` entries and (but for one entry alone) `bytes` bytes of JSON each. */
function chunked<T>(entries: T[], count: number, bytes: number): Array<{first: number; items: T[]}> {
  const chunks: Array<{first: number; items: T[]}> = []
  let current: {first: number; items: T[]} | undefined
  let size = 0
  entries.forEach((entry, i) => {
    const length = JSON.stringify(entry).length + 1
    if (!current || current.items.length >= count || (size + length > bytes && current.items.length > 0)) {
      current = {first: i, items: []}
      chunks.push(current)
      size = 0
    }
    current.items.push(entry)
    size += length
  })
  return chunks.length > 0 ? chunks : [{first: 0, items: []}]
}

function when(created: string | undefined): string {
  return created ? `${created.slice(0, 16).replace('T', ' ')} UTC` : ''
}

/** The host of the public URL, for pull commands; undefined: the page's own host (filled in by the script). */
function pullHost(state: State): string | undefined {
  if (!state.settings.publicUrl) return undefined
  try {
    return new URL(state.settings.publicUrl).host
  } catch {
    return undefined
  }
}

function layout(title: string, root: string, host: string | undefined, content: string): string {
  // Everything the page loads is its own (also said as a policy, which every host serves with the file).
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="${root}${CSS_PATH}">
<script src="${root}${JS_PATH}" defer></script>
</head>
<body${host ? ` data-host="${escapeHtml(host)}"` : ''}>
${content}
<footer><p>A static registry built by reg. Pull with any OCI client; the registry API is at <a href="${root}v2/">/v2/</a>.</p></footer>
</body>
</html>
`
}

function hostText(host: string | undefined): string {
  return `<span class="host">${escapeHtml(host ?? 'HOST')}</span>`
}

function copyRow(label: string, code: string): string {
  return `<div class="row"><code>${code}</code><button type="button" class="copy" aria-label="${label}">Copy</button></div>`
}

function tagHtml(name: string, tag: TagEntry, host: string | undefined): string {
  const badges = (tag.attached ?? []).map((a) => `<span class="badge" title="${escapeHtml(a.type)}">${escapeHtml(a.kind)}</span>`).join('')
  const platforms = tag.platforms.map((p) => `<li><span>${escapeHtml(p.platform || 'image')}</span> <span class="muted">${formatBytes(p.size)}</span></li>`).join('')
  return `<li data-tag="${escapeHtml(tag.tag)}">
<div class="row"><span class="tag-name">${escapeHtml(tag.tag)}</span>${badges}${tag.created ? `<time class="muted" datetime="${escapeHtml(tag.created)}">${escapeHtml(when(tag.created))}</time>` : ''}</div>
${copyRow('Copy the pull command', `docker pull ${hostText(host)}/${escapeHtml(name)}:${escapeHtml(tag.tag)}`)}
${copyRow('Copy the digest', escapeHtml(tag.digest))}
<ul class="platforms">${platforms}${tag.morePlatforms ? `<li class="muted">+${tag.morePlatforms} more</li>` : ''}</ul>
</li>`
}

function labelsHtml(labels: Record<string, string>): string {
  const rows = Object.entries(labels).map(([key, value]) => {
    const shown = /^https?:\/\//i.test(value) ? `<a href="${escapeHtml(value)}" rel="nofollow noopener noreferrer">${escapeHtml(value)}</a>` : escapeHtml(value)
    return `<dt>${escapeHtml(key.replace('org.opencontainers.image.', ''))}</dt><dd>${shown}</dd>`
  })
  return rows.length > 0 ? `<dl class="labels">${rows.join('')}</dl>` : ''
}

function repositoryPage(view: RepositoryView, chunks: number, host: string | undefined): string {
  const root = '../'.repeat(view.name.split('/').length + 2)
  const newest = view.tags.slice(-TAGS_RENDERED).reverse()
  const content = `<header>
<p><a href="${root}${ROOT_PAGE}">All repositories</a></p>
<h1>${escapeHtml(view.name)}</h1>
<p class="muted">${view.tags.length} ${view.tags.length === 1 ? 'tag' : 'tags'}${view.updated ? `, updated ${escapeHtml(when(view.updated))}` : ''}</p>
${labelsHtml(view.labels)}
</header>
<main>
<ul class="list" id="tags" data-name="${escapeHtml(view.name)}" data-total="${view.tags.length}" data-rendered="${newest.length}" data-chunks="${chunks}" data-base="./">
${newest.map((tag) => tagHtml(view.name, tag, host)).join('\n')}
</ul>
<p><button type="button" id="more" hidden>Older tags</button></p>
${view.tags.length > newest.length ? `<noscript><p class="muted">${view.tags.length - newest.length} older tags: <a href="${root}v2/${escapeHtml(view.name)}/tags/list">the tags list</a>.</p></noscript>` : ''}
</main>`
  return layout(`${view.name} · registry`, root, host, content)
}

function rootPage(entries: RepositoryEntry[], chunks: number, host: string | undefined): string {
  const namespaces = new Map<string, number>()
  for (const {name} of entries) {
    const slash = name.indexOf('/')
    if (slash > 0) namespaces.set(name.slice(0, slash), (namespaces.get(name.slice(0, slash)) ?? 0) + 1)
  }
  const shown = entries.slice(0, REPOSITORIES_RENDERED)
  const items = shown.map((entry) => `<li data-name="${escapeHtml(entry.name)}"><div class="row"><a class="repo-name" href="${escapeHtml(repositoryPagePath(entry.name))}">${escapeHtml(entry.name)}</a><span class="muted">${entry.tags} ${entry.tags === 1 ? 'tag' : 'tags'}</span>${entry.updated ? `<span class="muted">updated ${escapeHtml(when(entry.updated))}</span>` : ''}</div>${entry.description ? `<div class="muted">${escapeHtml(entry.description)}</div>` : ''}</li>`)
  const listed = [...namespaces].sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1)).slice(0, NAMESPACES_LISTED)
  const options = listed.sort(([a], [b]) => (a < b ? -1 : 1)).map(([ns, count]) => `<option value="${escapeHtml(ns)}">${escapeHtml(ns)}/ (${count})</option>`)
  const content = `<header>
<h1>Registry</h1>
<p class="muted">${entries.length} ${entries.length === 1 ? 'repository' : 'repositories'}. Pull: <code>docker pull ${hostText(host)}/NAME:TAG</code></p>
</header>
<main>
<div class="filters">
<input id="search" type="search" placeholder="Search repositories" aria-label="Search repositories" autocomplete="off">
<select id="namespace" aria-label="Namespace"><option value="">All namespaces</option>${options.join('')}</select>
</div>
<p class="muted" id="count" aria-live="polite">${entries.length > shown.length ? `${shown.length} of ${entries.length} repositories shown` : `${entries.length} ${entries.length === 1 ? 'repository' : 'repositories'}`}</p>
<ul class="list" id="repositories" data-total="${entries.length}" data-chunks="${chunks}" data-base="${REPOSITORIES_DIR}/-/">
${items.join('\n')}
</ul>
${entries.length > shown.length ? `<noscript><p class="muted">Every repository: <a href="v2/_catalog">/v2/_catalog</a>.</p></noscript>` : ''}
</main>`
  return layout('Registry', '', host, content)
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value))
}

/** The page's files for a tree's state (none unless `settings.page`). Sorted input, so the same state gives the same bytes. */
export function pageDocuments(state: State): GeneratedDocument[] {
  if (!state.settings.page) return []
  const host = pullHost(state)
  const documents: GeneratedDocument[] = [
    {path: CSS_PATH, class: 'page-asset', contentType: 'text/css; charset=utf-8', bytes: Buffer.from(PAGE_CSS)},
    {path: JS_PATH, class: 'page-asset', contentType: 'text/javascript; charset=utf-8', bytes: Buffer.from(PAGE_JS)},
  ]
  const entries: RepositoryEntry[] = []
  for (const name of Object.keys(state.repositories).sort()) {
    const view = new RepositoryView(state, name)
    entries.push(view.summary())
    const chunks = chunked(view.tags, TAGS_PER_CHUNK, CHUNK_BYTES)
    const dir = `${REPOSITORIES_DIR}/${name}/-`
    chunks.forEach((chunk, i) => documents.push({path: `${dir}/tags-${i}.json`, class: 'page-data', repository: name, contentType: 'application/json', bytes: json({first: chunk.first, tags: chunk.items})}))
    documents.push({path: repositoryPagePath(name), class: 'page', repository: name, contentType: 'text/html; charset=utf-8', bytes: Buffer.from(repositoryPage(view, chunks.length, host))})
  }
  const chunks = chunked(entries, REPOSITORIES_PER_CHUNK, CHUNK_BYTES)
  chunks.forEach((chunk, i) => documents.push({path: `${REPOSITORIES_DIR}/-/repositories-${i}.json`, class: 'page-data', contentType: 'application/json', bytes: json({first: chunk.first, repositories: chunk.items})}))
  documents.push({path: ROOT_PAGE, class: 'page', contentType: 'text/html; charset=utf-8', bytes: Buffer.from(rootPage(entries, chunks.length, host))})
  return documents
}
