import {corsHeaders} from '../../src/core/cors.js'
import {RegError} from '../../src/core/errors.js'
import {REPOSITORIES_DIR} from '../../src/page/documents.js'
import {headerFilePageRules} from '../../src/publish/header-file-host.js'
import {cacheControls, ERROR_DOCUMENTS, MANIFEST_EXTENSIONS, STORE_DIR} from '../../src/publish/static-host.js'
import type {RegistryObject, TreeIndex} from '../../src/tree/model.js'
import {API_VERSION_HEADER} from '../../src/tree/objects.js'

/**
 * Cloudflare Pages' limits (developers.cloudflare.com/pages/platform/limits and the _headers and
 * _redirects pages), as `wrangler pages` enforces them: more rules are dropped, larger files refused.
 */
export const PAGES_LIMITS = {
  files: 20_000,
  fileBytes: 25 * 1024 * 1024,
  headerRules: 100,
  staticRedirects: 2000,
  dynamicRedirects: 100,
  ruleLineLength: 2000,
} as const

/** Pages reads `:name` anywhere in a rule as a placeholder matching one path segment. */
const PLACEHOLDER = /:[A-Za-z]\w*/

export const PAGES_INSTEAD = 'deploy this registry with --backend cloudflare (R2 behind a Worker: no file, size or rule limits)'

/**
 * The layout for Cloudflare Pages. Pages matches `_headers` rules against the URL requested (never
 * the file a 200 rewrite serves), joins the values of every rule that matches, reads at most 100
 * rules, and reads `:abc…` in a digest as a placeholder. So no rule names a digest, and the media
 * type of a manifest comes from where it is stored:
 *
 * - manifests are stored once, by media type: `_registry/manifests/<type>/<hex>`, one rule per type
 *   (Content-Type, and Docker-Content-Digest from the path: `sha256::splat`);
 * - a tag is a static 302 to its manifest's stored URL (tags never hold `:`), so a client reads the
 *   manifest's headers there, Docker-Content-Digest included;
 * - a manifest by digest cannot be routed by a static rule (its URL holds `sha256:<hex>`): one rule
 *   per namespace depth redirects it to `_registry/m/<hex>`, which a static rule per manifest
 *   redirects to its stored URL (two hops);
 * - blobs are stored once, `_registry/blobs/<hex>`, served at every repository's URL by one 200
 *   rewrite per depth, their headers (the digest from the URL) by one rule per depth;
 * - tags lists, the catalog and referrers are files at their URLs; Pages has no 404 rules: a
 *   missing URL is answered by `404.html` (a spec error body, as text/html);
 * - the catalog page (reg build --page) is files at their paths, beside /v2/: Pages serves `/` and
 *   a directory from its index.html by itself; its rules are the other header-file hosts' (a few
 *   URL shapes, whatever the number of repositories), plus one for a repository's directory URL,
 *   which Pages matches as requested, not as the index.html it serves.
 */
export function pagesStorageKey(object: RegistryObject): string | null {
  switch (object.class) {
    case 'blob': return `${STORE_DIR}/blobs/${hexOf(object.digest)}`
    case 'digest-manifest': return manifestKey(object)
    case 'tag-manifest': return null
    case 'api-root': return `${STORE_DIR}/v2.json`
    default: return object.path
  }
}

function hexOf(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1)
}

function kindOf(mediaType: string): string {
  const kind = MANIFEST_EXTENSIONS[mediaType]
  if (!kind) throw new RegError(`Cloudflare Pages: no layout for manifests of media type ${JSON.stringify(mediaType)}`, PAGES_INSTEAD)
  return kind
}

function manifestKey(object: Pick<RegistryObject, 'digest' | 'headers'>): string {
  return `${STORE_DIR}/manifests/${kindOf(object.headers['Content-Type'])}/${hexOf(object.digest)}`
}

function namePattern(depth: number): string {
  return `/v2/${Array.from({length: depth}, (_, i) => `:n${i + 1}`).join('/')}`
}

function block(pattern: string, headers: Record<string, string>): string {
  return `${pattern}\n${Object.entries(headers).map(([name, value]) => `  ${name}: ${value}`).join('\n')}\n`
}

export interface PagesConfig {
  headers: string
  redirects: string
  notFound: string
  /** counted as Pages counts them */
  counts: {headerRules: number; staticRedirects: number; dynamicRedirects: number}
}

/**
 * `_headers`, `_redirects` and `404.html` for a tree; every Pages limit on rules checked (RegError
 * naming it). `cors`: the origin CORS lets read, or undefined (no CORS headers).
 */
