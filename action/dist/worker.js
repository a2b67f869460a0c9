// reg's registry Worker: the read side of `reg serve` over an R2 bucket that `reg deploy --backend
// cloudflare` filled (one object per URL, its Content-Type and Cache-Control as HTTP metadata, its
// digest as custom metadata `docker-content-digest`). Uploaded as is, with no dependencies; what
// differs per deploy comes from bindings:
//   REGISTRY              the R2 bucket
//   REG_KEY_PREFIX        prefix of every key (--key-prefix), may be empty
//   REG_TAG_MAX_AGE       Cache-Control max-age of what the tree does not hold (an empty referrers index)
//   REG_MAX_FILTER_BYTES  the largest document filtered or paginated in memory (reg's MAX_FILTERED_REFERRERS_BYTES)
//   REG_BASIC_AUTH        optional secret: lines `user:pbkdf2-sha256:ITERATIONS:SALT:HASH` (base64);
//                         when present, the ping and the private repositories need one of these
//                         users (HTTP Basic)
//   REG_ACCESS            with REG_BASIC_AUTH: JSON {"realm", "privateNames"}, the Basic realm and one
//                         regular expression of the private repository names (src/config/access.ts);
//                         absent: every repository is private
//   REG_CORS              optional: JSON {"response": {...}, "preflight": {...}}, the CORS headers of
//                         every answer and of the 204 answer to OPTIONS, as reg computed them
//                         (src/core/cors.ts); absent: no CORS headers, OPTIONS is 405 (--cors off)
// The catalog page (reg build --page) is served from its objects beside /v2/, as reg serve answers it:
// `/` and `/index.html` are index.html, a directory URL under r/ or -/ its index.html.

const API_VERSION = 'registry/2.0'
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
const TAG = '[A-Za-z0-9_][A-Za-z0-9._-]{0,127}'
const DIGEST = 'sha256:[a-f0-9]{64}'
const MANIFEST_URL = new RegExp(`^v2/.+/manifests/(${TAG}|${DIGEST})$`)
const BLOB_URL = new RegExp(`^v2/.+/blobs/${DIGEST}$`)
const NAME_COMPONENT = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$/
const DIGEST_ENCODINGS = {sha256: /^[a-f0-9]{64}$/, sha512: /^[a-f0-9]{128}$/}

/** The URLs under a repository's name, most specific first (as reg serve routes them). */
const REPOSITORY_URLS = [
  [/^v2\/(.+)\/blobs\/uploads\/$/, 'upload'],
  [/^v2\/(.+)\/blobs\/uploads\/([^/]+)$/, 'upload-session'],
  [/^v2\/(.+)\/manifests\/([^/]+)$/, 'manifest'],
  [/^v2\/(.+)\/blobs\/([^/]+)$/, 'blob'],
  [/^v2\/(.+)\/tags\/list$/, 'tags-list'],
  [/^v2\/(.+)\/referrers\/([^/]*)$/, 'referrers'],
]

/** Classes whose object is the stored one at the URL's path. */
const STORED = new Set(['api-root', 'catalog', 'manifest', 'blob', 'tags-list', 'page'])

/** The catalog page's root file, and the directories its other files are in (src/page/documents.ts: ROOT_PAGE, PAGE_ROOTS). */
const ROOT_PAGE = 'index.html'
const PAGE_ROOTS = ['-/', 'r/']

export function routeOf(path) {
  if (path === 'v2') return {class: 'api-version', path}
  if (path === 'v2/') return {class: 'api-root', path}
  if (path === 'v2/_catalog') return {class: 'catalog', path}
  const page = pageRoute(path)
  if (page) return page
  for (const [pattern, urlClass] of REPOSITORY_URLS) {
    const match = pattern.exec(path)
    if (match) return {class: urlClass, path, name: match[1], reference: match[2] ?? ''}
  }
  return {class: 'unknown', path}
}

/**
 * A URL of the catalog page, as reg serve routes it: `/` and a directory are their index.html. Only
 * ever an object key under the page's own directories (`-` is no repository name component, and
 * nothing of the registry is stored under `r/` or `-/`), so it never reaches a /v2/ object.
 */
