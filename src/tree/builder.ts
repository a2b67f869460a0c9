import {randomBytes} from 'node:crypto'
import {mkdir, readdir, rename, rm, stat} from 'node:fs/promises'
import path from 'node:path'
import {mapLimit} from '../core/concurrency.js'
import {errnoCode, RegError} from '../core/errors.js'
import type {ImageSource, SourceRoot} from '../core/image-source.js'
import {formatPlatform} from '../core/manifest.js'
import {processRunning} from '../core/process.js'
import {validateName, validateTag, withPrefix} from '../core/reference.js'
import {openSource, type SourceOptions, type SourceSpec} from '../sources/index.js'
import {BlobStore, TreeCheckStore} from './blob-store.js'
import {type IngestObserver, GraphIngester} from './ingest.js'
import {blobAndManifestBytes, DEFAULT_TAG_MAX_AGE, dict, emptyIndex, type ManifestRecord, repositoryRecord, type RepositoryRecord, TREE_INDEX_FILE, type TreeIndex, type TreeSettings} from './model.js'
import {finalizeIndex, writeTreeFiles} from './finalize.js'
import {repositoryBlobs, repositoryManifests} from './objects.js'
import {isPublicUrl, readTreeIndex} from './registry-tree.js'
import {summarizeConfigs} from '../page/config-summary.js'
import {StringPool} from './string-pool.js'
import {stampTagTimes} from './tag-times.js'
import {lockTree} from './tree-lock.js'

export interface BuildOptions {
  out: string
  prefix?: string
  clean?: boolean
  tagMaxAge?: number
  observer?: BuildObserver
  sources?: SourceOptions
  /** also copy what is attached to each manifest copied (signatures, SBOMs), from sources that hold attachments */
  withReferrers?: boolean
  /** publish the catalog page (default: as the previous tree did) */
  page?: boolean
  /** the registry's public URL, for the page's pull commands (default: the previous tree's) */
  publicUrl?: string
}

export interface BuiltImage {
  name: string
  tag: string
  digest: string
  mediaType: string
  platforms: string[]
  source: string
}

/** A manifest copied because it is attached to one of the images. */
export interface BuiltReferrer {
  name: string
  /** cosign-style attachments keep their tag; OCI 1.1 referrers are held untagged */
  tag?: string
  digest: string
  subject: string
}

export interface BuildObserver extends IngestObserver {
  sourceStart?(source: string): void
  imageDone?(image: BuiltImage): void
  referrerDone?(referrer: BuiltReferrer): void
}

export interface BuildSummary {
  out: string
  images: BuiltImage[]
  /** attachments copied with --with-referrers */
  referrers: BuiltReferrer[]
  repositories: number
  tags: number
  blobs: number
  /** bytes of the blob store: every blob and manifest once */
  bytesStored: number
  /** what per-repository copies would add on top: the saving of storing each blob once */
  bytesSavedByDedup: number
  /** bytes read from sources and written in this run */
  bytesCopied: number
  /** blobs the sources named that the tree already had, so were not read again */
  blobsAlreadyPresent: number
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file)
    return true
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false
    throw error
  }
}

/**
 * Put a tree left half-swapped by a killed build back, and remove staging directories of builds
 * that are no longer running.
 */
