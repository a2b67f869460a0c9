import type {Readable} from 'node:stream'
import {parseDigest, sha256} from '../../core/digest.js'
import {RegError} from '../../core/errors.js'
import type {ImageSource, SourceReferrer, SourceRoot} from '../../core/image-source.js'
import {type Descriptor, formatPlatform, parseManifest} from '../../core/manifest.js'
import {isManifestMediaType, MediaType} from '../../core/media-types.js'
import {validateName, validateTag} from '../../core/reference.js'
import {MAX_GRAPH_NODES, MAX_MANIFEST_BYTES} from '../../core/limits.js'
import {discardBody, RegistryClient, type RegistryClientOptions, RegistryStatusError} from './client.js'
import {findCredentials} from './credentials.js'

/** Every manifest type we store; schema 1 is asked for too, so it can be refused with a clear message. */
export const MANIFEST_ACCEPT = [MediaType.OciIndex, MediaType.OciManifest, MediaType.DockerManifestList, MediaType.DockerManifest, MediaType.DockerSchema1Signed].join(', ')

/** The tags cosign attaches to `<alg>-<hex>`: signatures, attestations, SBOMs. */
const COSIGN_TAG_SUFFIXES = ['sig', 'att', 'sbom'] as const

/** `sha256:<hex>` as a tag: the referrers tag schema's name, and the stem of cosign's tags. */
export function referrersTag(digest: string): string {
  const [algorithm, hex] = digest.split(':')
  return `${algorithm.slice(0, 32)}-${hex.slice(0, 64)}`
}

export interface RegistrySourceOptions extends Omit<RegistryClientOptions, 'credentials'> {
  creds?: string
  /** keep one platform of an index (`os/arch[/variant]`); default: the whole index */
  platform?: string
}

/** `docker://HOST/NAME[:TAG|@DIGEST]`, NAME and TAG may hold `*` and `**` globs. */
export function parseRegistryReference(text: string): {host: string; name: string; tag?: string; digest?: string} {
  const rest = text.replace(/^\/\//, '')
  const slash = rest.indexOf('/')
  if (slash <= 0) throw new RegError(`docker://${rest}: no repository`, 'write docker://HOST/NAME[:TAG]')
  const host = rest.slice(0, slash)
  let name = rest.slice(slash + 1)
  let tag: string | undefined
  let digest: string | undefined
  const at = name.indexOf('@')
  if (at >= 0) {
    digest = parseDigest(name.slice(at + 1))
    name = name.slice(0, at)
  }
  const colon = name.lastIndexOf(':')
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1)
    name = name.slice(0, colon)
  }
  return {host: host === 'docker.io' ? 'registry-1.docker.io' : host, name, tag, digest}
}

/** `*` matches within one path component, `**` across components. */
export function globToRegExp(glob: string): RegExp {
  const pattern = glob.split('**').map((part) => part.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')).join('.*')
  return new RegExp(`^${pattern}$`)
}

/** The names of a `tags/list` or `_catalog` answer; anything else is refused. */
export function parseList(bytes: Buffer, field: 'repositories' | 'tags', what: string): string[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw new RegError(`${what}: the answer is not JSON`)
  }
  const list = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>)[field] : undefined
  if (list === undefined || list === null) return []
  if (!Array.isArray(list) || !list.every((item) => typeof item === 'string')) throw new RegError(`${what}: "${field}" is not a list of names`)
  return list as string[]
}

function platformMatches(descriptor: Descriptor, wanted: string): boolean {
  return formatPlatform(descriptor.platform) === wanted
}

/**
 * A remote registry as a source: manifests byte for byte (their digests unchanged), blobs streamed
 * (the shared ingest verifies them, and skips those already in the tree).
 */
export class RegistrySource implements ImageSource {
  private client?: RegistryClient
  private readonly manifests = new Map<string, Buffer>()
  private readonly ref: ReturnType<typeof parseRegistryReference>
  /** descriptor digest → repository it was found in */
  private readonly repositories = new Map<string, string>()

  constructor(readonly description: string, reference: string, private readonly options: RegistrySourceOptions = {}) {
    this.ref = parseRegistryReference(reference)
  }

  private async connect(): Promise<RegistryClient> {
    if (!this.client) {
      const credentials = await findCredentials(this.ref.host, this.options.creds)
      this.client = new RegistryClient(this.ref.host, {...this.options, credentials})
    }
    return this.client
  }

  /** A paged list (`_catalog`, `tags/list`), following `Link: <…>; rel="next"`. */
  private async listAll(client: RegistryClient, first: string, repository: string | undefined, field: 'repositories' | 'tags'): Promise<string[]> {
    const all: string[] = []
    let next: string | undefined = first
    for (let page = 0; next && page < 1000; page++) {
      const {bytes, headers} = await client.getBytes(next, repository)
      all.push(...parseList(bytes, field, `${this.description}: ${this.ref.host}${next}`))
      const link = /<([^>]+)>;\s*rel="?next"?/.exec(String(headers.link ?? ''))
      next = link ? link[1] : undefined
    }
    return all
  }

