import {MAX_DOCUMENT_BYTES, readFileBounded} from '../core/limits.js'
import type {BlobStore} from './blob-store.js'
import {dict, type TreeState} from './model.js'

/**
 * When each tag was set: its recorded time in the tree's state (`tagged`, written by builds since
 * this field exists), else the `created` of its image's config (for an index, the newest of its
 * images). A tag with neither has no age: no `--older-than` removes it.
 */
export async function tagTimes(state: TreeState, store: BlobStore): Promise<Map<string, number>> {
  const createdOf = new Map<string, number | undefined>()
  const configCreated = async (digest: string): Promise<number | undefined> => {
    if (createdOf.has(digest)) return createdOf.get(digest)
    createdOf.set(digest, undefined)
    const record = state.manifests[digest]
    let created: number | undefined
    if (record?.kind === 'index') {
      for (const child of record.children) {
        const time = await configCreated(child)
        if (time !== undefined && (created === undefined || time > created)) created = time
      }
    } else if (record?.blobs[0] && (await store.sizeOf(record.blobs[0])) !== undefined) {
      try {
        const config = JSON.parse((await readFileBounded(store.pathOf(record.blobs[0]), MAX_DOCUMENT_BYTES, `the config of ${digest}`)).toString('utf8')) as {created?: unknown}
        const time = typeof config.created === 'string' ? Date.parse(config.created) : Number.NaN
        if (Number.isFinite(time)) created = time
      } catch {
        // Not JSON, too large, or not a config (an artifact): no age.
      }
    }
    createdOf.set(digest, created)
    return created
  }
  const times = new Map<string, number>()
  for (const [name, repository] of Object.entries(state.repositories)) {
    for (const [tag, digest] of Object.entries(repository.tags)) {
      const recorded = repository.tagged?.[tag]
      const time = recorded === undefined ? await configCreated(digest) : Date.parse(recorded)
      if (time !== undefined && Number.isFinite(time)) times.set(`${name}:${tag}`, time)
    }
  }
  return times
}

/**
 * Record when each tag was set (`tagged`, ISO 8601): now for a tag that is new or moved since
 * `previous`, the previous time for one that stayed; times of tags that are gone are dropped.
 * Older trees have no times: their tags keep none until they move (their config's `created` stands in).
 */
export function stampTagTimes(previous: Pick<TreeState, 'repositories'> | undefined, state: Pick<TreeState, 'repositories'>, now: number): void {
  const stamp = new Date(now).toISOString()
  for (const [name, repository] of Object.entries(state.repositories)) {
    const before = previous?.repositories[name]
    const tagged = dict<string>()
    for (const [tag, digest] of Object.entries(repository.tags)) {
      const kept = before?.tags[tag] === digest ? (repository.tagged?.[tag] ?? before?.tagged?.[tag]) : undefined
      const unchangedWithoutTime = before?.tags[tag] === digest && kept === undefined
      if (kept !== undefined) tagged[tag] = kept
      else if (!unchangedWithoutTime) tagged[tag] = stamp
    }
    if (Object.keys(tagged).length > 0) repository.tagged = tagged
    else delete repository.tagged
  }
}