async function recoverSiblings(out: string): Promise<void> {
  const parent = path.dirname(out)
  const base = path.basename(out)
  let names: string[]
  try {
    names = await readdir(parent)
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return
    throw error
  }
  const old = names.find((n) => n.startsWith(`${base}.reg-old-`))
  if (old && !(await exists(out))) await rename(path.join(parent, old), out)
  for (const name of names) {
    const staging = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.reg-(staging|old)-(\\d+)-`).exec(name)
    if (staging && !processRunning(Number(staging[2])) && (await exists(path.join(parent, name)))) {
      await rm(path.join(parent, name), {recursive: true, force: true})
    }
  }
}

/** What reg writes in a tree, and so what a build may replace: anything else is the user's. */
const TREE_FILES = new Set([TREE_INDEX_FILE, 'index.json', 'oci-layout', 'blobs'])
const STORE_FILE = /^(?:[a-f0-9]{64}|\.tmp-[a-f0-9]{16})$/
/** what a killed build or server may leave while replacing a tree file */
const TREE_TEMP_FILE = /^(?:registry\.json|index\.json|oci-layout)\.tmp-[a-f0-9]{8}$/

/**
 * A build replaces the whole directory: refuse one holding anything reg did not write (a file given
 * as -o, a deploy's output placed inside the tree, a user's notes), naming it, instead of deleting it.
 */
async function refuseForeignContent(out: string): Promise<void> {
  let info
  try {
    info = await stat(out)
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return
    throw error
  }
  if (!info.isDirectory()) throw new RegError(`${out} is a file, not a directory`, 'give -o a new or empty directory, or a reg tree to update')
  const foreign: string[] = []
  const entries = await readdir(out, {withFileTypes: true})
  const isTree = entries.some((e) => e.name === TREE_INDEX_FILE)
  for (const entry of entries) {
    if (!isTree || !(TREE_FILES.has(entry.name) || TREE_TEMP_FILE.test(entry.name))) foreign.push(entry.name)
    else if (entry.name === 'blobs') {
      if (!entry.isDirectory()) foreign.push('blobs')
      else for (const sub of await readdir(path.join(out, 'blobs'), {withFileTypes: true})) {
        if (sub.name !== 'sha256' || !sub.isDirectory()) foreign.push(`blobs/${sub.name}`)
        else for (const name of await readdir(path.join(out, 'blobs', 'sha256'))) if (!STORE_FILE.test(name)) foreign.push(`blobs/sha256/${name}`)
      }
    }
  }
  if (foreign.length === 0) return
  const listed = foreign.slice(0, 5).map((n) => JSON.stringify(n)).join(', ') + (foreign.length > 5 ? ` and ${foreign.length - 5} more` : '')
  throw new RegError(
    isTree ? `${out} holds files reg did not write: ${listed}` : `${out} exists and is not a reg tree (it holds ${listed})`,
    isTree ? 'a build replaces the whole tree: move them out (deploy into another directory), then build again' : 'choose an empty or new directory with -o, or remove it first',
  )
}

/** Decide the name and tag an image is published under: `=NAME[:TAG]` first, then the source's, then `--prefix`. */
function targetOf(spec: SourceSpec, root: SourceRoot, rootCount: number, prefix?: string): {name: string; tag: string} {
  if (spec.target?.tag !== undefined && rootCount > 1) {
    throw new RegError(`source "${spec.text}" holds ${rootCount} images but =${spec.target.name}:${spec.target.tag} names one`, `give only the name (=${spec.target.name}) to keep each image's tag, or pick one image with its REF`)
  }
  const name = spec.target?.name ?? root.name
  const tag = spec.target?.tag ?? root.tag ?? (spec.target ? 'latest' : undefined)
  if (!name) {
    throw new RegError(`source "${spec.text}": the image${root.tag ? ` tagged "${root.tag}"` : ''} has no repository name`, `name it: ${spec.text}=team/app${root.tag ? '' : ':TAG'}`)
  }
  if (!tag) throw new RegError(`source "${spec.text}": the image has no tag`, `name it: ${spec.text}=${name}:TAG`)
  return {name: withPrefix(prefix, validateName(name)), tag: validateTag(tag, name)}
}

/** Images of one source ingested at once: each new manifest is a few file operations, mostly waiting on the disk. */
const IMAGE_CONCURRENCY = 32

/**
 * `reg build`: copy images into a tree, atomically. The new tree is built in a staging directory
 * beside the target (old blobs hardlinked, not copied) and renamed into place only when complete,
 * so a failed or killed build leaves the previous tree serving.
 */
export async function buildTree(specs: SourceSpec[], options: BuildOptions): Promise<BuildSummary> {
  const out = path.resolve(options.out)
  await mkdir(path.dirname(out), {recursive: true})
  // One writer at a time: a push or a prune meanwhile would be lost in the swap.
  const lock = await lockTree(options.out, 'reg build')
  try {
    return await buildLocked(specs, options, out)
  } finally {
    await lock.release()
  }
}

