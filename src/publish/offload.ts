import dns from 'node:dns'
import {mkdir, rename, writeFile} from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {Writable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {mapLimit} from '../core/concurrency.js'
import {digestHex, isDigest, VerifyingStream} from '../core/digest.js'
import {errnoCode, RegError} from '../core/errors.js'
import {MAX_DOCUMENT_BYTES, readFileBounded, TooLargeError} from '../core/limits.js'
import {validateName} from '../core/reference.js'
import {type AddressClass, addressClass, DEFAULT_UPSTREAM_TIMEOUT_SECONDS, discardBody, parseChallenges, RegistryClient} from '../sources/registry/client.js'
import type {RegistryObject} from '../tree/model.js'
import type {RegistryTree} from '../tree/registry-tree.js'
import type {Backend} from './backend.js'

/**
 * Blob offload: blobs that are already public elsewhere (a base image's layers) are not uploaded;
 * the host answers their URLs with a redirect there. Offload is a property of a deploy, not of a
 * tree: the tree keeps every blob (`reg serve` serves them all), and each deploy says where its
 * blobs may be fetched from instead.
 *
 * A location is one of:
 * - `docker://HOST/NAME`, or `https://HOST/NAME` / `http://HOST/NAME`: a registry, or a static
 *   registry (another reg tree on a web host): blob `D` is at `SCHEME://HOST/v2/NAME/blobs/D`.
 * - a URL with `{digest}` (`sha256:<hex>`) or `{hex}` (the bare hex) in its path: a bucket or any
 *   web folder of blobs, e.g. `https://bucket.example/blobs/sha256/{hex}`.
 *
 * A blob is offloaded to the first location that has it with the right size and digest: a HEAD
 * for the size on every deploy, and its bytes hashed once (the verdict is kept in a state file, so
 * the next deploy downloads nothing again).
 */

/** The clients a registry is pulled with, and whether each answers a token challenge after a redirect. */
export const OFFLOAD_CLIENTS = {
  containerd: {followsTokenChallenge: true, what: 'containerd (ctr, nerdctl, Kubernetes on containerd)'},
  'docker-containerd': {followsTokenChallenge: true, what: 'Docker Engine with the containerd image store'},
  docker: {followsTokenChallenge: false, what: 'Docker Engine with its classic image store'},
  podman: {followsTokenChallenge: false, what: 'podman (containers/image)'},
  skopeo: {followsTokenChallenge: false, what: 'skopeo (containers/image)'},
  'cri-o': {followsTokenChallenge: false, what: 'CRI-O (containers/image)'},
} as const satisfies Record<string, {followsTokenChallenge: boolean; what: string}>
export type OffloadClient = keyof typeof OFFLOAD_CLIENTS
export const OFFLOAD_CLIENT_NAMES = Object.keys(OFFLOAD_CLIENTS) as OffloadClient[]

/** For the hint when a backend cannot (each backend says whether it can: `capabilities.offloadRedirects`). */
const OFFLOAD_BACKENDS = 'nginx (a 302 in registry.conf), apache (a RewriteRule [R=302] in .htaccess), netlify (a 302 rule in _redirects), s3 (a website redirect object, answered 301 by the bucket\'s website endpoint)'

/** A redirect target: an absolute http(s) URL of characters no host configuration treats specially. */
const SAFE_URL = /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._~:/-]*)?$/
/** What a location's path may hold (before its placeholders are filled in). */
const SAFE_PATH = /^\/[A-Za-z0-9._~:/{}-]*$/

export interface OffloadLocation {
  /** as the user wrote it */
  spec: string
  /** the registry behind a registry-layout location, for the token flow */
  registry?: {host: string; plainHttp: boolean; repository: string}
  /** where blob `digest` is */
  blobUrl(digest: string): string
}

function badLocation(spec: string, why: string): RegError {
  return new RegError(`--offload ${JSON.stringify(spec)}: ${why}`, 'e.g. --offload docker://registry.example/library/debian, --offload https://other.example/base/app (a registry or a static registry: HOST/NAME) or --offload https://bucket.example/blobs/sha256/{hex}')
}

