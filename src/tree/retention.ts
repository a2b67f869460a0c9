import {RegError} from '../core/errors.js'
import path from 'node:path'
import {parseDuration} from '../config/duration.js'
import {globToRegExp} from '../sources/registry/registry-source.js'
import {BlobStore} from './blob-store.js'
import {rewriteTree} from './builder.js'
import {dict, TREE_INDEX_FILE, type TreeState} from './model.js'
import {repositoryBlobs, repositoryManifests} from './objects.js'
import {readTreeIndex} from './registry-tree.js'
import {tagTimes} from './tag-times.js'

export {parseDuration}

/** What `reg prune` (and `retention:` of the config file) removes. A tag goes when every rule given says so. */
export interface RetentionRules {
  /** per repository, keep the N newest of the matched tags (versions by precedence, then other tags by time) */
  keepLast?: number
  /** remove matched tags set longer ago than this (milliseconds) */
  olderThanMs?: number
  /** `NAME_GLOB:TAG_GLOB` patterns (`*` within a path component, `**` across): the tags the rules apply to; default every tag */
  match?: readonly string[]
  /** also remove manifests held without a tag (pushed by digest), but never a referrer of a kept manifest */
  untagged?: boolean
}

export interface RemovedTag {
  repository: string
  tag: string
  digest: string
}

export interface RetentionPlan {
  tags: RemovedTag[]
  /** manifests held untagged that go: `repository@digest` */
  untagged: Array<{repository: string; digest: string}>
}

interface Version {
  numbers: number[]
  prerelease: string[]
}

/** A tag read as a semantic version (`v` prefix and missing minor or patch allowed: `v1`, `1.2`, `1.2.3-rc.1`), else undefined. */
export function parseVersion(tag: string): Version | undefined {
  const match = /^v?(\d{1,15})(?:\.(\d{1,15}))?(?:\.(\d{1,15}))?(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/.exec(tag)
  if (!match) return undefined
  return {numbers: [match[1], match[2] ?? '0', match[3] ?? '0'].map(Number), prerelease: match[4] ? match[4].split('.') : []}
}

/** Semantic version precedence: numbers, then a prerelease before its release, identifiers compared as semver says. */
export function compareVersions(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) if (a.numbers[i] !== b.numbers[i]) return a.numbers[i] - b.numbers[i]
  if (a.prerelease.length === 0 || b.prerelease.length === 0) return b.prerelease.length - a.prerelease.length
  for (let i = 0; i < Math.min(a.prerelease.length, b.prerelease.length); i++) {
    const [x, y] = [a.prerelease[i], b.prerelease[i]]
    if (x === y) continue
    const [xn, yn] = [/^\d+$/.test(x), /^\d+$/.test(y)]
    if (xn && yn) return Number(x) - Number(y)
    if (xn !== yn) return xn ? -1 : 1
    return x < y ? -1 : 1
  }
  return a.prerelease.length - b.prerelease.length
}

/** A `--match` pattern, `NAME_GLOB:TAG_GLOB` (a pattern without `:` matches every tag of the names). */
function matcherOf(patterns: readonly string[] | undefined): (repository: string, tag: string) => boolean {
  if (!patterns || patterns.length === 0) return () => true
  const compiled = patterns.map((pattern) => {
    const colon = pattern.lastIndexOf(':')
    const [name, tag] = colon < 0 ? [pattern, '*'] : [pattern.slice(0, colon), pattern.slice(colon + 1)]
    if (!name || !tag) throw new RegError(`--match ${JSON.stringify(pattern.slice(0, 80))} is not NAME:TAG`, 'e.g. --match \'team/**:v*\' (globs: * within a name component, ** across)')
    return {name: globToRegExp(name), tag: globToRegExp(tag)}
  })
  return (repository, tag) => compiled.some((p) => p.name.test(repository) && p.tag.test(tag))
}