  /** Expand globs in the name (from `_catalog`) and the tag (from `tags/list`). */
  private async expand(client: RegistryClient): Promise<Array<{name: string; reference: string; tag?: string}>> {
    const {name, tag, digest} = this.ref
    let names = [name]
    if (name.includes('*')) {
      const pattern = globToRegExp(name)
      names = (await this.listAll(client, '/v2/_catalog?n=1000', undefined, 'repositories')).filter((r) => pattern.test(r))
      if (names.length === 0) throw new RegError(`${this.description}: no repository in ${this.ref.host}'s catalog matches ${name}`)
    }
    const found: Array<{name: string; reference: string; tag?: string}> = []
    for (const repository of names) {
      validateName(repository)
      if (digest) {
        found.push({name: repository, reference: digest})
        continue
      }
      if (tag?.includes('*') || name.includes('*') && tag === undefined) {
        const pattern = globToRegExp(tag ?? '*')
        const tags = await this.listAll(client, `/v2/${repository}/tags/list?n=1000`, repository, 'tags')
        for (const t of tags.filter((x) => pattern.test(x)).sort()) found.push({name: repository, reference: t, tag: t})
      } else {
        const t = validateTag(tag ?? 'latest', repository)
        found.push({name: repository, reference: t, tag: t})
      }
    }
    if (found.length === 0) throw new RegError(`${this.description}: no tag matches`)
    return found
  }

