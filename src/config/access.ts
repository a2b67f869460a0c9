import {randomBytes} from 'node:crypto'
import {mkdir, rename, unlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {RegError} from '../core/errors.js'
import {quoted} from '../core/quote.js'
import {readHtpasswd} from '../server/push.js'
import type {RegistryObject} from '../tree/model.js'

/**
 * Who may read what: the users of an htpasswd file (bcrypt only) and the repositories that need
 * one of them. Every host that enforces it (`reg serve --read-auth`, the nginx and Apache
 * configurations) reads the same policy, so a name is private on all of them or on none.
 *
 * `--private` globs match repository names: `*` is any characters but `/`, `**` any characters
 * (`team/**` is every repository under team/). Without `--private`, everything is private.
 */
export interface AccessPolicy {
  /** user → bcrypt hash */
  users: ReadonlyMap<string, string>
  /** the globs, as given (`**` alone when the whole registry is private) */
  privatePatterns: readonly string[]
  /** whether a repository name needs credentials */
  isPrivate(name: string): boolean
  /** one regular expression (no anchors) matching exactly the private names, case-insensitively read by hosts */
  namePattern: string
}

/** The realm of every Basic challenge reg's hosts send (`WWW-Authenticate: Basic realm="reg"`). */
export const AUTH_REALM = 'reg'

/** Where a file host keeps its copy of the htpasswd: beside the served directory, never inside it. */
export function htpasswdCopyPath(target: string): string {
  return `${target}.reg-auth/htpasswd`
}

const PATTERN = /^[a-z0-9._/*-]+$/

/** A `--private` glob as a regular expression (no anchors); refused when it could not match a repository name. */
export function privatePatternRegex(pattern: string): string {
  if (!PATTERN.test(pattern) || pattern.startsWith('/') || pattern.endsWith('/') || pattern.includes('//')) {
    throw new RegError(`--private ${quoted(pattern)} is not a glob of repository names`, 'lowercase name components joined by /, with * (any characters but /) and ** (any characters), e.g. --private \'team/**\'')
  }
  return pattern.split(/(\*\*|\*)/).map((part) => (part === '**' ? '.*' : part === '*' ? '[^/]*' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('')
}

type GlobToken = {kind: 'literal'; char: string} | {kind: 'star'} | {kind: 'globstar'}

/**
 * Whether `name` matches the glob, in time linear in the name for each token of the glob. The names
 * come from HTTP clients: a regular expression of several `.*` backtracks polynomially (a 800-character
 * name against four `**` took 113 ms, and twice the name sixteen times that) on the event loop.
 */
export function globMatches(glob: readonly GlobToken[], name: string): boolean {
  const text = name.toLowerCase()
  let at = new Uint8Array(text.length + 1)
  at[0] = 1
  for (const token of glob) {
    const next = new Uint8Array(text.length + 1)
    if (token.kind === 'literal') {
      for (let i = 0; i < text.length; i++) if (at[i] && text[i] === token.char) next[i + 1] = 1
    } else {
      // From any reached position on, as far as the token may run: to the end (**), or to the next / (*).
      let running = false
      for (let i = 0; i <= text.length; i++) {
        if (at[i]) running = true
        if (running) next[i] = 1
        if (token.kind === 'star' && text[i] === '/') running = false
      }
    }
    at = next
  }
  return at[text.length] === 1
}

function globTokens(pattern: string): GlobToken[] {
  return pattern.split(/(\*\*|\*)/).flatMap((part): GlobToken[] => (part === '**' ? [{kind: 'globstar'}] : part === '*' ? [{kind: 'star'}] : [...part.toLowerCase()].map((char) => ({kind: 'literal', char}))))
}

/** The policy of `--auth-file FILE [--private GLOB...]`. */
export function accessPolicy(users: ReadonlyMap<string, string>, privatePatterns: readonly string[] = []): AccessPolicy {
  const patterns = privatePatterns.length > 0 ? [...new Set(privatePatterns)] : ['**']
  // The regular expression is for hosts that match it themselves (nginx, Apache); reg matches the globs.
  const namePattern = patterns.map(privatePatternRegex).map((source) => `(?:${source})`).join('|')
  const globs = patterns.map(globTokens)
  return {users, privatePatterns: patterns, isPrivate: (name) => globs.some((glob) => globMatches(glob, name)), namePattern}
}

/**
 * Read `--auth-file` (bounded; bcrypt entries only, refused by line number, never showing a hash)
 * and the `--private` globs. `flag` names the option in messages.
 */
export async function readAccessPolicy(authFile: string, privatePatterns: readonly string[] | undefined, flag = '--auth-file'): Promise<AccessPolicy> {
  const users = await readHtpasswd(authFile, flag)
  if (users.size === 0) throw new RegError(`${flag} ${authFile} has no users`, 'add one with `htpasswd -B FILE USER`: with no users nobody could read the private repositories')
  return accessPolicy(users, privatePatterns)
}

/**
 * The deploy flags of access control, checked: a policy when `--auth-file` is given, undefined when
 * neither is; `--private` alone is refused (nothing would check the credentials).
 */
export async function deployAccessPolicy(flags: {'auth-file'?: string; private?: string[]}): Promise<AccessPolicy | undefined> {
  if (flags['auth-file'] === undefined) {
    if (flags.private?.length) throw new RegError('--private needs --auth-file HTPASSWD', 'the users who may read the private repositories: an htpasswd file of bcrypt entries (`htpasswd -B -c FILE USER`)')
    return undefined
  }
  return readAccessPolicy(flags['auth-file'], flags.private)
}

/** The htpasswd a host reads: the checked entries only (comments and blank lines dropped). */
export function htpasswdText(policy: AccessPolicy): string {
  return [...policy.users].map(([user, hash]) => `${user}:${hash}\n`).join('')
}

/**
 * Digests (manifests and blobs) that only private repositories reference. A host that stores each
 * digest once and answers it under any repository's URL must ask for credentials for these whatever
 * name the URL gives; what a public repository also holds is public anyway.
 */
export function privateOnlyDigests(policy: AccessPolicy, objects: readonly RegistryObject[]): string[] {
  const privateDigests = new Set<string>()
  const publicDigests = new Set<string>()
  for (const object of objects) {
    if ((object.class !== 'blob' && object.class !== 'digest-manifest') || object.repository === undefined) continue
    ;(policy.isPrivate(object.repository) ? privateDigests : publicDigests).add(object.digest)
  }
  return [...privateDigests].filter((digest) => !publicDigests.has(digest)).sort()
}

/**
 * Write the host's copy of the htpasswd (`htpasswdCopyPath`), replaced atomically; its path. Mode
 * 0644: the server's workers (another user) read it; it holds bcrypt hashes, never a password.
 */
export async function installHtpasswd(policy: AccessPolicy, target: string): Promise<string> {
  const file = htpasswdCopyPath(target)
  await mkdir(path.dirname(file), {recursive: true, mode: 0o755})
  const temp = `${file}.tmp-${randomBytes(6).toString('hex')}`
  try {
    await writeFile(temp, htpasswdText(policy), {mode: 0o644})
    await rename(temp, file)
  } catch (error) {
    await unlink(temp).catch(() => undefined)
    throw error
  }
  return file
}

/** What follows a repository's name in its URLs (`/v2/NAME/manifests/...`): a host's rule matches a private name before it. */
export const REPOSITORY_URL_SUFFIX = '/(?:manifests|blobs|tags|referrers)/'