function pageRoute(path) {
  if (path === '' || path === ROOT_PAGE) return {class: 'page', path: ROOT_PAGE}
  if (!PAGE_ROOTS.some((root) => path.startsWith(root))) return undefined
  return {class: 'page', path: path.endsWith('/') ? `${path}${ROOT_PAGE}` : path}
}

class HttpError extends Error {
  constructor(status, code, message, headers = {}, hint = undefined) {
    super(message)
    this.status = status
    this.code = code
    this.headers = headers
    this.hint = hint
  }
}

function notFound(path) {
  if (MANIFEST_URL.test(path)) return new HttpError(404, 'MANIFEST_UNKNOWN', 'manifest unknown')
  if (BLOB_URL.test(path)) return new HttpError(404, 'BLOB_UNKNOWN', 'blob unknown to registry')
  return new HttpError(404, 'NAME_UNKNOWN', 'repository name not known to registry')
}

/** A value someone else chose, as reg's messages show it: quoted, at most 80 characters, printable ASCII. */
function quoted(text, max = 80) {
  const shown = text.length > max ? text.slice(0, max) : text
  const escaped = shown.replaceAll(/[^\x20-\x7e]|["\\]/g, (c) => (c === '"' || c === '\\' ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`))
  return text.length > max ? `"${escaped}"... (${text.length} characters)` : `"${escaped}"`
}

/** reg's repository name grammar (lowercase components, any depth), refused with reg serve's 400 NAME_INVALID. */
function checkName(name) {
  const invalid = (message, hint) => new HttpError(400, 'NAME_INVALID', message, {}, hint)
  if (name.length === 0) throw invalid('empty repository name', 'give a name such as team/app')
  if (name.length > 255) throw invalid(`repository name ${quoted(name)} is longer than 255 characters`)
  for (const component of name.split('/')) {
    if (component === '') throw invalid(`invalid repository name ${quoted(name)}: empty path component`, 'remove the doubled or trailing "/"')
    if (component === '.' || component === '..') throw invalid(`invalid repository name ${quoted(name)}: "${component}" is not allowed`, 'name components may not be "." or ".."')
    if (!NAME_COMPONENT.test(component)) {
      const hint = component !== component.toLowerCase() ? 'repository names must be lowercase' : 'components are lowercase letters and digits, separated by ".", "_", "__" or "-"'
      throw invalid(`invalid repository name ${quoted(name)}: component ${quoted(component)} is not allowed`, hint)
    }
  }
}

function isWellFormedDigest(value) {
  const match = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(value)
  return match !== null && (DIGEST_ENCODINGS[match[1]]?.test(match[2]) ?? true)
}

/**
 * Every response is made here, with the API version (not on the catalog page's files, which are no
 * registry answer: as reg serve sends them); `complete` adds what holds for the whole request.
 */
function respond(status, headers, body, apiVersion = true) {
  const all = new Headers(headers)
  if (apiVersion) all.set('Docker-Distribution-API-Version', API_VERSION)
  return new Response(body, {status, headers: all})
}

let corsMemo = {text: undefined, value: undefined}

/** The REG_CORS binding, parsed once per isolate; undefined: no CORS. */
function corsOf(env) {
  const text = env.REG_CORS
  if (!text) return undefined
  if (corsMemo.text !== text) corsMemo = {text, value: JSON.parse(text)}
  return corsMemo.value
}

/**
 * The one place every answer's headers are completed: the CORS headers (errors too: a page reads a
 * 404 as well), and `private` caching for what shared caches must not keep (see isShared).
 */
function complete(response, env, shared) {
  const cors = corsOf(env)
  if (cors) for (const [name, value] of Object.entries(cors.response)) response.headers.set(name, value)
  const cacheControl = response.headers.get('Cache-Control')
  if (!shared && cacheControl) response.headers.set('Cache-Control', cacheControl.replace(/^public\b/, 'private'))
  return response
}

function json(status, body, contentType, cacheControl, method, extra = {}) {
  const bytes = new TextEncoder().encode(body)
  return respond(status, {'Content-Type': contentType, 'Content-Length': String(bytes.length), 'Cache-Control': cacheControl, ...extra}, method === 'HEAD' ? null : bytes)
}

function errorResponse(error, method) {
  const detail = error.hint === undefined ? {} : {detail: error.hint}
  return json(error.status, JSON.stringify({errors: [{code: error.code, message: error.message, ...detail}]}), 'application/json', 'no-store', method, error.headers)
}

/** A single `bytes=a-b` range; undefined: all of it (multi-range is not supported, as the spec allows). */
export function parseRange(header, size) {
  if (!header) return undefined
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.replace(/^[ \t]+|[ \t]+$/g, ''))
  if (!match || (match[1] === '' && match[2] === '')) return undefined
  let start
  let end
  if (match[1] === '') {
    const suffix = Number(match[2])
    if (suffix === 0) return 'unsatisfiable'
    start = Math.max(0, size - suffix)
    end = size - 1
  } else {
    start = Number(match[1])
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1)
  }
  if (start >= size || start > end) return 'unsatisfiable'
  return {start, end}
}