/** `sha256-<hex>.sig` (cosign's attachment tags): the subject they are attached to. */
function attachmentSubject(tag: string): string | undefined {
  const match = /^sha256-([a-f0-9]{64})(?:\.[A-Za-z0-9_-]+)?$/.exec(tag)
  return match ? `sha256:${match[1]}` : undefined
}

/**
 * Which tags and untagged manifests `rules` remove, without changing anything. A tag is kept,
 * whatever the rules, when a kept tag needs it: its manifest is reached from a kept tag (an index's
 * child), or it is an attachment (`sha256-<hex>.sig`) of a manifest that stays. Attachments of a
 * manifest that goes, tagged or untagged referrers, go with it.
 */
export function planRetention(state: TreeState, rules: RetentionRules, times: ReadonlyMap<string, number>, now: number): RetentionPlan {
  const matches = matcherOf(rules.match)
  const byTagRules = rules.keepLast !== undefined || rules.olderThanMs !== undefined
  const removedTags: RemovedTag[] = []
  const removedUntagged: RetentionPlan['untagged'] = []
  for (const [name, repository] of Object.entries(state.repositories)) {
    const candidates = byTagRules ? Object.keys(repository.tags).filter((tag) => attachmentSubject(tag) === undefined && matches(name, tag)) : []
    const time = (tag: string) => times.get(`${name}:${tag}`)
    // Newest first: versions by precedence, then the other tags by time (unknown times last), then by name.
    const versions = new Map(candidates.map((tag) => [tag, parseVersion(tag)]))
    candidates.sort((a, b) => {
      const [va, vb] = [versions.get(a), versions.get(b)]
      if (va && vb) return compareVersions(vb, va) || (a < b ? 1 : -1)
      if (va || vb) return va ? -1 : 1
      return (time(b) ?? -Infinity) - (time(a) ?? -Infinity) || (a < b ? 1 : -1)
    })
    const going = new Set(candidates.filter((tag, rank) =>
      (rules.keepLast === undefined || rank >= rules.keepLast)
      && (rules.olderThanMs === undefined || (time(tag) !== undefined && now - time(tag)! > rules.olderThanMs))))
    // Manifests reached from the kept tags, each visited once (a set closed under children).
    const reach = (held: Set<string>, digest: string): Set<string> => {
      for (const stack = [digest]; stack.length > 0;) {
        const next = stack.pop()!
        if (held.has(next) || !(next in state.manifests)) continue
        held.add(next)
        stack.push(...state.manifests[next].children)
      }
      return held
    }
    const held = new Set<string>()
    for (const [tag, digest] of Object.entries(repository.tags)) if (!going.has(tag) && attachmentSubject(tag) === undefined) reach(held, digest)
    // A tag whose manifest a kept tag reaches (an index's child) stays: keeping it reaches nothing new.
    for (const tag of going) if (held.has(repository.tags[tag])) going.delete(tag)
    // An attachment follows its subject: it goes when the subject was here and no kept tag reaches it.
    const heldBefore = new Set<string>()
    for (const digest of Object.values(repository.tags)) reach(heldBefore, digest)
    for (const tag of Object.keys(repository.tags)) {
      const subject = attachmentSubject(tag)
      if (subject !== undefined && heldBefore.has(subject) && !held.has(subject)) going.add(tag)
    }
    for (const tag of going) removedTags.push({repository: name, tag, digest: repository.tags[tag]})
    const heldWithAttachments = new Set(held)
    for (const [tag, digest] of Object.entries(repository.tags)) if (!going.has(tag) && attachmentSubject(tag) !== undefined) reach(heldWithAttachments, digest)
    for (const digest of repository.untagged ?? []) {
      const subject = state.manifests[digest]?.subject
      const isReferrer = subject !== undefined
      // A referrer of a manifest the repository's tags held and no longer hold goes with it; one of a kept manifest stays.
      const orphaned = isReferrer && heldBefore.has(subject) && !heldWithAttachments.has(subject)
      if (orphaned || (rules.untagged && !(isReferrer && heldWithAttachments.has(subject)))) removedUntagged.push({repository: name, digest})
    }
  }
  return {tags: removedTags, untagged: removedUntagged}
}

