import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {isDigest, sha256} from '../core/digest.js'
import {errnoCode, RegError} from '../core/errors.js'
import {MAX_MANIFEST_BYTES} from '../core/limits.js'
import {isMediaType, parsePlatform} from '../core/manifest.js'
import {isManifestMediaType} from '../core/media-types.js'
import {quoted} from '../core/quote.js'
import {isTag, validateName} from '../core/reference.js'
import {BlobStore} from './blob-store.js'
import {dict, type ManifestRecord, type RegistryObject, TREE_INDEX_FILE, TREE_INDEX_SCHEMA_VERSION, type TreeIndex, type TreeState} from './model.js'
import {deriveObjects, type GeneratedDocument, generateDocuments} from './objects.js'
import {validateTreeNames} from './validate.js'
import {summarizeConfig} from '../page/config-summary.js'

/**
 * A built tree on disk, read-only: its state and the objects derived from it, keyed by URL path.
 * What `reg serve`, `reg ls` and every backend read.
 */
export class RegistryTree {
  readonly store: BlobStore
  readonly objectsByPath: ReadonlyMap<string, RegistryObject>

  /** `overlay`: a store of documents that exist only in this view (see `withNamePrefix`) */
  private constructor(readonly dir: string, readonly index: TreeIndex, private readonly overlay?: BlobStore) {
    this.store = new BlobStore(dir)
    this.objectsByPath = new Map(index.objects.map((o) => [o.path, o]))
  }

  /**
   * The tree in `dir`: its state read and checked, its objects derived (never read: an index can
   * name no object its state does not imply). The generated documents were written into the store
   * with the state; one missing means the tree is damaged (but for the catalog page's: see below).
   */
  static async load(dir: string): Promise<RegistryTree> {
    const state = await readTreeIndex(dir)
    if (!state) throw new RegError(`${dir} is not a reg tree (no ${TREE_INDEX_FILE})`, 'build one first: reg build SOURCE -o DIR')
    const {index, documents} = deriveTree(state)
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
    return new RegistryTree(dir, index)
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
  validateTreeNames(state)
  const documents = generateDocuments(state)
  return {index: {...state, objects: deriveObjects(state, documents)}, documents}
}

/** The state of a tree, or undefined when `dir` has none. */
export async function readTreeIndex(dir: string): Promise<TreeState | undefined> {
  let text: string
  try {
    text = await readFile(path.join(dir, TREE_INDEX_FILE), 'utf8')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return undefined
    throw error
  }
  return parseTreeIndex(text, path.join(dir, TREE_INDEX_FILE))
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
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    // The parser's message quotes the input: refused bytes are never echoed.
    throw new RegError(`${file} is corrupt (not valid JSON)`, 'rebuild the tree with --clean')
  }
  const fail = (what: string): never => {
    throw new RegError(`${file} is damaged: ${what}`, 'rebuild the tree with --clean; reg refuses to serve from an index it cannot trust')
  }
  const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
  const isSize = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0
  const digestOf = (value: unknown, where: string): string => (typeof value === 'string' && isDigest(value) ? value : fail(`${where} is not a sha256 digest`))
  /** The platform of a record as parsePlatform keeps it, field for field, or nothing: compared without walking whatever else it holds. */
  const isKeptPlatform = (value: unknown, platform: Record<string, string> | undefined): boolean =>
    isObject(value) && platform !== undefined && Object.keys(value).length === Object.keys(platform).length && Object.entries(platform).every(([k, v]) => value[k] === v)
  if (!isObject(raw)) return fail('not a JSON object')
  if ((raw.schemaVersion !== 1 && raw.schemaVersion !== TREE_INDEX_SCHEMA_VERSION) || raw.generator !== 'reg') throw new RegError(`${file} was not written by this version of reg`, 'rebuild the tree with --clean')
  const settings: TreeState['settings'] = isObject(raw.settings) && isSize(raw.settings.tagMaxAge) ? {tagMaxAge: raw.settings.tagMaxAge} : fail('settings.tagMaxAge is not a number of seconds')
  const rawSettings = raw.settings as Record<string, unknown>
  if (rawSettings.page !== undefined) settings.page = rawSettings.page === true ? true : fail('settings.page is not true')
  if (rawSettings.publicUrl !== undefined) settings.publicUrl = isPublicUrl(rawSettings.publicUrl) ? rawSettings.publicUrl : fail('settings.publicUrl is not an http(s) URL')
  if (!isObject(raw.blobs) || !isObject(raw.manifests) || !isObject(raw.repositories)) return fail('blobs, manifests or repositories missing')