/** The headers an object is served with, from its metadata. */
function objectHeaders(object, route) {
  const digest = object.customMetadata?.['docker-content-digest']
  const headers = {
    'Content-Type': object.httpMetadata?.contentType ?? 'application/octet-stream',
    'Cache-Control': object.httpMetadata?.cacheControl ?? 'no-cache',
    ETag: `"${digest ?? object.etag}"`,
  }
  if (digest && (route.class === 'manifest' || route.class === 'blob')) headers['Docker-Content-Digest'] = digest
  if (route.class === 'blob') headers['Accept-Ranges'] = 'bytes'
  return headers
}

/** Digests and tags are cached at the edge for as long as their Cache-Control says (immutable, or the tags' max-age). */
function cacheKeyOf(request, route) {
  return new Request(new URL(`/${route.path.split('/').map(encodeURIComponent).join('/')}`, request.url).toString(), {method: 'GET'})
}

function keyOf(env, route) {
  return (env.REG_KEY_PREFIX ?? '') + route.path
}

/** The stored object at the route's path: GET and HEAD alike, If-None-Match, Range on blobs. */
async function serveStored(request, env, ctx, route) {
  const reply = (status, headers, body) => respond(status, headers, body, route.class !== 'page')
  const method = request.method
  const ifNoneMatch = request.headers.get('If-None-Match')
  const range = route.class === 'blob' ? request.headers.get('Range') : null
  const cache = typeof caches === 'undefined' ? undefined : caches.default
  const cacheKey = cacheKeyOf(request, route)
  if (cache && method === 'GET' && !range) {
    const hit = await cache.match(cacheKey)
    if (hit) {
      if (ifNoneMatch && ifNoneMatch === hit.headers.get('ETag')) return reply(304, notModified(hit.headers), null)
      return reply(200, hit.headers, sized(hit.body, Number(hit.headers.get('Content-Length')), ctx))
    }
  }
  const bucket = env.REGISTRY
  const key = keyOf(env, route)
  // The metadata alone when no body goes out (HEAD, 304) or the body's range depends on the size.
  if (method === 'HEAD' || ifNoneMatch || range) {
    const head = await bucket.head(key)
    if (!head) throw notFound(route.path)
    const headers = objectHeaders(head, route)
    if (ifNoneMatch && ifNoneMatch === headers.ETag) return reply(304, notModified(headers), null)
    const wanted = range ? parseRange(range, head.size) : undefined
    if (wanted === 'unsatisfiable') return reply(416, {...headers, 'Content-Range': `bytes */${head.size}`, 'Content-Length': '0'}, null)
    if (method === 'HEAD') return reply(wanted ? 206 : 200, {...headers, 'Content-Length': String(wanted ? wanted.end - wanted.start + 1 : head.size), ...(wanted ? {'Content-Range': `bytes ${wanted.start}-${wanted.end}/${head.size}`} : {})}, null)
    if (wanted) {
      const part = await bucket.get(key, {range: {offset: wanted.start, length: wanted.end - wanted.start + 1}})
      if (!part) throw notFound(route.path)
      return reply(206, {...headers, 'Content-Length': String(wanted.end - wanted.start + 1), 'Content-Range': `bytes ${wanted.start}-${wanted.end}/${head.size}`}, part.body)
    }
  }
  const object = await bucket.get(key)
  if (!object) throw notFound(route.path)
  const headers = {...objectHeaders(object, route), 'Content-Length': String(object.size)}
  if (cache && method === 'GET' && object.size > 0 && /max-age=[1-9]/.test(headers['Cache-Control'])) {
    const [mine, cached] = object.body.tee()
    ctx.waitUntil(cache.put(cacheKey, new Response(cached, {headers})).catch(() => undefined))
    return reply(200, headers, sized(mine, object.size, ctx))
  }
  return reply(200, headers, object.size === 0 ? null : object.body)
}