  /** A manifest by tag or digest, checked against the digest it was asked by and the one the registry advertises. */
  private async fetchManifest(client: RegistryClient, name: string, reference: string): Promise<{descriptor: Descriptor; manifest: ReturnType<typeof parseManifest>}> {
    const {bytes, headers} = await client.getBytes(`/v2/${name}/manifests/${reference}`, name, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES)
    const digest = sha256(bytes)
    const advertised = headers['docker-content-digest']
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new RegError(`${this.description}: the manifest of ${name}@${reference} hashes to ${digest}`, 'the registry returned other bytes than the digest names')
    }
    if (typeof advertised === 'string' && advertised.startsWith('sha256:') && advertised !== digest) {
      throw new RegError(`${this.description}: ${name}:${reference} says Docker-Content-Digest ${advertised} but its bytes hash to ${digest}`)
    }
    const manifest = parseManifest(bytes, `${this.description} ${name}:${reference}`)
    this.manifests.set(digest, bytes)
    this.repositories.set(digest, name)
    this.remember(manifest, name)
    return {descriptor: {mediaType: manifest.mediaType, digest, size: bytes.length}, manifest}
  }

  async roots(): Promise<SourceRoot[]> {
    const client = await this.connect()
    const roots: SourceRoot[] = []
    for (const {name, reference, tag} of await this.expand(client)) {
      const fetched = await this.fetchManifest(client, name, reference)
      const {manifest} = fetched
      let descriptor = fetched.descriptor
      if (this.options.platform && manifest.kind === 'index') {
        const child = manifest.manifests.find((m) => platformMatches(m, this.options.platform!))
        if (!child) {
          const offered = manifest.manifests.map((m) => formatPlatform(m.platform)).filter(Boolean).join(', ')
          throw new RegError(`${this.description}: ${name}:${reference} has no ${this.options.platform} image`, `platforms in it: ${offered}`)
        }
        descriptor = child
      }
      roots.push({descriptor, name, tag})
    }
    return roots
  }

  /**
   * OCI 1.1 referrers of `subject` (the referrers API, else the referrers tag schema `<alg>-<hex>`
   * that clients maintain on registries without the API), then cosign's `<alg>-<hex>.sig`, `.att`
   * and `.sbom` tags. At most MAX_GRAPH_NODES per subject; each digest once.
   */
  async referrers(subject: string): Promise<SourceReferrer[]> {
    const client = await this.connect()
    const repository = this.repositoryOf(subject)
    const found: SourceReferrer[] = []
    const listed = new Set<string>()
    const add = (referrer: SourceReferrer) => {
      if (found.length >= MAX_GRAPH_NODES) {
        throw new RegError(`${this.description}: ${repository}@${subject} has more than ${MAX_GRAPH_NODES} referrers`, 'the registry is malicious or corrupt; reg refuses lists this large', 'GRAPH_TOO_LARGE')
      }
      found.push(referrer)
    }
    for (const descriptor of await this.listedReferrers(client, repository, subject)) {
      // Only manifests are stored; a listed artifact of another kind (a blob, a retired artifact manifest) is left out.
      if (listed.has(descriptor.digest) || !isManifestMediaType(descriptor.mediaType)) continue
      listed.add(descriptor.digest)
      this.repositories.set(descriptor.digest, repository)
      add({descriptor: {mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size}})
    }
    for (const suffix of COSIGN_TAG_SUFFIXES) {
      const tag = `${referrersTag(subject)}.${suffix}`
      try {
        add({descriptor: (await this.fetchManifest(client, repository, tag)).descriptor, tag})
      } catch (error) {
        if (!(error instanceof RegistryStatusError && error.status === 404)) throw error
      }
    }
    return found
  }

  /** The descriptors the referrers API lists (all pages), else those of the referrers tag schema's index, else none. */
  private async listedReferrers(client: RegistryClient, repository: string, subject: string): Promise<Descriptor[]> {
    const listed: Descriptor[] = []
    let next: string | undefined = `/v2/${repository}/referrers/${subject}`
    for (let page = 0; next && page < 1000 && listed.length <= MAX_GRAPH_NODES; page++) {
      let answer
      try {
        answer = await client.getBytes(next, repository, MediaType.OciIndex)
      } catch (error) {
        // No referrers API (404, or another refusal of an unknown route): fall back to the tag schema.
        if (error instanceof RegistryStatusError && page === 0) break
        throw error
      }
      const index = this.parseIndex(answer.bytes, `${repository} referrers of ${subject}`)
      // An answer that is not an index (an HTML page, an error document) is no referrers API either.
      if (!index) {
        if (page === 0) break
        throw new RegError(`${this.description}: page ${page + 1} of the referrers of ${repository}@${subject} is not an OCI index`)
      }
      listed.push(...index)
      const link = /<([^>]+)>;\s*rel="?next"?/.exec(String(answer.headers.link ?? ''))
      next = link ? link[1] : undefined
      if (!next) return listed
    }
    if (listed.length > 0) return listed
    try {
      const {bytes} = await client.getBytes(`/v2/${repository}/manifests/${referrersTag(subject)}`, repository, MediaType.OciIndex, MAX_MANIFEST_BYTES)
      const index = this.parseIndex(bytes, `${repository}:${referrersTag(subject)}`)
      if (!index) throw new RegError(`${this.description}: ${repository}:${referrersTag(subject)} (the referrers tag of ${subject}) is not an OCI index`)
      return index
    } catch (error) {
      if (error instanceof RegistryStatusError && error.status === 404) return []
      throw error
    }
  }

  /** The descriptors of an index, or undefined when the bytes are not one. */
  private parseIndex(bytes: Buffer, what: string): Descriptor[] | undefined {
    let manifest
    try {
      manifest = parseManifest(bytes, `${this.description} ${what}`)
    } catch (error) {
      if (error instanceof RegError) return undefined
      throw error
    }
    return manifest.kind === 'index' ? manifest.manifests : undefined
  }

  /** Children and blobs are fetched from the repository their manifest came from. */
  private remember(manifest: ReturnType<typeof parseManifest>, repository: string): void {
    for (const child of manifest.kind === 'index' ? manifest.manifests : [manifest.config, ...manifest.layers]) this.repositories.set(child.digest, repository)
  }

  private repositoryOf(digest: string): string {
    return this.repositories.get(digest) ?? this.ref.name
  }

  async readManifest(descriptor: Descriptor): Promise<Buffer> {
    const cached = this.manifests.get(descriptor.digest)
    if (cached) return cached
    const client = await this.connect()
    const repository = this.repositoryOf(descriptor.digest)
    const {bytes} = await client.getBytes(`/v2/${repository}/manifests/${descriptor.digest}`, repository, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES)
    this.remember(parseManifest(bytes, `${this.description} ${descriptor.digest}`), repository)
    return bytes
  }

  async openBlob(descriptor: Descriptor): Promise<Readable> {
    const client = await this.connect()
    const repository = this.repositoryOf(descriptor.digest)
    const res = await client.request('GET', `/v2/${repository}/blobs/${descriptor.digest}`, repository)
    if (res.status !== 200) {
      discardBody(res)
      throw new RegError(`${this.description}: blob ${descriptor.digest} of ${repository}: the registry answered ${res.status}`)
    }
    // (the ingest stops a longer body at the descriptor's size; a registry that says so up front is refused at once)
    const length = res.headers['content-length']
    if (length !== undefined && Number(length) !== descriptor.size) {
      res.body.destroy()
      throw new RegError(`${this.description}: blob ${descriptor.digest} of ${repository}: the registry sends ${length} bytes, its descriptor says ${descriptor.size}`)
    }
    return res.body
  }

  async close(): Promise<void> {}
}