/** Parse one `--offload` location; refuses anything a redirect could not safely be built from. */
export function parseOffloadLocation(spec: string): OffloadLocation {
  const text = spec.startsWith('docker://') ? `https://${spec.slice('docker://'.length)}` : spec
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw badLocation(spec, 'not a URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badLocation(spec, 'only docker://, https:// and http:// locations')
  if (url.username || url.password) throw badLocation(spec, 'credentials cannot be part of a location: no client sends any to another host')
  if (url.search || url.hash) throw badLocation(spec, 'a location has no query or fragment')
  // The host and path as written (`new URL` would percent-encode the braces of the placeholders, and
  // read `\` as `/`): a plain HOST[:PORT], then the path.
  const scheme = /^https?:\/\//.exec(text)?.[0]
  const slash = scheme ? text.indexOf('/', scheme.length) : -1
  const authority = scheme ? text.slice(scheme.length, slash === -1 ? undefined : slash) : ''
  if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(authority)) throw badLocation(spec, 'write it as SCHEME://HOST[:PORT]/PATH (a host name or IPv4 address)')
  const pathPart = slash === -1 ? '/' : text.slice(slash)
  if (!SAFE_PATH.test(pathPart) || !SAFE_URL.test(`${url.protocol}//${url.host}/`)) throw badLocation(spec, 'only letters, digits and . _ ~ : / - in its path')
  const origin = `${url.protocol}//${url.host}`
  if (/\{(digest|hex)\}/.test(pathPart)) {
    if (/[{}]/.test(pathPart.replaceAll(/\{(digest|hex)\}/g, ''))) throw badLocation(spec, 'the only placeholders are {digest} and {hex}')
    return {spec, blobUrl: (digest) => origin + pathPart.replaceAll('{digest}', digest).replaceAll('{hex}', digestHex(digest))}
  }
  if (pathPart.includes('{') || pathPart.includes('}')) throw badLocation(spec, 'the only placeholders are {digest} and {hex}')
  const repository = pathPart.replace(/^\/+|\/+$/g, '')
  if (!repository) throw badLocation(spec, 'name the repository: HOST/NAME')
  try {
    validateName(repository)
  } catch (error) {
    throw badLocation(spec, (error as Error).message)
  }
  return {spec, registry: {host: url.host, plainHttp: url.protocol === 'http:', repository}, blobUrl: (digest) => `${origin}/v2/${repository}/blobs/${digest}`}
}

/** The redirect target of an offloaded blob: its digest and the URL checked again, whoever built them. */
export function offloadTarget(digest: string, url: string): string {
  if (!isDigest(digest) || !SAFE_URL.test(url)) throw new RegError(`internal: refusing the offload redirect ${JSON.stringify(url)} for ${JSON.stringify(digest)}`)
  return url
}

/** The header an offloaded blob object carries in the plan's `routed` list: the host answers it with a redirect there. */
export const OFFLOAD_HEADER = 'Location'

/** The blob object answered by a redirect to `url` instead of its bytes. */
export function offloadedObject(object: RegistryObject, url: string): RegistryObject {
  return {...object, headers: {...object.headers, [OFFLOAD_HEADER]: offloadTarget(object.digest, url)}}
}

/** digest → redirect target, of the offloaded blobs among the objects a host configuration routes. */
export function offloadRedirects(routed: readonly RegistryObject[]): Map<string, string> {
  const redirects = new Map<string, string>()
  for (const object of routed) {
    const url = object.class === 'blob' ? object.headers[OFFLOAD_HEADER] : undefined
    if (url !== undefined) redirects.set(object.digest, offloadTarget(object.digest, url))
  }
  return new Map([...redirects].sort(([a], [b]) => (a < b ? -1 : 1)))
}

/** How a location can be reached: `anonymous` (every client), `token` (an anonymous token first: only clients that answer a challenge after a redirect). */
export type OffloadAccess = 'anonymous' | 'token'

/** A location's verdict on one blob, kept between deploys. */
interface Verdict {
  size: number
  access: OffloadAccess
}

/** The verdicts of earlier deploys: location → digest → verdict (a blob's bytes are hashed once per location). */
export class OffloadState {
  private verdicts: Record<string, Record<string, Verdict>> = Object.create(null) as Record<string, Record<string, Verdict>>

  constructor(readonly file: string) {}

  /** Where a deploy to `backend` keeps its verdicts: in its destination (local hosts), else in the user's cache. */
  static fileFor(backend: Pick<Backend, 'name' | 'location' | 'localDirectory'>): string {
    if (backend.localDirectory) return path.join(backend.localDirectory, '.reg-offload.json')
    const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache')
    return path.join(cache, 'reg', `offload-${backend.name}-${Buffer.from(backend.location).toString('base64url').slice(0, 120)}.json`)
  }

