import {createReadStream} from 'node:fs'
import path from 'node:path'
import {isDigest, sha256} from '../core/digest.js'
import {errnoCode, RegError} from '../core/errors.js'
import {MAX_MANIFEST_BYTES} from '../core/limits.js'
import {isMediaType, parsePlatform} from '../core/manifest.js'
import {isManifestMediaType} from '../core/media-types.js'
import {quoted} from '../core/quote.js'
import {isTag, validateName} from '../core/reference.js'
import {BlobStore} from './blob-store.js'
import {InvalidJsonError, type JsonSectionsHandler, JsonSectionsReader, NotAnObjectError} from './json-sections.js'
import {dict, type ManifestRecord, type RegistryObject, type RepositoryRecord, TREE_INDEX_FILE, TREE_INDEX_SCHEMA_VERSION, type TreeIndex, type TreeState} from './model.js'
import {deriveObjects, type GeneratedDocument, generateDocuments} from './objects.js'
import {StringPool} from './string-pool.js'
import {validateTreeNames} from './validate.js'
import {summarizeConfig} from '../page/config-summary.js'

/**
 * A built tree on disk, read-only: its state and the objects derived from it, keyed by URL path.
 * What `reg serve`, `reg ls` and every backend read.
 */
export class RegistryTree {
  readonly store: BlobStore
  private byPath?: Map<string, RegistryObject>

  /** `overlay`: a store of documents that exist only in this view (see `withNamePrefix`) */
  private constructor(readonly dir: string, readonly index: TreeIndex, private readonly overlay?: BlobStore) {
    this.store = new BlobStore(dir)
  }

  /** The objects by URL path: made when first asked (a server looks objects up; a deploy only goes through them). */
  get objectsByPath(): ReadonlyMap<string, RegistryObject> {
    if (!this.byPath) {
      this.byPath = new Map()
      for (const object of this.index.objects) this.byPath.set(object.path, object)
    }
    return this.byPath
  }

  /**
   * The tree in `dir`: its state read and checked, its objects derived (never read: an index can
   * name no object its state does not imply). The generated documents were written into the store
   * with the state; one missing means the tree is damaged (but for the catalog page's: see below).
   */
  static async load(dir: string): Promise<RegistryTree> {
    const {state, documents} = await RegistryTree.loadState(dir)
    return new RegistryTree(dir, {...state, objects: deriveObjects(state, documents)})
  }

  /**
   * The tree in `dir` checked as `load` checks it, its objects not derived: what needs only the
   * state (reg ls) does not hold 150,000 objects at 100,000 tags.
   */
  static async loadState(dir: string): Promise<{state: TreeState; documents: GeneratedDocument[]}> {
    const state = await readTreeIndex(dir)
    if (!state) throw new RegError(`${dir} is not a reg tree (no ${TREE_INDEX_FILE})`, 'build one first: reg build SOURCE -o DIR')
    const documents = documentsOf(state)
    const store = new BlobStore(dir)
    for (const doc of documents) {
      const digest = sha256(doc.bytes)
      const size = await store.sizeOf(digest)
      if (size === doc.bytes.length) continue
      if (size === undefined && (doc.class === 'page' || doc.class === 'page-asset' || doc.class === 'page-data')) {
        // The catalog page is reg's rendering of the checked state, and changes with reg's version:
        // a tree built by another version gets this version's files, content-addressed like any.
        await store.writeBytes(doc.bytes).catch((error: unknown) => {
          throw new RegError(`${dir}: cannot write its catalog page for this version of reg (${errnoCode(error) ?? 'error'})`, 'rebuild the tree with this version (reg build -o DIR), or serve it from where it is writable')
        })
        continue
      }
      throw new RegError(`${path.join(dir, TREE_INDEX_FILE)} is damaged: the store has no ${doc.path} document (${digest})`, 'rebuild the tree with --clean; reg refuses to serve from an index it cannot trust')
    }
    return {state, documents}
  }

  /** Where the bytes of an object are. */
  fileOf(object: RegistryObject): string {
    return this.overlay && !(object.digest in this.index.blobs) && !(object.digest in this.index.manifests)
      ? this.overlay.pathOf(object.digest)
      : this.store.pathOf(object.digest)
  }

