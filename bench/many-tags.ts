// A deterministic OCI layout shaped like a big registry's metadata: many tags, many repositories,
// many small image manifests sharing a few hundred small layers (the way real images share base
// layers). Not a benchmark by itself: it writes the layout(s) `reg build` and `reg deploy` are
// profiled on (issue 15).
//
//   node --import tsx bench/many-tags.ts OUT_DIR      # prints {"sources": ["oci:OUT_DIR/layout-0", ...], ...}
//
// Knobs (environment): BENCH_TAGS (100000), BENCH_REPOSITORIES (1000), BENCH_MANIFESTS (20000),
// BENCH_LAYERS (300 distinct layers, of which BENCH_BASES = 20 are base layers), BENCH_LAYER_BYTES (4096).
//
// Shape: image manifest m has its own config and two layers, base m % BASES and layer
// BASES + m % (LAYERS - BASES); it lives in repository m % REPOSITORIES; tag t names manifest
// t % MANIFESTS, as `example.com/bench/r<repo>:v<t / MANIFESTS>.<m / REPOSITORIES>` (so several tags
// per manifest, TAGS / REPOSITORIES tags per repository). The same parameters give the same bytes.
//
// An index.json is a manifest to reg (at most MAX_MANIFEST_BYTES, 4 MiB, about 19,000 entries), so
// a bigger layout is split by whole repositories into several layouts, each under the bound; their
// blob files are hardlinks of one pool. `reg build` takes them all: `reg build $(jq -r '.sources[]')`.
import {createHash} from 'node:crypto'
import {link, mkdir, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {pathToFileURL} from 'node:url'
import {MAX_MANIFEST_BYTES} from '../src/core/limits.js'

export interface ManyTagsOptions {
  tags: number
  repositories: number
  manifests: number
  layers: number
  bases: number
  layerBytes: number
}

export interface ManyTagsLayout {
  /** `oci:DIR` arguments for `reg build`, one per layout */
  sources: string[]
  tags: number
  repositories: number
  manifests: number
  /** distinct blob files (manifests, configs, layers) and their bytes */
  blobs: number
  blobBytes: number
}

export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): ManyTagsOptions {
  const number = (name: string, fallback: number) => {
    const value = Number(env[name] ?? fallback)
    if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`)
    return value
  }
  const layers = number('BENCH_LAYERS', 300)
  const options = {
    tags: number('BENCH_TAGS', 100_000),
    repositories: number('BENCH_REPOSITORIES', 1000),
    manifests: number('BENCH_MANIFESTS', 20_000),
    layers,
    bases: Math.min(number('BENCH_BASES', 20), layers - 1),
    layerBytes: number('BENCH_LAYER_BYTES', 4096),
  }
  if (options.repositories > options.manifests) throw new Error('BENCH_REPOSITORIES must not exceed BENCH_MANIFESTS')
  return options
}

/** `bytes` deterministic bytes of `seed`: a sha256 counter stream. */
function seededBytes(seed: string, bytes: number): Buffer {
  const out = Buffer.alloc(bytes)
  for (let offset = 0, block = 0; offset < bytes; offset += 32, block++) {
    createHash('sha256').update(`${seed}/${block}`).digest().copy(out, offset)
  }
  return out
}

const LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip'
const CONFIG_TYPE = 'application/vnd.oci.image.config.v1+json'
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json'
const REF_NAME = 'org.opencontainers.image.ref.name'

export async function makeManyTagsLayout(root: string, options: ManyTagsOptions): Promise<ManyTagsLayout> {
  const {tags, repositories, manifests, layers, bases, layerBytes} = options
  await rm(root, {recursive: true, force: true})
  const pool = path.join(root, 'pool')
  await mkdir(pool, {recursive: true})
  let blobBytes = 0
  const store = async (bytes: Buffer): Promise<{digest: string; size: number}> => {
    const hex = createHash('sha256').update(bytes).digest('hex')
    await writeFile(path.join(pool, hex), bytes)
    blobBytes += bytes.length
    return {digest: `sha256:${hex}`, size: bytes.length}
  }

  const layerDescriptors = []
  for (let l = 0; l < layers; l++) layerDescriptors.push({mediaType: LAYER_TYPE, ...(await store(seededBytes(`layer-${l}`, layerBytes)))})
  /** per manifest: its descriptor and the blob files it needs */
  const images: Array<{descriptor: {mediaType: string; digest: string; size: number}; files: string[]}> = []
  for (let m = 0; m < manifests; m++) {
    const imageLayers = [layerDescriptors[m % bases], layerDescriptors[bases + (m % (layers - bases))]]
    const config = await store(Buffer.from(JSON.stringify({
      architecture: 'amd64', os: 'linux', config: {Env: [`IMAGE=${m}`]},
      rootfs: {type: 'layers', diff_ids: imageLayers.map((l) => l.digest)},
    })))
    const manifest = await store(Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {mediaType: CONFIG_TYPE, ...config}, layers: imageLayers,
    })))
    images.push({descriptor: {mediaType: MANIFEST_TYPE, ...manifest}, files: [manifest.digest, config.digest, ...imageLayers.map((l) => l.digest)]})
  }

  // index.json entries grouped by repository, then split into layouts of whole repositories under the bound.
  const byRepository: Array<Array<{entry: string; files: string[]}>> = Array.from({length: repositories}, () => [])
  for (let t = 0; t < tags; t++) {
    const m = t % manifests
    const r = m % repositories
    const ref = `example.com/bench/r${r}:v${Math.floor(t / manifests)}.${Math.floor(m / repositories)}`
    byRepository[r].push({entry: JSON.stringify({...images[m].descriptor, annotations: {[REF_NAME]: ref}}), files: images[m].files})
  }
  const budget = MAX_MANIFEST_BYTES - 1024
  const shards: Array<Array<{entry: string; files: string[]}>> = [[]]
  let shardBytes = 0
  for (const entries of byRepository) {
    const bytes = entries.reduce((sum, e) => sum + e.entry.length + 1, 0)
    if (bytes > budget) throw new Error('one repository has more tags than one index.json may name: use more repositories')
    if (shardBytes + bytes > budget && shards.at(-1)!.length > 0) {
      shards.push([])
      shardBytes = 0
    }
    shards.at(-1)!.push(...entries)
    shardBytes += bytes
  }

  const sources: string[] = []
  for (const [k, entries] of shards.entries()) {
    const dir = path.join(root, `layout-${k}`)
    const blobs = path.join(dir, 'blobs', 'sha256')
    await mkdir(blobs, {recursive: true})
    const linked = new Set<string>()
    for (const {files} of entries) {
      for (const digest of files) {
        if (linked.has(digest)) continue
        linked.add(digest)
        await link(path.join(pool, digest.slice(7)), path.join(blobs, digest.slice(7)))
      }
    }
    await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({imageLayoutVersion: '1.0.0'}))
    await writeFile(path.join(dir, 'index.json'), `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[${entries.map((e) => e.entry).join(',')}]}`)
    sources.push(`oci:${dir}`)
  }
  return {sources, tags, repositories, manifests, blobs: layers + 2 * manifests, blobBytes}
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const out = process.argv[2]
  if (!out) {
    console.error('usage: node --import tsx bench/many-tags.ts OUT_DIR   (knobs: BENCH_TAGS, BENCH_REPOSITORIES, BENCH_MANIFESTS, BENCH_LAYERS, BENCH_BASES, BENCH_LAYER_BYTES)')
    process.exit(2)
  }
  console.log(JSON.stringify(await makeManyTagsLayout(path.resolve(out), optionsFromEnv()), null, 1))
}