  async load(): Promise<void> {
    let text: string
    try {
      text = (await readFileBounded(this.file, MAX_DOCUMENT_BYTES, `the offload state ${this.file}`)).toString('utf8')
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return
      if (error instanceof TooLargeError) throw new RegError(`${this.file} is too large for an offload state`, 'delete it: the next deploy checks every offloaded blob again')
      throw error
    }
    try {
      const parsed = JSON.parse(text) as {verdicts?: unknown}
      for (const [location, byDigest] of Object.entries(parsed.verdicts as Record<string, Record<string, Verdict>>)) {
        const kept = Object.create(null) as Record<string, Verdict>
        for (const [digest, verdict] of Object.entries(byDigest)) {
          if (!isDigest(digest) || !Number.isSafeInteger(verdict.size) || (verdict.access !== 'anonymous' && verdict.access !== 'token')) throw new Error('not a verdict')
          kept[digest] = {size: verdict.size, access: verdict.access}
        }
        this.verdicts[location] = kept
      }
    } catch {
      throw new RegError(`${this.file} is corrupt`, 'delete it: the next deploy checks every offloaded blob again')
    }
  }

  get(location: string, digest: string): Verdict | undefined {
    return this.verdicts[location]?.[digest]
  }

  set(location: string, digest: string, verdict: Verdict | undefined): void {
    const byDigest = (this.verdicts[location] ??= Object.create(null) as Record<string, Verdict>)
    if (verdict) byDigest[digest] = verdict
    else delete byDigest[digest]
  }

  async save(): Promise<void> {
    await mkdir(path.dirname(this.file), {recursive: true})
    const temp = `${this.file}.tmp-${process.pid}`
    await writeFile(temp, JSON.stringify({verdicts: this.verdicts}))
    await rename(temp, this.file)
  }
}

/** What a location answered for one blob. */
type Probe = {found: true; access: OffloadAccess} | {found: false; missing: boolean; why: string}

/** The address classes a location may send reg to: public ones, and those of the location's own host. */
async function classesOf(hostname: string): Promise<Set<AddressClass>> {
  const bare = hostname.replace(/^\[(.*)\]$/, '$1')
  const addresses = net.isIP(bare) ? [bare] : (await dns.promises.lookup(bare, {all: true})).map((a) => a.address)
  return new Set<AddressClass>(['public', ...addresses.map(addressClass)])
}

/**
 * The anonymous HEAD, as a client without credentials sees it: the size, and whether the location
 * (or where it redirects) asks for a token. Redirects are followed by hand, at most 5, and only to
 * addresses of the classes the registry client allows (public, or like the location's own).
 */
async function headAnonymous(url: string, signal?: AbortSignal): Promise<{status: number; size?: number; bearer: boolean}> {
  const timeout = AbortSignal.timeout(DEFAULT_UPSTREAM_TIMEOUT_SECONDS * 1000)
  const allowed = await classesOf(new URL(url).hostname)
  let current = new URL(url)
  for (let hops = 0; ; hops++) {
    const res = await fetch(current, {method: 'HEAD', redirect: 'manual', signal: signal ? AbortSignal.any([signal, timeout]) : timeout})
    const location = res.headers.get('location')
    if (res.status >= 300 && res.status < 400 && location && hops < 5) {
      const next = new URL(location, current)
      if (next.protocol !== 'http:' && next.protocol !== 'https:') return {status: res.status, bearer: false}
      const classes = await classesOf(next.hostname)
      if ([...classes].some((c) => !allowed.has(c))) return {status: res.status, bearer: false}
      current = next
      continue
    }
    const length = res.headers.get('content-length')
    const bearer = parseChallenges(res.headers.get('www-authenticate') ?? '').some((c) => c.scheme === 'bearer' && c.params.realm)
    return {status: res.status, size: length === null ? undefined : Number(length), bearer}
  }
}

/** One location's HTTP client: the registry client (token flow, deadlines, guarded redirects) for every GET. */
class LocationClient {
  private readonly client: RegistryClient
  private readonly repository?: string

  constructor(readonly location: OffloadLocation) {
    const url = new URL(location.blobUrl(`sha256:${'0'.repeat(64)}`))
    this.client = new RegistryClient(location.registry?.host ?? url.host, {plainHttp: (location.registry?.plainHttp ?? url.protocol === 'http:')})
    this.repository = location.registry?.repository
  }