/** Apply a plan to a state (in place): tags, their recorded times and untagged entries go; a repository left empty goes. */
export function applyRetention(state: TreeState, plan: RetentionPlan): void {
  // A tag moved since the plan was made (a build in between) is not the tag the plan removes: it stays.
  for (const {repository, tag, digest} of plan.tags) {
    const record = state.repositories[repository]
    if (record?.tags[tag] !== digest) continue
    delete record.tags[tag]
    if (record.tagged) delete record.tagged[tag]
  }
  for (const {repository, digest} of plan.untagged) {
    const record = state.repositories[repository]
    if (!record) continue
    record.untagged = record.untagged?.filter((d) => d !== digest)
    if (record.untagged?.length === 0) delete record.untagged
  }
  for (const name of new Set([...plan.tags, ...plan.untagged].map((r) => r.repository))) {
    const record = state.repositories[name]
    if (record && Object.keys(record.tags).length === 0 && !record.untagged?.length) delete state.repositories[name]
  }
}

/** Digests the state serves, manifests and blobs, for counting what a prune frees. */
export function heldDigests(state: TreeState): Set<string> {
  const held = new Set<string>()
  for (const name of Object.keys(state.repositories)) {
    const manifests = repositoryManifests(state, name)
    for (const digest of manifests) held.add(digest)
    for (const digest of repositoryBlobs(state, manifests)) held.add(digest)
  }
  return held
}


export interface PruneOptions {
  dryRun?: boolean
  /** the clock (tests) */
  now?: number
}

export interface PruneReport {
  dir: string
  dryRun: boolean
  removedTags: RemovedTag[]
  removedUntagged: RetentionPlan['untagged']
  /** manifests and blobs no repository serves any more, removed from the store (or that would be) */
  removedManifests: number
  removedBlobs: number
  bytesFreed: number
}

/** `reg prune`: remove tags by rule, then what nothing reaches any more, atomically like a build. */
export async function pruneTree(dir: string, rules: RetentionRules, options: PruneOptions = {}): Promise<PruneReport> {
  if (rules.keepLast === undefined && rules.olderThanMs === undefined && !rules.untagged) {
    throw new RegError('reg prune needs a rule', 'pass --keep-last N, --older-than 30d or --untagged (or set retention: in the config file)')
  }
  const now = options.now ?? Date.now()
  const state = await readTreeIndex(dir)
  if (!state) throw new RegError(`${dir} is not a reg tree (no ${path.join(dir, TREE_INDEX_FILE)})`, 'build one first: reg build SOURCE -o DIR')
  const plan = planRetention(state, rules, await tagTimes(state, new BlobStore(dir)), now)
  const before = heldDigests(state)
  const after = {...state, repositories: dict(Object.entries(state.repositories).map(([name, record]) => [name, {
    tags: dict(Object.entries(record.tags)), ...(record.untagged ? {untagged: [...record.untagged]} : {}),
  }] as const))}
  applyRetention(after, plan)
  const held = heldDigests(after)
  const freed = [...before].filter((digest) => !held.has(digest))
  const report: PruneReport = {
    dir, dryRun: Boolean(options.dryRun), removedTags: plan.tags, removedUntagged: plan.untagged,
    removedManifests: freed.filter((d) => d in state.manifests).length,
    removedBlobs: freed.filter((d) => !(d in state.manifests)).length,
    bytesFreed: freed.reduce((sum, d) => sum + (state.manifests[d]?.size ?? state.blobs[d]?.size ?? 0), 0),
  }
  if (options.dryRun || (plan.tags.length === 0 && plan.untagged.length === 0)) return report
  await rewriteTree(dir, (index) => {
    // Planned on the state read above: the tree must not have changed under us.
    applyRetention(index, plan)
  })
  return report
}