async function buildLocked(specs: SourceSpec[], options: BuildOptions, out: string): Promise<BuildSummary> {
  await recoverSiblings(out)
  await refuseForeignContent(out)
  if (options.publicUrl !== undefined && !isPublicUrl(options.publicUrl)) {
    throw new RegError(`--public-url ${JSON.stringify(options.publicUrl)} is not an http:// or https:// URL`, 'give the URL clients pull from, e.g. --public-url https://registry.example.com')
  }
  const previous = options.clean ? undefined : await readTreeIndex(out)
  const settings = treeSettings(options, previous?.settings)
  if (previous) {
    const unchanged = await unchangedTree(specs, options, previous, out, settings)
    if (unchanged) return unchanged
  }
  const staging = `${out}.reg-staging-${process.pid}-${randomBytes(4).toString('hex')}`
  const work = path.join(staging, '.work')
  try {
    const store = new BlobStore(staging, {private: true})
    await store.init()
    const index = {...emptyIndex(settings.tagMaxAge), ...previous, settings}
    if (previous) await store.linkFrom(new BlobStore(out))
    // The walk's bookkeeping (visits, copies in flight) is let go before the index is finalized.
    const {images, referrers, bytesCopied, blobsAlreadyPresent} = await ingestSources(specs, options, store, index, work)
    stampTagTimes(previous, index, Date.now())
    await rm(work, {recursive: true, force: true})
    if (settings.page) await summarizeConfigs(store, index)
    const treeIndex = await finalizeIndex(store, index, {collectGarbage: true})
    await writeTreeFiles(staging, treeIndex)
    // Files were written without an fsync each: one sync of the staging directory's file system before it serves.
    await store.sync()
    await swapInto(staging, out)
    return {...summarize(out, treeIndex, images, bytesCopied), referrers, blobsAlreadyPresent}
  } catch (error) {
    await rm(staging, {recursive: true, force: true})
    throw error
  }
}

/** A build's settings: its options, else the previous tree's, else the defaults (no page). */
function treeSettings(options: BuildOptions, previous: TreeSettings | undefined): TreeSettings {
  const page = options.page ?? previous?.page ?? false
  const publicUrl = options.publicUrl ?? previous?.publicUrl
  return {tagMaxAge: options.tagMaxAge ?? previous?.tagMaxAge ?? DEFAULT_TAG_MAX_AGE, ...(page ? {page} : {}), ...(publicUrl ? {publicUrl} : {})}
}

/**
 * Change an existing tree atomically, like a build: `change` edits a copy of its state, then what
 * nothing reaches any more is collected, in a staging directory (the store hardlinked, not
 * copied) renamed into place only when complete. `reg prune` is this.
 */
export async function rewriteTree(dir: string, change: (state: Omit<TreeIndex, 'objects'>) => void | Promise<void>): Promise<Omit<TreeIndex, 'objects'>> {
  const lock = await lockTree(dir, 'reg prune')
  try {
    return await rewriteLocked(dir, change)
  } finally {
    await lock.release()
  }
}

async function rewriteLocked(dir: string, change: (state: Omit<TreeIndex, 'objects'>) => void | Promise<void>): Promise<Omit<TreeIndex, 'objects'>> {
  const out = path.resolve(dir)
  await recoverSiblings(out)
  await refuseForeignContent(out)
  const previous = await readTreeIndex(out)
  if (!previous) throw new RegError(`${dir} is not a reg tree (no ${TREE_INDEX_FILE})`, 'build one first: reg build SOURCE -o DIR')
  const staging = `${out}.reg-staging-${process.pid}-${randomBytes(4).toString('hex')}`
  try {
    const store = new BlobStore(staging, {private: true})
    await store.init()
    await store.linkFrom(new BlobStore(out))
    const index = {...previous}
    await change(index)
    const treeIndex = await finalizeIndex(store, index, {collectGarbage: true})
    await writeTreeFiles(staging, treeIndex)
    await store.sync()
    await swapInto(staging, out)
    return treeIndex
  } catch (error) {
    await rm(staging, {recursive: true, force: true})
    throw error
  }
}