  /**
   * The same images served under `prefix/` (deploy --name-prefix): repositories renamed, and the
   * documents that name them (tags lists, catalog, referrers) generated again into `scratch`.
   * The tree on disk is not touched.
   */
  async withNamePrefix(prefix: string, scratch: string): Promise<RegistryTree> {
    const ns = validateName(prefix.replace(/^\/+|\/+$/g, ''))
    const repositories = dict(Object.entries(this.index.repositories).map(([name, record]) => [`${ns}/${name}`, record] as const))
    const {objects: _objects, ...state} = this.index
    const {index, documents} = deriveTree({...state, repositories})
    const overlay = new BlobStore(scratch)
    await overlay.init()
    for (const doc of documents) await overlay.writeBytes(doc.bytes)
    return new RegistryTree(this.dir, index, overlay)
  }

  get objects(): readonly RegistryObject[] {
    return this.index.objects
  }
}

/**
 * A tree's objects, derived from its checked state, and the documents the state implies (whose
 * bytes the store holds under their digests). Refuses names no host could serve.
 */
export function deriveTree(state: TreeState): {index: TreeIndex; documents: GeneratedDocument[]} {
  const documents = documentsOf(state)
  return {index: {...state, objects: deriveObjects(state, documents)}, documents}
}

/** The documents a checked state implies, once its names are ones every host can serve. */
function documentsOf(state: TreeState): GeneratedDocument[] {
  validateTreeNames(state)
  return generateDocuments(state)
}

/**
 * The state of a tree, or undefined when `dir` has none. registry.json is read as a stream and
 * checked member by member: at 100,000 tags it is tens of megabytes, never held whole, as text or
 * parsed.
 */
export async function readTreeIndex(dir: string): Promise<TreeState | undefined> {
  const file = path.join(dir, TREE_INDEX_FILE)
  const reader = new TreeIndexReader(file)
  try {
    for await (const chunk of createReadStream(file, {highWaterMark: 1 << 20})) reader.write(chunk as Buffer)
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return undefined
    throw error
  }
  return reader.end()
}

/** The registry's public URL (reg build --public-url): http or https, no credentials, of a sane length. */
export function isPublicUrl(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > 2048) return false
  try {
    const url = new URL(value)
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.username === '' && url.password === ''
  } catch {
    return false
  }
}

/**
 * `registry.json` as `reg serve`, `reg ls` and every backend trust it: checked when loaded, so a
 * damaged or tampered index is refused with a clear message instead of naming files outside the
 * tree or tags that do not exist. Objects, paths and headers are derived from this state, never
 * read (a version 1 index still lists them: ignored). Maps keyed by user-chosen names come back
 * without a prototype (see `dict`).
 */
export function parseTreeIndex(text: string, file: string): TreeState {
  const reader = new TreeIndexReader(file)
  reader.write(Buffer.from(text))
  return reader.end()
}

/** A member of registry.json that is refused: why, once the whole file is read. */
class MemberDamage extends Error {}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const isSize = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0
const damaged = (what: string): never => {
  throw new MemberDamage(what)
}
const digestOf = (value: unknown, where: string): string => (typeof value === 'string' && isDigest(value) ? value : damaged(`${where} is not a sha256 digest`))
/** The platform of a record as parsePlatform keeps it, field for field, or nothing: compared without walking whatever else it holds. */
const isKeptPlatform = (value: unknown, platform: Record<string, string> | undefined): boolean =>
  isObject(value) && platform !== undefined && Object.keys(value).length === Object.keys(platform).length && Object.entries(platform).every(([k, v]) => value[k] === v)

type Section = 'repositories' | 'manifests' | 'blobs'
/** distinct repeated values remembered while reading (media types, tag times): a bound, not an expectation */
const MAX_REPEATED_VALUES = 10_000
/** The order a damaged index is reported in: what the others refer to first. */
const SECTIONS: readonly Section[] = ['blobs', 'manifests', 'repositories']

/**
 * registry.json read piece by piece (JsonSectionsReader): each repository, manifest and blob is
 * checked and kept as it comes, so the file's text and its parsed form are never held whole. What
 * one member names in another section (a tag's manifest, a manifest's blobs) is checked once all
 * are read. A refused member is reported only when the file is whole: a later duplicate key
 * replaces it, as JSON.parse would.
 */
class TreeIndexReader implements JsonSectionsHandler {
  private readonly reader = new JsonSectionsReader(new Set(SECTIONS), this)
  /** the top-level members that are not sections: the format, the generator, the settings */
  private readonly head = dict<unknown>()
  /** sections whose (last) value is an object */
  private readonly read = new Set<Section>()
  private readonly blobs = dict<TreeState['blobs'][string]>()
  private readonly manifests = dict<ManifestRecord>()
  private readonly repositories = dict<RepositoryRecord>()
  /** by section: refused members, key → why */
  private readonly refused = new Map<Section, Map<string, string>>(SECTIONS.map((section) => [section, new Map()]))
  /** values many records repeat (media types, the time a build set its tags), each kept once */
  private readonly repeated = new StringPool(MAX_REPEATED_VALUES)
  /** every digest a record names, each kept once (100,000 tags naming 20,000 manifests hold 20,000 digests) */
  private readonly digests = new StringPool()