/** A stream without a length of its own (a branch of a tee, a cached body) sent with Content-Length, not chunked. */
function sized(body, length, ctx) {
  if (!body || !Number.isSafeInteger(length)) return body
  const fixed = new FixedLengthStream(length)
  ctx.waitUntil(body.pipeTo(fixed.writable).catch(() => undefined))
  return fixed.readable
}

/** A 304 carries the object's headers but those of a body (as reg serve answers it). */
function notModified(headers) {
  const copy = new Headers(headers)
  copy.delete('Content-Length')
  copy.delete('Accept-Ranges')
  return copy
}

/** A stored JSON document, read whole when it is small enough; undefined when absent or too large. */
async function readDocument(env, route) {
  const limit = Number(env.REG_MAX_FILTER_BYTES ?? 4194304)
  const head = await env.REGISTRY.head(keyOf(env, route))
  if (!head) return {present: false}
  if (head.size > limit) return {present: true}
  const object = await env.REGISTRY.get(keyOf(env, route))
  if (!object) return {present: false}
  return {present: true, value: JSON.parse(await object.text()), head}
}

/** `?n=&last=` pagination of a tags list, with a `Link` to the next page (as reg serve answers it). */
async function tagsPage(request, env, ctx, route, url) {
  const document = await readDocument(env, route)
  if (!document.present) throw notFound(route.path)
  if (!document.value) return serveStored(request, env, ctx, route)
  const {name, tags} = document.value
  const last = url.searchParams.get('last')
  const n = url.searchParams.has('n') ? Number(url.searchParams.get('n')) : undefined
  if (n !== undefined && (!Number.isInteger(n) || n < 0)) throw new HttpError(400, 'PAGINATION_NUMBER_INVALID', 'invalid number of results requested')
  const after = last === null ? tags : tags.filter((tag) => tag > last)
  const page = n === undefined ? after : after.slice(0, n)
  const link = n !== undefined && n > 0 && after.length > n ? {Link: `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(page[page.length - 1])}>; rel="next"`} : {}
  return json(200, JSON.stringify({name, tags: page}), 'application/json', document.head.httpMetadata?.cacheControl ?? 'no-cache', request.method, link)
}

/** The referrers API: the stored index of the subject, else an empty one (never a 404); `?artifactType=` filters. */
async function referrers(request, env, ctx, route, url) {
  checkName(route.name)
  if (!isWellFormedDigest(route.reference)) throw new HttpError(400, 'DIGEST_INVALID', 'the referrers API takes a digest, algorithm:encoded (sha256:<64 hex digits>)')
  const artifactType = url.searchParams.get('artifactType')
  const document = artifactType ? await readDocument(env, route) : {present: Boolean(await env.REGISTRY.head(keyOf(env, route)))}
  if (document.present && !document.value) return serveStored(request, env, ctx, route)
  let manifests = document.value?.manifests ?? []
  if (artifactType) manifests = manifests.filter((entry) => entry.artifactType === artifactType)
  const cacheControl = document.head?.httpMetadata?.cacheControl ?? `public, max-age=${Number(env.REG_TAG_MAX_AGE ?? 60)}`
  return json(200, JSON.stringify({schemaVersion: 2, mediaType: OCI_INDEX, manifests}), OCI_INDEX, cacheControl, request.method, artifactType ? {'OCI-Filters-Applied': 'artifactType'} : {})
}