/** Copy every image of the sources into the store and record it in `index`, in the sources' order. */
async function ingestSources(specs: SourceSpec[], options: BuildOptions, store: BlobStore, index: Omit<TreeIndex, 'objects'>, work: string): Promise<{images: BuiltImage[]; referrers: BuiltReferrer[]; bytesCopied: number; blobsAlreadyPresent: number}> {
  const order = new RecordOrder(index)
  const ingester = new GraphIngester(store, index, options.observer)
  const strings = new ImageStrings(index)
  const images: BuiltImage[] = []
  const referrers: BuiltReferrer[] = []
  for (const [i, spec] of specs.entries()) {
    options.observer?.sourceStart?.(spec.text)
    const source = openSource(spec, path.join(work, String(i)), options.sources)
    try {
      const roots = await source.roots()
      const targets = roots.map((root) => targetOf(spec, root, roots.length, options.prefix))
      // Graphs are walked concurrently (the ingester visits each digest once); what they are
      // recorded as, in the index and in the summary, follows the sources' order afterwards.
      const records = await inOrder(roots, IMAGE_CONCURRENCY, (root, r) =>
        ingester.reuseStored(root.descriptor.digest) ?? ingester.ingest(source, root.descriptor, `${spec.text} (${targets[r].name}:${targets[r].tag})`))
      for (const [r, root] of roots.entries()) {
        const name = strings.once(targets[r].name)
        const {tag} = targets[r]
        const digest = strings.once(root.descriptor.digest)
        const record = records[r]
        repositoryRecord(index, name).tags[tag] = digest
        order.visit(digest)
        const image = {name, tag, digest, mediaType: record.mediaType, platforms: strings.platforms(digest, record), source: spec.text}
        images.push(image)
        options.observer?.imageDone?.(image)
        if (options.withReferrers) {
          for (const referrer of await copyReferrers(ingester, index, source, root.descriptor.digest, name, spec.text)) {
            order.visit(referrer.digest)
            referrers.push(referrer)
            options.observer?.referrerDone?.(referrer)
          }
        }
      }
    } finally {
      await source.close()
    }
  }
  order.apply()
  return {images, referrers, bytesCopied: ingester.bytesCopied, blobsAlreadyPresent: ingester.blobsAlreadyPresent}
}

/**
 * The strings of the images a build records, each kept once: they come from the sources' listings,
 * one set per tag, so at 100,000 tags a digest 5 tags name, a repository's name and a platform
 * would each be held 100,000 times. One platforms list per manifest, shared by its tags.
 */
class ImageStrings {
  private readonly strings = new StringPool()
  private readonly platformLists = new Map<string, string[]>()

  constructor(private readonly index: Pick<TreeIndex, 'manifests'>) {}

  once(value: string): string {
    return this.strings.once(value)
  }

  platforms(digest: string, record: ManifestRecord): string[] {
    let platforms = this.platformLists.get(digest)
    if (!platforms) this.platformLists.set(digest, (platforms = platformsOf(this.index, record).map((platform) => this.strings.once(platform))))
    return platforms
  }
}

function platformsOf(index: Pick<TreeIndex, 'manifests'>, record: ManifestRecord): string[] {
  return record.kind === 'index'
    ? record.children.map((c) => formatPlatform(index.manifests[c].platform)).filter((p): p is string => Boolean(p))
    : [formatPlatform(record.platform)].filter((p): p is string => Boolean(p))
}

/**
 * `work` over `items`, `limit` at a time, with the outcome of a one-at-a-time loop: when some
 * fail, nothing more is started, and the first failed item in order is tried again alone, after
 * every item before it succeeded (a failure can come from another item's work it waited on, e.g.
 * a blob two images name with different sizes, copied with the later image's descriptor): its
 * error is the result, or, when it now succeeds, the items after it go on the same way.
 */
async function inOrder<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => R | Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let start = 0
  while (start < items.length) {
    let failed: number | undefined
    await mapLimit(items.slice(start), limit, async (item, i) => {
      if (failed !== undefined) return
      try {
        results[start + i] = await work(item, start + i)
      } catch {
        failed = Math.min(failed ?? i, i)
      }
    })
    if (failed === undefined) break
    const index = start + failed
    results[index] = await work(items[index], index)
    start = index + 1
  }
  return results
}