  const blobs = dict<TreeIndex['blobs'][string]>()
  for (const [digest, value] of Object.entries(raw.blobs)) {
    digestOf(digest, `blob key ${quoted(digest)}`)
    if (!isObject(value) || !isSize(value.size) || typeof value.mediaType !== 'string') return fail(`blob ${digest} has no size or media type`)
    blobs[digest] = {size: value.size as number, mediaType: value.mediaType as string}
  }
  const manifests = dict<ManifestRecord>()
  for (const [digest, value] of Object.entries(raw.manifests)) {
    digestOf(digest, `manifest key ${quoted(digest)}`)
    if (!isObject(value) || typeof value.mediaType !== 'string' || !isManifestMediaType(value.mediaType) || !isSize(value.size) || value.size > MAX_MANIFEST_BYTES || (value.kind !== 'index' && value.kind !== 'image')) return fail(`manifest ${digest} has no valid media type, size or kind`)
    // Version 2 leaves empty lists out.
    const record = {...value, children: value.children ?? [], blobs: value.blobs ?? []} as unknown as ManifestRecord
    if (!Array.isArray(record.children) || !Array.isArray(record.blobs)) return fail(`manifest ${digest} has invalid children or blobs`)
    for (const child of record.children) if (!(digestOf(child, `a child of ${digest}`) in raw.manifests)) return fail(`manifest ${digest} lists ${child}, which the index does not have`)
    for (const blob of record.blobs) if (!(digestOf(blob, `a blob of ${digest}`) in blobs)) return fail(`manifest ${digest} lists blob ${blob}, which the index does not have`)
    if (record.subject !== undefined) digestOf(record.subject, `the subject of ${digest}`)
    if (record.artifactType !== undefined && !isMediaType(record.artifactType)) return fail(`manifest ${digest} has an invalid artifactType`)
    if (record.annotations !== undefined && (!isObject(record.annotations) || Object.values(record.annotations).some((v) => typeof v !== 'string'))) return fail(`manifest ${digest} has invalid annotations`)
    const platform = record.platform === undefined ? undefined : parsePlatform(record.platform)
    if (record.platform !== undefined && !isKeptPlatform(record.platform, platform as Record<string, string> | undefined)) return fail(`manifest ${digest} has an invalid platform`)
    manifests[digest] = {
      mediaType: record.mediaType, size: record.size, kind: record.kind, children: record.children, blobs: record.blobs,
      ...(platform ? {platform} : {}), ...(record.subject ? {subject: record.subject} : {}), ...(record.artifactType ? {artifactType: record.artifactType} : {}),
      ...(record.annotations ? {annotations: dict(Object.entries(record.annotations))} : {}),
      // what the catalog page shows of the config: kept by the rules a build reads it with
      ...(record.config !== undefined && record.kind === 'image' ? {config: summarizeConfig(record.config)} : {}),
    }
  }
  const repositories = dict<TreeIndex['repositories'][string]>()
  for (const [name, value] of Object.entries(raw.repositories)) {
    try {
      validateName(name)
    } catch {
      fail(`repository name ${quoted(name)} is invalid`)
    }
    if (!isObject(value) || !isObject(value.tags)) return fail(`repository ${name} has no tags`)
    const tags = dict<string>()
    for (const [tag, digest] of Object.entries(value.tags)) {
      if (!isTag(tag)) return fail(`repository ${name} has an invalid tag ${quoted(tag)}`)
      if (!(digestOf(digest, `${name}:${tag}`) in manifests)) return fail(`${name}:${tag} points at ${digest}, which the index does not have`)
      tags[tag] = digest as string
    }
    let untagged: string[] | undefined
    if (value.untagged !== undefined) {
      if (!Array.isArray(value.untagged)) return fail(`repository ${name} has an invalid untagged list`)
      untagged = value.untagged.map((digest) => digestOf(digest, `an untagged manifest of ${name}`))
      for (const digest of untagged) if (!(digest in manifests)) return fail(`${name} holds ${digest}, which the index does not have`)
    }
    // Times of tags that are no longer there (a tag deleted by a server) are dropped, not refused.
    let tagged: Record<string, string> | undefined
    if (value.tagged !== undefined) {
      if (!isObject(value.tagged)) return fail(`repository ${name} has an invalid tagged map`)
      tagged = dict()
      for (const [tag, time] of Object.entries(value.tagged)) {
        if (typeof time !== 'string' || time.length > 40 || !Number.isFinite(Date.parse(time))) return fail(`repository ${name} has an invalid time for a tag`)
        if (Object.hasOwn(tags, tag)) tagged[tag] = time
      }
    }
    repositories[name] = {tags, ...(untagged ? {untagged} : {}), ...(tagged && Object.keys(tagged).length > 0 ? {tagged} : {})}
  }
  return {schemaVersion: raw.schemaVersion, generator: 'reg', settings, repositories, manifests, blobs}
}