  private pathOf(digest: string): string {
    const url = new URL(this.location.blobUrl(digest))
    return url.pathname
  }

  /** The size the location answers through the token flow. */
  async headWithToken(digest: string, signal?: AbortSignal): Promise<{status: number; size?: number}> {
    const res = await this.client.request('HEAD', this.pathOf(digest), this.repository, undefined, 'document', signal)
    discardBody(res)
    const length = res.headers['content-length']
    return {status: res.status, size: length === undefined ? undefined : Number(length)}
  }

  /** Download the blob and hash it; true when its bytes are `digest`. Returns the bytes read. */
  async verify(digest: string, size: number, signal?: AbortSignal): Promise<{ok: boolean; bytes: number}> {
    const res = await this.client.request('GET', this.pathOf(digest), this.repository, undefined, 'stream', signal)
    if (res.status !== 200) {
      discardBody(res)
      return {ok: false, bytes: 0}
    }
    const check = new VerifyingStream({digest, size, label: `offload copy ${digest} at ${this.location.spec}`})
    try {
      await pipeline(res.body, check, new Writable({write: (_chunk, _encoding, done) => done()}), {signal})
      return {ok: true, bytes: check.bytesSeen}
    } catch (error) {
      signal?.throwIfAborted()
      if (error instanceof RegError) return {ok: false, bytes: check.bytesSeen}
      throw error
    }
  }
}

export interface OffloadLocationReport {
  location: string
  access: OffloadAccess | 'unused'
  /** the clients that can pull through a redirect to this location */
  clients: OffloadClient[]
  blobs: number
  bytes: number
}

export interface OffloadResult {
  /** digest → redirect target */
  offloaded: Map<string, string>
  /** where the host keeps the redirects (the plan's `offload.by`) */
  by: 'configuration' | 'redirect-objects'
  locations: OffloadLocationReport[]
  /** blobs a location lists with the wrong size or bytes: uploaded instead */
  rejected: Array<{digest: string; location: string; why: string}>
  /** bytes downloaded to check digests (0 when every verdict was kept from an earlier deploy) */
  bytesVerified: number
}

export interface OffloadOptions {
  locations: readonly string[]
  /** the clients that must be able to pull (default: every client) */
  clients?: readonly string[]
  concurrency?: number
  /** check, and keep no verdict (`--dry-run` writes nothing) */
  dryRun?: boolean
  signal?: AbortSignal
}

/** `--offload-clients`: known names only, none twice. */
export function parseOffloadClients(names: readonly string[] | undefined): OffloadClient[] {
  if (names === undefined || names.length === 0) return OFFLOAD_CLIENT_NAMES
  for (const name of names) {
    if (!(name in OFFLOAD_CLIENTS)) throw new RegError(`--offload-clients: unknown client ${JSON.stringify(name)}`, `the clients are ${OFFLOAD_CLIENT_NAMES.join(', ')}`)
  }
  return [...new Set(names)] as OffloadClient[]
}

/** The clients that can follow a redirect to a location reached this way. */
export function clientsFor(access: OffloadAccess): OffloadClient[] {
  return OFFLOAD_CLIENT_NAMES.filter((name) => access === 'anonymous' || OFFLOAD_CLIENTS[name].followsTokenChallenge)
}

/** Refuse a location some of the clients that must pull cannot follow. */
function refuseUnfollowable(location: string, clients: readonly OffloadClient[]): void {
  const cannot = clients.filter((name) => !OFFLOAD_CLIENTS[name].followsTokenChallenge)
  if (cannot.length === 0) return
  throw new RegError(
    `--offload ${location} asks for a token (a Bearer challenge): ${cannot.join(', ')} cannot follow a redirect there, so they could not pull the blobs offloaded to it`,
    `pass --offload-clients ${clientsFor('token').join(',')} if only those clients pull from this registry, or offload to a location that answers without a token (a static registry or a bucket)`,
    'OFFLOAD_CLIENTS',
  )
}

/**
 * For each blob of the tree, the first location that has it, the right size and the right bytes.
 * Only for hosts that can answer with a redirect; a token-protected location only when every
 * client named can follow it.
 */