  constructor(private readonly file: string) {}

  write(chunk: Buffer): void {
    try {
      this.reader.write(chunk)
    } catch (error) {
      throw this.corrupt(error)
    }
  }

  end(): TreeState {
    const fail = (what: string): never => {
      throw new RegError(`${this.file} is damaged: ${what}`, 'rebuild the tree with --clean; reg refuses to serve from an index it cannot trust')
    }
    try {
      this.reader.end()
    } catch (error) {
      if (error instanceof NotAnObjectError) fail('not a JSON object')
      throw this.corrupt(error)
    }
    const {head} = this
    if ((head.schemaVersion !== 1 && head.schemaVersion !== TREE_INDEX_SCHEMA_VERSION) || head.generator !== 'reg') throw new RegError(`${this.file} was not written by this version of reg`, 'rebuild the tree with --clean')
    const settings: TreeState['settings'] = isObject(head.settings) && isSize(head.settings.tagMaxAge) ? {tagMaxAge: head.settings.tagMaxAge} : fail('settings.tagMaxAge is not a number of seconds')
    const rawSettings = head.settings as Record<string, unknown>
    if (rawSettings.page !== undefined) settings.page = rawSettings.page === true ? true : fail('settings.page is not true')
    if (rawSettings.publicUrl !== undefined) settings.publicUrl = isPublicUrl(rawSettings.publicUrl) ? rawSettings.publicUrl : fail('settings.publicUrl is not an http(s) URL')
    if (SECTIONS.some((section) => !this.read.has(section))) return fail('blobs, manifests or repositories missing')
    for (const refused of this.refused.values()) for (const why of refused.values()) fail(why)
    try {
      this.checkReferences()
    } catch (error) {
      if (error instanceof MemberDamage) fail(error.message)
      throw error
    }
    return {schemaVersion: head.schemaVersion as TreeState['schemaVersion'], generator: 'reg', settings, repositories: this.repositories, manifests: this.manifests, blobs: this.blobs}
  }

  private corrupt(error: unknown): unknown {
    // The parser's message would quote the input: refused bytes are never echoed.
    return error instanceof InvalidJsonError ? new RegError(`${this.file} is corrupt (not valid JSON)`, 'rebuild the tree with --clean') : error
  }

  value(key: string, value: unknown): void {
    if ((SECTIONS as readonly string[]).includes(key)) this.sectionStart(key, false)
    else if (key === 'schemaVersion' || key === 'generator' || key === 'settings') this.head[key] = value
  }

  sectionStart(key: string, isObject = true): void {
    const section = key as Section
    const records = this.recordsOf(section)
    for (const name of Object.keys(records)) delete records[name]
    this.refused.get(section)!.clear()
    if (isObject) this.read.add(section)
    else this.read.delete(section)
  }

  member(key: string, name: string, value: unknown): void {
    const section = key as Section
    const refused = this.refused.get(section)!
    try {
      if (section === 'blobs') this.blob(name, value)
      else if (section === 'manifests') this.manifest(name, value)
      else this.repository(name, value)
      refused.delete(name)
    } catch (error) {
      if (!(error instanceof MemberDamage)) throw error
      delete this.recordsOf(section)[name]
      refused.set(name, error.message)
    }
  }

  private recordsOf(section: Section): Record<string, unknown> {
    return section === 'blobs' ? this.blobs : section === 'manifests' ? this.manifests : this.repositories
  }

  private blob(digest: string, value: unknown): void {
    if (!isDigest(digest)) damaged(`blob key ${quoted(digest)} is not a sha256 digest`)
    if (!isObject(value) || !isSize(value.size) || typeof value.mediaType !== 'string') return damaged(`blob ${digest} has no size or media type`)
    this.blobs[digest] = {size: value.size as number, mediaType: this.repeated.once(value.mediaType as string)}
  }