// ---- Basic auth: PBKDF2-SHA256 hashes from the REG_BASIC_AUTH secret, checked with Web Crypto.

const verified = new Map()
const MAX_REMEMBERED = 1000

function parseUsers(secret) {
  const users = new Map()
  for (const line of secret.split('\n')) {
    const match = /^([^:]+):pbkdf2-sha256:(\d+):([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(line.trim())
    if (match) users.set(match[1], {iterations: Number(match[2]), salt: match[3], hash: match[4]})
  }
  return users
}

function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0))
}

async function pbkdf2(password, salt, iterations, bytes) {
  const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(password), 'PBKDF2', false, ['deriveBits'])
  return new Uint8Array(await crypto.subtle.deriveBits({name: 'PBKDF2', hash: 'SHA-256', salt, iterations}, key, bytes * 8))
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false
  let difference = 0
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i]
  return difference === 0
}

/**
 * The Basic credentials of a request, or undefined when it sent none. An empty user and password
 * (`Basic Og==`) are none: containers/image (skopeo, podman) sends them to every URL after a Basic
 * ping when it has no credentials for the host. Another scheme is none too (as reg serve reads it).
 */
function basicCredentials(request) {
  const header = request.headers.get('Authorization') ?? ''
  const match = /^Basic +(\S*)$/i.exec(header)
  if (!match) return undefined
  let decoded
  try {
    decoded = new TextDecoder().decode(fromBase64(match[1]))
  } catch {
    return {header, user: '', password: ''}
  }
  if (decoded === '' || decoded === ':') return undefined
  const colon = decoded.indexOf(':')
  return colon > 0 ? {header, user: decoded.slice(0, colon), password: decoded.slice(colon + 1)} : {header, user: '', password: ''}
}

/** Whether the credentials are a listed user's. Successes are remembered in this isolate (a pull sends dozens of requests). */
async function authorized(credentials, secret) {
  const remembered = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(`${secret}\n${credentials.header}`)))
  const memo = btoa(String.fromCharCode(...remembered))
  if (verified.has(memo)) return true
  const users = parseUsers(secret)
  const user = credentials.user === '' ? undefined : users.get(credentials.user)
  // An unknown user costs the same work as a known one: a listed user's hash is computed anyway.
  const model = user ?? users.values().next().value
  if (!model) return false
  const expected = fromBase64(model.hash)
  const actual = await pbkdf2(credentials.password, fromBase64(model.salt), model.iterations, expected.length)
  if (!user || !equalBytes(actual, expected)) return false
  if (verified.size >= MAX_REMEMBERED) verified.clear()
  verified.set(memo, true)
  return true
}

// ---- Who may read what: REG_ACCESS (realm, private names) beside the REG_BASIC_AUTH users.

/** reg's longest repository name: a longer one is no repository, and is not matched (the pattern's work stays bounded). */
const MAX_NAME_LENGTH = 255
let accessMemo = {text: undefined, value: undefined}

/**
 * The access policy, or undefined for a public registry. Without REG_ACCESS (or unreadable), every
 * repository is private: it fails closed.
 */
function accessOf(env) {
  if (!env.REG_BASIC_AUTH) return undefined
  const text = env.REG_ACCESS ?? ''
  if (accessMemo.text !== text) {
    let parsed = {}
    try {
      parsed = JSON.parse(text)
    } catch {}
    const realm = typeof parsed.realm === 'string' ? parsed.realm : 'reg'
    let names = /^(?:.*)$/s
    try {
      if (typeof parsed.privateNames === 'string') names = new RegExp(`^(?:${parsed.privateNames})$`, 'i')
    } catch {}
    accessMemo = {text, value: {realm, names}}
  }
  return accessMemo.value
}

/** Whether a repository name needs a user (any spelling: the names are matched case-insensitively). */
function isPrivate(access, name) {
  return name.length > MAX_NAME_LENGTH || access.names.test(name)
}