export async function planOffload(tree: RegistryTree, backend: Pick<Backend, 'name' | 'location' | 'localDirectory' | 'capabilities'>, options: OffloadOptions): Promise<OffloadResult> {
  const redirects = backend.capabilities.offloadRedirects
  if (!redirects) {
    throw new RegError(`--offload: ${backend.name} cannot answer a blob's URL with a redirect to another host`, `offload with a backend that can: ${OFFLOAD_BACKENDS}`)
  }
  const clients = parseOffloadClients(options.clients)
  const locations = options.locations.map(parseOffloadLocation)
  const state = new OffloadState(OffloadState.fileFor(backend))
  await state.load()
  const blobs = new Map<string, number>()
  for (const object of tree.objects) if (object.class === 'blob') blobs.set(object.digest, object.size)
  const result: OffloadResult = {offloaded: new Map(), by: redirects.by, locations: [], rejected: [], bytesVerified: 0}
  const reports = locations.map((l): OffloadLocationReport => ({location: l.spec, access: 'unused', clients: [], blobs: 0, bytes: 0}))
  const accessOf = new Map<OffloadLocation, OffloadAccess>()
  const clientsOf = new Map(locations.map((l) => [l, new LocationClient(l)]))

  const probe = async (location: OffloadLocation, digest: string, size: number): Promise<Probe> => {
    try {
      return await probeOnce(location, digest, size)
    } catch (error) {
      // A location that cannot be reached takes nothing (the blob is uploaded); only a refusal stops the deploy.
      options.signal?.throwIfAborted()
      if (error instanceof RegError && error.code === 'OFFLOAD_CLIENTS') throw error
      return {found: false, missing: false, why: error instanceof Error ? error.message : String(error)}
    }
  }
  const probeOnce = async (location: OffloadLocation, digest: string, size: number): Promise<Probe> => {
    const url = location.blobUrl(digest)
    let head = await headAnonymous(url, options.signal)
    let access: OffloadAccess = 'anonymous'
    if (head.status === 401 && head.bearer) {
      access = 'token'
      refuseUnfollowable(location.spec, clients)
      head = {...(await clientsOf.get(location)!.headWithToken(digest, options.signal)), bearer: false}
    }
    if (head.status === 404) return {found: false, missing: true, why: 'not there (404)'}
    if (head.status !== 200) return {found: false, missing: false, why: `answered ${head.status}`}
    if (head.size !== undefined && head.size !== size) return {found: false, missing: false, why: `${head.size} bytes there, ${size} in the tree`}
    const known = state.get(location.spec, digest)
    if (known && known.size === size && known.access === access) return {found: true, access}
    const verified = await clientsOf.get(location)!.verify(digest, size, options.signal)
    result.bytesVerified += verified.bytes
    if (!verified.ok) return {found: false, missing: false, why: 'its bytes there are not this digest'}
    state.set(location.spec, digest, {size, access})
    return {found: true, access}
  }

  await mapLimit([...blobs], options.concurrency ?? 8, async ([digest, size]) => {
    /** locations that list this blob wrongly: reported when no other location takes it (it is uploaded) */
    const rejections: OffloadResult['rejected'] = []
    for (const [i, location] of locations.entries()) {
      const found = await probe(location, digest, size)
      if (!found.found) {
        state.set(location.spec, digest, undefined)
        if (!found.missing) rejections.push({digest, location: location.spec, why: found.why})
        continue
      }
      accessOf.set(location, found.access)
      result.offloaded.set(digest, offloadTarget(digest, location.blobUrl(digest)))
      reports[i].blobs++
      reports[i].bytes += size
      return
    }
    result.rejected.push(...rejections)
  })
  locations.forEach((location, i) => {
    const access = accessOf.get(location)
    if (access) Object.assign(reports[i], {access, clients: clientsFor(access)})
  })
  result.locations = reports
  result.rejected.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0))
  if (!options.dryRun) await state.save()
  return result
}

/** `offload URL: 2 blobs (5071 bytes) served from there; every client can follow it`, and each blob uploaded instead. */
export function offloadLines(locations: readonly OffloadLocationReport[], rejected: OffloadResult['rejected']): string[] {
  const lines = locations.map((l) => {
    if (l.access === 'unused') return `offload ${l.location}: no blob of the tree is there`
    const who = l.access === 'anonymous' ? 'every client can follow it' : `only ${l.clients.join(', ')} can follow it (it asks for a token)`
    return `offload ${l.location}: ${l.blobs} blob${l.blobs === 1 ? '' : 's'} (${l.bytes} bytes) served from there; ${who}`
  })
  for (const r of rejected) lines.push(`not offloaded ${r.digest} (${r.location}: ${r.why}): uploaded`)
  return lines
}