/**
 * The order records are kept in registry.json, whatever order concurrent walks finished in: the
 * previous tree's records where they were, then each new one where a walk of the roots one at a
 * time, in order, would have added it (children, then blobs, then the manifest itself).
 */
class RecordOrder {
  private readonly manifests: string[]
  private readonly blobs: string[]
  private readonly seenManifests: Set<string>
  private readonly seenBlobs: Set<string>

  constructor(private readonly index: Pick<TreeIndex, 'manifests' | 'blobs'>) {
    this.manifests = Object.keys(index.manifests)
    this.blobs = Object.keys(index.blobs)
    this.seenManifests = new Set(this.manifests)
    this.seenBlobs = new Set(this.blobs)
  }

  /** `digest` was recorded: its graph, where a walk would have reached it first. */
  visit(digest: string): void {
    const stack: {digest: string; child: number}[] = []
    const enter = (d: string) => {
      if (this.seenManifests.has(d) || !this.index.manifests[d]) return
      this.seenManifests.add(d)
      stack.push({digest: d, child: 0})
    }
    enter(digest)
    while (stack.length > 0) {
      const top = stack[stack.length - 1]
      const record = this.index.manifests[top.digest]
      if (top.child < record.children.length) {
        enter(record.children[top.child++])
        continue
      }
      stack.pop()
      for (const blob of record.blobs) {
        if (this.seenBlobs.has(blob)) continue
        this.seenBlobs.add(blob)
        this.blobs.push(blob)
      }
      this.manifests.push(top.digest)
    }
  }

  /** Put the index's records in that order (anything not reached keeps its place after them). */
  apply(): void {
    const reorder = <T>(records: Record<string, T>, order: string[]): Record<string, T> => {
      const sorted = dict<T>()
      for (const digest of order) if (digest in records) sorted[digest] = records[digest]
      for (const digest of Object.keys(records)) if (!(digest in sorted)) sorted[digest] = records[digest]
      return sorted
    }
    this.index.manifests = reorder(this.index.manifests, this.manifests)
    this.index.blobs = reorder(this.index.blobs, this.blobs)
  }
}

/**
 * A rebuild that changes nothing: every image of the sources is already in the tree, whole, and
 * the tree's state would come out equal. Then the tree is left as it is, without a staging copy.
 * Only for sources whose images are listed without copying anything (`oci:`, `dir:`); undefined
 * as soon as anything differs (then the build proceeds as usual).
 */
async function unchangedTree(specs: SourceSpec[], options: BuildOptions, previous: Omit<TreeIndex, 'objects'>, out: string, settings: TreeSettings): Promise<BuildSummary | undefined> {
  if (options.withReferrers || specs.some((spec) => spec.transport !== 'oci' && spec.transport !== 'dir')) return undefined
  if (!sameJson(settings, previous.settings)) return undefined
  const store = new TreeCheckStore(out)
  await store.init()
  const repositories = dict<RepositoryRecord>()
  for (const [name, record] of Object.entries(previous.repositories)) repositories[name] = {...record, tags: dict(Object.entries(record.tags))}
  const index: Omit<TreeIndex, 'objects'> = {...emptyIndex(settings.tagMaxAge), ...previous, settings, repositories, manifests: dict(Object.entries(previous.manifests)), blobs: dict(Object.entries(previous.blobs))}
  const ingester = new GraphIngester(store, index)
  const strings = new ImageStrings(index)
  const images: BuiltImage[] = []
  for (const spec of specs) {
    const source = openSource(spec, `${out}.reg-unused`, options.sources)
    try {
      const roots = await source.roots()
      for (const root of roots) {
        const target = targetOf(spec, root, roots.length, options.prefix)
        const name = strings.once(target.name)
        const digest = strings.once(root.descriptor.digest)
        const record = ingester.reuseStored(digest)
        if (!record) return undefined
        repositoryRecord(index, name).tags[target.tag] = digest
        images.push({name, tag: target.tag, digest, mediaType: record.mediaType, platforms: strings.platforms(digest, record), source: spec.text})
      }
    } finally {
      await source.close()
    }
  }
  const treeIndex = await finalizeIndex(store, index, {collectGarbage: true})
  if (store.changed || !sameJson(treeIndex, previous)) return undefined
  for (const file of ['index.json', 'oci-layout']) if (!(await exists(path.join(out, file)))) return undefined
  for (const image of images) options.observer?.imageDone?.(image)
  return {...summarize(out, treeIndex, images, 0), referrers: [], blobsAlreadyPresent: ingester.blobsAlreadyPresent}
}