/**
 * Whether an answer may be kept by shared caches: not when it needs a user (the catalog page
 * included), nor the catalog (its content depends on who asks).
 */
function isShared(access, route) {
  return access === undefined || (route.class !== 'catalog' && route.class !== 'page' && !(route.name !== undefined && isPrivate(access, route.name)))
}

/**
 * Who is reading: 'user' (good credentials) or 'anonymous' where that may read; else a 401 with the
 * Basic challenge. The API root always challenges an anonymous client (clients decide from the ping
 * whether to send credentials), a private repository's URLs need a user, wrong credentials are
 * refused wherever they are sent. Content that only private repositories hold needs no list of its
 * own here: each repository's URLs are R2 keys of their own (copies, never a shared object), so a
 * public name's URL never reaches a private repository's content.
 */
async function readerOf(request, env, route) {
  const access = accessOf(env)
  if (!access) return 'anonymous'
  const credentials = basicCredentials(request)
  // The catalog page lists every repository: it needs a user whenever anything is private (as reg serve's --read-auth).
  const needed = route.class === 'api-root' || route.class === 'page' || (route.name !== undefined && isPrivate(access, route.name))
  if (!credentials && !needed) return 'anonymous'
  if (credentials && await authorized(credentials, env.REG_BASIC_AUTH)) return 'user'
  throw new HttpError(401, 'UNAUTHORIZED', 'authentication required', {'WWW-Authenticate': `Basic realm="${access.realm}"`})
}

/** The catalog an anonymous client may see: the public repositories only (a private name is never told). */
async function publicCatalog(request, env, route) {
  const access = accessOf(env)
  const document = await readDocument(env, route)
  if (!document.present) throw notFound(route.path)
  // Too large to filter within a request's budget: only a user sees it.
  if (!document.value) throw new HttpError(401, 'UNAUTHORIZED', 'authentication required', {'WWW-Authenticate': `Basic realm="${access.realm}"`})
  const listed = Array.isArray(document.value.repositories) ? document.value.repositories : []
  const repositories = listed.filter((name) => typeof name === 'string' && !isPrivate(access, name))
  return json(200, JSON.stringify({repositories}), 'application/json', document.head.httpMetadata?.cacheControl ?? 'no-cache', request.method)
}

function decodedPath(url) {
  try {
    return decodeURIComponent(url.pathname).replace(/^\/+/, '')
  } catch {
    return url.pathname.replace(/^\/+/, '')
  }
}

async function handle(request, env, ctx, url, route) {
  const method = request.method
  if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'UNSUPPORTED', 'this registry is read-only: only GET and HEAD are supported', {Allow: 'GET, HEAD'})
  const reader = await readerOf(request, env, route)
  if (route.class === 'api-version') return respond(301, {Location: `/v2/${url.search}`, 'Content-Length': '0'}, null)
  if (route.class === 'catalog' && reader === 'anonymous' && accessOf(env)) return publicCatalog(request, env, route)
  if (route.class === 'tags-list' && (url.searchParams.has('n') || url.searchParams.has('last'))) return tagsPage(request, env, ctx, route, url)
  if (route.class === 'referrers') return referrers(request, env, ctx, route, url)
  if (STORED.has(route.class)) return serveStored(request, env, ctx, route)
  throw notFound(route.path.startsWith('v2/') ? route.path : '')
}

async function answer(request, env, ctx, url, route) {
  // A browser's preflight, for any URL, before anything else (it never carries credentials).
  const cors = corsOf(env)
  if (cors && request.method === 'OPTIONS') return respond(204, cors.preflight, null)
  try {
    return await handle(request, env, ctx, url, route)
  } catch (error) {
    if (error instanceof HttpError) return errorResponse(error, request.method)
    console.error(`reg worker: ${request.method} ${new URL(request.url).pathname}: ${error?.stack ?? error}`)
    return errorResponse(new HttpError(500, 'UNKNOWN', 'internal error'), request.method)
  }
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url)
    const route = routeOf(decodedPath(url))
    return complete(await answer(request, env, ctx, url, route), env, isShared(accessOf(env), route))
  },
}
