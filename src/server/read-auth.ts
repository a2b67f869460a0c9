import type http from 'node:http'
import {HttpError} from '../core/api-errors.js'
import {AUTH_REALM, type AccessPolicy} from '../config/access.js'
import type {LiveTree} from './live-tree.js'
import {type CheckResult, type PasswordCheckOptions, PasswordChecker} from './push-auth.js'
import {sendJson} from './respond.js'
import type {Handler, Route} from './routes.js'

export interface ReadAuthOptions {
  policy: AccessPolicy
  passwordChecks?: PasswordCheckOptions
}

/** Whether a request came with good credentials, or none (bad ones never get this far). */
export type Reader = 'user' | 'anonymous'

/**
 * The Basic credentials of a request, or undefined when it sent none. An empty user and password
 * (`Basic Og==`) are none: containers/image (skopeo, podman) sends them to every URL after a Basic
 * ping when it has no credentials for the host.
 */
export function basicCredentials(req: http.IncomingMessage): {user: string; password: string} | undefined {
  const header = String(req.headers.authorization ?? '')
  if (!/^basic /i.test(header)) return undefined
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8')
  if (decoded === ':' || decoded === '') return undefined
  const colon = decoded.indexOf(':')
  return colon > 0 ? {user: decoded.slice(0, colon), password: decoded.slice(colon + 1)} : {user: '', password: ''}
}

/**
 * `reg serve --read-auth HTPASSWD [--private GLOB...]`: Basic auth on reads. The API root always
 * challenges an anonymous client (clients decide from the ping whether to send credentials), a
 * private repository's URLs need a user, public ones are answered to anyone; the catalog lists the
 * public repositories to an anonymous client and every one to a user. Wrong credentials are refused
 * wherever they are sent. Passwords are checked by the same bcrypt worker as pushes (off the event
 * loop, throttled per address).
 */
export class ReadAuth {
  private readonly checker: PasswordChecker

  constructor(private readonly live: LiveTree, private readonly options: ReadAuthOptions) {
    this.checker = new PasswordChecker(options.policy.users, options.passwordChecks)
  }

  /** Who is reading: 'user' (good credentials) or 'anonymous' where that may read; else a 401 (or 429). */
  async authorize(req: http.IncomingMessage, route: Route): Promise<Reader> {
    const credentials = basicCredentials(req)
    const needed = this.needsUser(route)
    if (!credentials && !needed) return 'anonymous'
    const verdict: CheckResult = credentials ? await this.checker.check(credentials.user, credentials.password, req.socket.remoteAddress ?? '') : 'denied'
    if (verdict === 'throttled') throw new HttpError(429, 'TOOMANYREQUESTS', 'too many failed logins from this address: try again later', {headers: {'Retry-After': 60}})
    if (verdict === 'denied') throw new HttpError(401, 'UNAUTHORIZED', 'authentication required', {headers: {'WWW-Authenticate': `Basic realm="${AUTH_REALM}"`}})
    return 'user'
  }

  /** The API root, and every URL under a private repository's name (any spelling of it). */
  private needsUser(route: Route): boolean {
    // The catalog page lists every repository, whatever the reader: it needs a user, as on static hosts.
    if (route.class === 'api-root' || route.class === 'page') return true
    return route.name !== undefined && this.options.policy.isPrivate(route.name)
  }

  /** The catalog an anonymous client may see: the public repositories only (a private name is never told). */
  readonly publicCatalog: Handler = async ({res, method}) => {
    const tree = await this.live.current()
    const repositories = Object.keys(tree.index.repositories).filter((name) => !this.options.policy.isPrivate(name)).sort()
    sendJson(res, method, 200, JSON.stringify({repositories}), 'application/json', `public, max-age=${tree.index.settings.tagMaxAge}`)
    return true
  }

  close(): Promise<void> {
    return this.checker.close()
  }
}
