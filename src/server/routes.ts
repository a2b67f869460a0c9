import type http from 'node:http'
import {HttpError} from '../core/api-errors.js'
import {RegError} from '../core/errors.js'
import {validateName} from '../core/reference.js'
import {PAGE_ROOTS, ROOT_PAGE} from '../page/documents.js'

/**
 * What a URL of the distribution API addresses. `api-version` is `/v2` without its slash
 * (redirected); `upload` starts a blob upload, `upload-session` is one under way; `page` is a file
 * of the catalog page (outside `/v2/`); `unknown` is anything else (404 to a read).
 */
export type UrlClass = 'api-version' | 'api-root' | 'catalog' | 'tags-list' | 'manifest' | 'blob' | 'upload' | 'upload-session' | 'referrers' | 'page' | 'unknown'

export interface Route {
  class: UrlClass
  /** the URL's path, decoded, without its leading `/`: where the tree keeps the object */
  path: string
  /** the repository, as the URL spells it (not validated: see `repositoryOf`) */
  name?: string
  /** the tag or digest of a manifest, the digest of a blob or a subject, an upload's id */
  reference?: string
}

/** The URLs under a repository's name, most specific first (a repository cannot be named after their segments). */
const REPOSITORY_URLS: ReadonlyArray<[RegExp, UrlClass]> = [
  [/^v2\/(.+)\/blobs\/uploads\/$/, 'upload'],
  [/^v2\/(.+)\/blobs\/uploads\/([^/]+)$/, 'upload-session'],
  [/^v2\/(.+)\/manifests\/([^/]+)$/, 'manifest'],
  [/^v2\/(.+)\/blobs\/([^/]+)$/, 'blob'],
  [/^v2\/(.+)\/tags\/list$/, 'tags-list'],
  // a subject that is not a digest is the client's mistake (400), not an unknown URL
  [/^v2\/(.+)\/referrers\/([^/]*)$/, 'referrers'],
]

/** The class of a URL path (decoded, without its leading `/`). */
export function routeOf(path: string): Route {
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
 * A URL of the catalog page: `/` and a directory are their `index.html`, as static hosts answer
 * them. Only ever a key of the tree's objects: nothing here names a file.
 */
function pageRoute(path: string): Route | undefined {
  if (path === '' || path === ROOT_PAGE) return {class: 'page', path: ROOT_PAGE}
  if (!PAGE_ROOTS.some((root) => path.startsWith(`${root}/`))) return undefined
  return {class: 'page', path: path.endsWith('/') ? `${path}${ROOT_PAGE}` : path}
}

/** The repository a route names, validated: a name reg cannot hold is refused (400 NAME_INVALID). */
export function repositoryOf(route: Route): string {
  try {
    return validateName(route.name ?? '')
  } catch (error) {
    if (error instanceof RegError) throw new HttpError(400, 'NAME_INVALID', error.message, {hint: error.hint})
    throw error
  }
}

/** One request, as every handler sees it. */
export interface Exchange {
  req: http.IncomingMessage
  res: http.ServerResponse
  /** as sent: handlers of GET answer HEAD too, without a body */
  method: string
  route: Route
  /** for its query (`?digest=`, `?n=`, `?mount=`) */
  url: URL
}

/** Answers an exchange; false when it has nothing for it (the next handler of the route is asked). */
export type Handler = (exchange: Exchange) => Promise<boolean>