  private manifest(digest: string, value: unknown): void {
    if (!isDigest(digest)) damaged(`manifest key ${quoted(digest)} is not a sha256 digest`)
    if (!isObject(value) || typeof value.mediaType !== 'string' || !isManifestMediaType(value.mediaType) || !isSize(value.size) || value.size > MAX_MANIFEST_BYTES || (value.kind !== 'index' && value.kind !== 'image')) return damaged(`manifest ${digest} has no valid media type, size or kind`)
    // Version 2 leaves empty lists out.
    const record = {...value, children: value.children ?? [], blobs: value.blobs ?? []} as unknown as ManifestRecord
    if (!Array.isArray(record.children) || !Array.isArray(record.blobs)) return damaged(`manifest ${digest} has invalid children or blobs`)
    const children = record.children.map((child) => this.digests.once(digestOf(child, `a child of ${digest}`)))
    const blobs = record.blobs.map((blob) => this.digests.once(digestOf(blob, `a blob of ${digest}`)))
    if (record.subject !== undefined) digestOf(record.subject, `the subject of ${digest}`)
    if (record.artifactType !== undefined && !isMediaType(record.artifactType)) return damaged(`manifest ${digest} has an invalid artifactType`)
    if (record.annotations !== undefined && (!isObject(record.annotations) || Object.values(record.annotations).some((v) => typeof v !== 'string'))) return damaged(`manifest ${digest} has invalid annotations`)
    const platform = record.platform === undefined ? undefined : parsePlatform(record.platform)
    if (record.platform !== undefined && !isKeptPlatform(record.platform, platform as Record<string, string> | undefined)) return damaged(`manifest ${digest} has an invalid platform`)
    this.manifests[digest] = {
      mediaType: this.repeated.once(record.mediaType), size: record.size, kind: record.kind, children, blobs,
      ...(platform ? {platform} : {}), ...(record.subject ? {subject: record.subject} : {}), ...(record.artifactType ? {artifactType: record.artifactType} : {}),
      ...(record.annotations ? {annotations: dict(Object.entries(record.annotations))} : {}),
      // what the catalog page shows of the config: kept by the rules a build reads it with
      ...(record.config !== undefined && record.kind === 'image' ? {config: summarizeConfig(record.config)} : {}),
    }
  }

  private repository(name: string, value: unknown): void {
    try {
      validateName(name)
    } catch {
      damaged(`repository name ${quoted(name)} is invalid`)
    }
    if (!isObject(value) || !isObject(value.tags)) return damaged(`repository ${name} has no tags`)
    const tags = dict<string>()
    for (const [tag, digest] of Object.entries(value.tags)) {
      if (!isTag(tag)) return damaged(`repository ${name} has an invalid tag ${quoted(tag)}`)
      tags[tag] = this.digests.once(digestOf(digest, `${name}:${tag}`))
    }
    let untagged: string[] | undefined
    if (value.untagged !== undefined) {
      if (!Array.isArray(value.untagged)) return damaged(`repository ${name} has an invalid untagged list`)
      untagged = value.untagged.map((digest) => this.digests.once(digestOf(digest, `an untagged manifest of ${name}`)))
    }
    // Times of tags that are no longer there (a tag deleted by a server) are dropped, not refused.
    let tagged: Record<string, string> | undefined
    if (value.tagged !== undefined) {
      if (!isObject(value.tagged)) return damaged(`repository ${name} has an invalid tagged map`)
      tagged = dict()
      for (const [tag, time] of Object.entries(value.tagged)) {
        if (typeof time !== 'string' || time.length > 40 || !Number.isFinite(Date.parse(time))) return damaged(`repository ${name} has an invalid time for a tag`)
        if (Object.hasOwn(tags, tag)) tagged[tag] = this.repeated.once(time)
      }
    }
    this.repositories[name] = {tags, ...(untagged ? {untagged} : {}), ...(tagged && Object.keys(tagged).length > 0 ? {tagged} : {})}
  }

  /** What each member names in another section is there. */
  private checkReferences(): void {
    for (const digest in this.manifests) {
      const record = this.manifests[digest]
      for (const child of record.children) if (!(child in this.manifests)) damaged(`manifest ${digest} lists ${child}, which the index does not have`)
      for (const blob of record.blobs) if (!(blob in this.blobs)) damaged(`manifest ${digest} lists blob ${blob}, which the index does not have`)
    }
    for (const name in this.repositories) {
      const {tags, untagged} = this.repositories[name]
      for (const tag in tags) if (!(tags[tag] in this.manifests)) damaged(`${name}:${tag} points at ${tags[tag]}, which the index does not have`)
      for (const digest of untagged ?? []) if (!(digest in this.manifests)) damaged(`${name} holds ${digest}, which the index does not have`)
    }
  }
}