/** Equal as JSON.stringify would write them, key order included (a key holding undefined is no key). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) {
    const other = b as unknown[]
    return a.length === other.length && a.every((value, i) => sameJson(value, other[i]))
  }
  const keysOf = (value: object) => Object.keys(value).filter((key) => (value as Record<string, unknown>)[key] !== undefined)
  const keys = keysOf(a)
  const otherKeys = keysOf(b)
  return keys.length === otherKeys.length && keys.every((key, i) => key === otherKeys[i] && sameJson((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]))
}

/**
 * Copy what the source attaches to the image `root` and to every manifest under it (an index's
 * children) into repository `name`, verified like any image: cosign-style attachments under their
 * tags, OCI 1.1 referrers as untagged manifests (listed by the referrers documents of the tree).
 * One level deep: what is attached to an attachment is not looked for.
 */
async function copyReferrers(ingester: GraphIngester, index: Pick<TreeIndex, 'repositories' | 'manifests'>, source: ImageSource, root: string, name: string, label: string): Promise<BuiltReferrer[]> {
  if (!source.referrers) return []
  const subjects = new Set<string>()
  const visit = (digest: string) => {
    if (subjects.has(digest)) return
    subjects.add(digest)
    for (const child of index.manifests[digest]?.children ?? []) visit(child)
  }
  visit(root)
  const repository = repositoryRecord(index, name)
  const untagged = new Set(repository.untagged)
  const copied: BuiltReferrer[] = []
  for (const subject of subjects) {
    for (const {descriptor, tag} of await source.referrers(subject)) {
      const where = `${label} (${name}: ${tag ?? descriptor.digest}, attached to ${subject})`
      const record = await ingester.ingest(source, descriptor, where)
      if (tag === undefined) {
        // A listing is the registry's word; the subject is the referrer's own: they must agree.
        if (record.subject !== subject) {
          throw new RegError(`${where}: listed as a referrer of ${subject}, but its subject is ${record.subject ?? 'absent'}`, 'the registry\'s referrers list is malicious or corrupt', 'MANIFEST_INVALID')
        }
        untagged.add(descriptor.digest)
      } else {
        repository.tags[validateTag(tag, name)] = descriptor.digest
      }
      copied.push({name, ...(tag === undefined ? {} : {tag}), digest: descriptor.digest, subject})
    }
  }
  if (untagged.size > 0) repository.untagged = [...untagged].sort()
  return copied
}

/** Replace `out` with `staging` by two renames; `recoverSiblings` repairs a kill between them. */
async function swapInto(staging: string, out: string): Promise<void> {
  if (!(await exists(out))) {
    await rename(staging, out)
    return
  }
  const old = `${out}.reg-old-${process.pid}-${randomBytes(4).toString('hex')}`
  await rename(out, old)
  await rename(staging, out)
  await rm(old, {recursive: true, force: true})
}

function summarize(out: string, index: Omit<TreeIndex, 'objects'>, images: BuiltImage[], bytesCopied: number): Omit<BuildSummary, 'blobsAlreadyPresent' | 'referrers'> {
  const uniqueBlobBytes = Object.values(index.blobs).reduce((sum, b) => sum + b.size, 0)
  let perRepositoryBytes = 0
  for (const name of Object.keys(index.repositories)) {
    for (const digest of repositoryBlobs(index, repositoryManifests(index, name))) perRepositoryBytes += index.blobs[digest].size
  }
  return {
    out,
    images,
    repositories: Object.keys(index.repositories).length,
    tags: Object.values(index.repositories).reduce((sum, r) => sum + Object.keys(r.tags).length, 0),
    blobs: Object.keys(index.blobs).length,
    bytesStored: blobAndManifestBytes(index),
    bytesSavedByDedup: perRepositoryBytes - uniqueBlobBytes,
    bytesCopied,
  }
}
