import {MAX_DOCUMENT_BYTES, readFileBounded} from '../core/limits.js'
import {CONFIG_MEDIA_TYPES} from '../core/media-types.js'
import type {BlobStore} from '../tree/blob-store.js'
import {mapLimit} from '../core/concurrency.js'
import {dict, type ImageConfigSummary, type ManifestRecord, type TreeState} from '../tree/model.js'

/**
 * The labels the page shows, and nothing else: an image's config may carry thousands of labels of
 * any size; the tree's state keeps only these, each cut to `LABEL_CHARS`.
 */
export const PAGE_LABELS = [
  'org.opencontainers.image.title',
  'org.opencontainers.image.description',
  'org.opencontainers.image.source',
  'org.opencontainers.image.url',
  'org.opencontainers.image.documentation',
  'org.opencontainers.image.version',
  'org.opencontainers.image.revision',
  'org.opencontainers.image.licenses',
  'org.opencontainers.image.vendor',
] as const
const LABEL_CHARS = 500
/** config files read at once */
const CONFIG_READS = 32
/** an RFC 3339 time as configs write it (`2026-01-01T00:00:00Z`, fractions, offsets) */
const CREATED = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * What the page keeps of a config (or of a stored summary: the same rules, so a tampered
 * registry.json can hold no more than a build would write). Undefined fields are left out.
 */
export function summarizeConfig(config: unknown): ImageConfigSummary {
  if (!isObject(config)) return {}
  const summary: ImageConfigSummary = {}
  if (typeof config.created === 'string' && CREATED.test(config.created) && !Number.isNaN(Date.parse(config.created))) summary.created = config.created
  // A config's labels are under config.Labels; a stored summary's under labels.
  const source = isObject(config.config) ? config.config.Labels : config.labels
  if (isObject(source)) {
    const labels = dict<string>()
    for (const key of PAGE_LABELS) {
      const value = Object.hasOwn(source, key) ? source[key] : undefined
      if (typeof value === 'string' && value.length > 0) labels[key] = value.slice(0, LABEL_CHARS)
    }
    if (Object.keys(labels).length > 0) summary.labels = labels
  }
  return summary
}

/**
 * Give every image record of `index` that has none the summary of its config, read from `store`
 * (bounded; each config once). A config that is not JSON, too large or not a config gives an empty
 * summary: the page shows less, the build goes on.
 */
export async function summarizeConfigs(store: BlobStore, index: Pick<TreeState, 'manifests' | 'blobs'>): Promise<void> {
  const waiting = new Map<string, ManifestRecord[]>()
  for (const record of Object.values(index.manifests)) {
    if (record.kind !== 'image' || record.config !== undefined) continue
    const config = record.blobs[0]
    if (config === undefined || !CONFIG_MEDIA_TYPES.has(index.blobs[config]?.mediaType ?? '')) record.config = {}
    else waiting.set(config, [...(waiting.get(config) ?? []), record])
  }
  // Small files, many of them (20,000 at 100,000 tags): read a few dozen at a time.
  await mapLimit([...waiting], CONFIG_READS, async ([config, records]) => {
    let summary: ImageConfigSummary
    try {
      summary = summarizeConfig(JSON.parse((await readFileBounded(store.pathOf(config), MAX_DOCUMENT_BYTES, `config ${config}`)).toString('utf8')))
    } catch {
      summary = {}
    }
    for (const record of records) record.config = summary
  })
}