export function pagesConfig(index: Pick<TreeIndex, 'repositories' | 'settings' | 'objects'>, cors?: string): PagesConfig {
  const cache = cacheControls(index)
  const json = 'application/json'
  const depths = [...new Set(Object.keys(index.repositories).map((name) => name.split('/').length))].sort((a, b) => a - b)
  const headerRules: string[] = [
    block('/v2/*', API_VERSION_HEADER),
    block(`/${STORE_DIR}/*`, API_VERSION_HEADER),
    block('/v2/', {'Content-Type': json, 'Cache-Control': cache.root}),
    block('/v2/_catalog', {'Content-Type': json, 'Cache-Control': cache.mutable}),
  ]
  // CORS: one rule for every path (no other rule sets these headers, so Pages joins nothing). Pages
  // answers OPTIONS with 405 whatever the rules say: no preflight, so a page reads only what needs
  // none (GET and HEAD without Authorization or Range). Pages' asset server adds
  // `Access-Control-Allow-Origin: *` to every answer by itself: --cors off detaches it (`! NAME`).
  headerRules.push(cors === undefined ? '/*\n  ! Access-Control-Allow-Origin\n' : block('/*', corsHeaders(cors)))
  for (const [mediaType, kind] of Object.entries(MANIFEST_EXTENSIONS)) {
    headerRules.push(block(`/${STORE_DIR}/manifests/${kind}/*`, {'Content-Type': mediaType, 'Docker-Content-Digest': 'sha256::splat', 'Cache-Control': cache.immutable}))
  }
  const pageRules = headerFilePageRules(index)
  if (pageRules.length > 0) headerRules.push(...pageRules, block(`/${REPOSITORIES_DIR}/*/`, {'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': cache.mutable}))
  const staticRedirects: string[] = ['/v2  /v2/  301', `/v2/  /${STORE_DIR}/v2.json  200`]
  const dynamicRedirects: string[] = []
  for (const depth of depths) {
    const names = namePattern(depth)
    headerRules.push(
      block(`${names}/blobs/*`, {'Content-Type': 'application/octet-stream', 'Docker-Content-Digest': ':splat', 'Cache-Control': cache.immutable}),
      // the redirects of tags and digests
      block(`${names}/manifests/*`, {'Cache-Control': cache.mutable}),
      block(`${names}/tags/list`, {'Content-Type': json, 'Cache-Control': cache.mutable}),
      block(`${names}/referrers/*`, {'Content-Type': 'application/vnd.oci.image.index.v1+json', 'Cache-Control': cache.mutable}),
    )
    dynamicRedirects.push(
      `${names}/blobs/sha256:*  /${STORE_DIR}/blobs/:splat  200`,
      `${names}/manifests/sha256:*  /${STORE_DIR}/m/:splat  302`,
    )
  }
  const manifests = new Map<string, string>()
  for (const object of index.objects) {
    if (object.class === 'tag-manifest') staticRedirects.push(`/${object.path}  /${manifestKey(object)}  302`)
    if (object.class === 'digest-manifest') manifests.set(hexOf(object.digest), manifestKey(object))
  }
  for (const [hex, key] of [...manifests].sort(([a], [b]) => (a < b ? -1 : 1))) staticRedirects.push(`/${STORE_DIR}/m/${hex}  /${key}  302`)

  const counts = {headerRules: headerRules.length, staticRedirects: staticRedirects.length, dynamicRedirects: dynamicRedirects.length}
  const over = (what: string, count: number, limit: number, why: string) => {
    if (count > limit) throw new RegError(`Cloudflare Pages reads at most ${limit} ${what}; this registry needs ${count} (${why})`, PAGES_INSTEAD)
  }
  over('_headers rules', counts.headerRules, PAGES_LIMITS.headerRules, `${depths.length} namespace depths${pageRules.length > 0 ? `, ${pageRules.length + 1} for the catalog page` : ''}`)
  over('static _redirects rules', counts.staticRedirects, PAGES_LIMITS.staticRedirects, 'one per tag and one per manifest')
  over('dynamic _redirects rules', counts.dynamicRedirects, PAGES_LIMITS.dynamicRedirects, `two per namespace depth, ${depths.length} depths`)
  for (const rule of [...staticRedirects, ...headerRules.map((b) => b.split('\n')[0])]) {
    if (rule.length > PAGES_LIMITS.ruleLineLength) throw new RegError(`Cloudflare Pages ignores rule lines over ${PAGES_LIMITS.ruleLineLength} characters: ${rule.slice(0, 80)}…`, PAGES_INSTEAD)
  }
  // A static rule whose path Pages would read as a placeholder, or a splat, would match other URLs.
  for (const rule of staticRedirects) {
    const from = rule.split(/\s+/)[0]
    if (PLACEHOLDER.test(from) || from.includes('*')) throw new RegError(`internal: the static Pages rule for ${from} would be read as a pattern`)
  }
  return {
    headers: `# generated by reg: registry headers for Cloudflare Pages. Regenerated on every deploy.\n${headerRules.join('\n')}`,
    // static rules first: Pages reads a rule as static only before the first dynamic one
    redirects: `# generated by reg: registry routing for Cloudflare Pages.\n${[...staticRedirects, ...dynamicRedirects].join('\n')}\n`,
    notFound: ERROR_DOCUMENTS.find((doc) => doc.file === 'name-unknown.json')?.body ?? '',
    counts,
  }
}
