// Deterministic synthetic images for the benchmarks: incompressible layers, no downloads.
// Layers are real (uncompressed) tars of one file of AES-CTR keystream, so the images are valid
// (`umoci unpack` works) while costing no more than raw bytes; a layer never sits in memory.
import {createCipheriv, createHash} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {mkdir, rename, writeFile} from 'node:fs/promises'
import path from 'node:path'

const MB = 1024 * 1024
const CHUNK = MB

/** A ustar header for one regular file (`name`, `size` bytes), fixed metadata so bytes are reproducible. */
function tarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512)
  const field = (offset: number, length: number, value: string) => header.write(value, offset, length, 'ascii')
  const octal = (value: number, length: number) => value.toString(8).padStart(length - 1, '0') + '\0'
  field(0, 100, name)
  field(100, 8, octal(0o644, 8))
  field(108, 8, octal(0, 8))
  field(116, 8, octal(0, 8))
  field(124, 12, octal(size, 12))
  field(136, 12, octal(0, 12))
  field(148, 8, '        ')
  field(156, 1, '0')
  field(257, 6, 'ustar\0')
  field(263, 2, '00')
  let sum = 0
  for (const byte of header) sum += byte
  field(148, 8, sum.toString(8).padStart(6, '0') + '\0 ')
  return header
}

/**
 * Deterministic incompressible bytes (AES-CTR keystream of `seed`), streamed to `dir/<hex>`; returns
 * the digest. When `bytes` allows it (a multiple of 512, ≥ 1536) the blob is a tar of one file
 * `<seed>.bin`, exactly `bytes` long: header, keystream, two zero end blocks.
 */
async function writeRandomBlob(dir: string, seed: string, bytes: number): Promise<{digest: string; size: number}> {
  const key = createHash('sha256').update(seed).digest()
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  const hash = createHash('sha256')
  const temp = path.join(dir, `.tmp-${seed}`)
  const out = createWriteStream(temp, {highWaterMark: CHUNK})
  const write = async (chunk: Buffer) => {
    hash.update(chunk)
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()))
  }
  const asTar = bytes % 512 === 0 && bytes >= 1536
  const payload = asTar ? bytes - 1536 : bytes
  if (asTar) await write(tarHeader(`${seed}.bin`, payload))
  const zero = Buffer.alloc(CHUNK)
  for (let written = 0; written < payload; written += CHUNK) {
    await write(cipher.update(zero.subarray(0, Math.min(CHUNK, payload - written))))
  }
  if (asTar) await write(Buffer.alloc(1024))
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())))
  const digest = 'sha256:' + hash.digest('hex')
  await rename(temp, path.join(dir, digest.slice(7)))
  return {digest, size: bytes}
}

async function writeJsonBlob(dir: string, value: unknown): Promise<{digest: string; size: number}> {
  const bytes = Buffer.from(JSON.stringify(value))
  const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex')
  await writeFile(path.join(dir, digest.slice(7)), bytes)
  return {digest, size: bytes.length}
}

/** The index name of big image `i` by default: four repositories share the base layer. */
export function bigImageRef(i: number): string {
  return `example.com/bench/img-${i % 4}:v${i}`
}

export interface Layout {
  /** bytes of the distinct blobs of the layout (layers, configs, manifests): what a deduplicating copy stores */
  uniqueBytes: number
  /** bytes a per-image copy holds: every image's manifest, config and layers, shared ones counted per image */
  logicalBytes: number
  /** every blob file, `blobs/sha256/<hex>` */
  blobFiles: string[]
  /** digest → size of every blob */
  blobs: Map<string, number>
  /** the `org.opencontainers.image.ref.name` of each big image, in order */
  refs: string[]
}

/**
 * An OCI image layout of `images` big images (one shared `baseMb` MiB base layer, one `uniqueMb` MiB
 * layer each), named by `ref(i)` (default `bigImageRef`), plus `smallImages` tiny ones.
 */
export async function makeLayout(
  root: string,
  {images: IMAGES, baseMb: BASE_MB, uniqueMb: UNIQUE_MB, smallImages = 0, ref = bigImageRef}:
  {images: number; baseMb: number; uniqueMb: number; smallImages?: number; ref?: (i: number) => string},
): Promise<Layout> {
  const dir = path.join(root, 'blobs', 'sha256')
  await mkdir(dir, {recursive: true})
  const layerType = 'application/vnd.oci.image.layer.v1.tar'
  const blobs = new Map<string, number>()
  let logicalBytes = 0
  const add = (...written: Array<{digest: string; size: number}>) => {
    for (const b of written) {
      blobs.set(b.digest, b.size)
      logicalBytes += b.size
    }
  }
  const base = await writeRandomBlob(dir, 'base', Math.round(BASE_MB * MB))
  const entries = []
  const refs: string[] = []
  for (let i = 0; i < IMAGES; i++) {
    const unique = await writeRandomBlob(dir, `unique-${i}`, Math.round(UNIQUE_MB * MB))
    const config = await writeJsonBlob(dir, {architecture: 'amd64', os: 'linux', rootfs: {type: 'layers', diff_ids: [base.digest, unique.digest]}, config: {Env: [`IMAGE=${i}`]}})
    const manifest = await writeJsonBlob(dir, {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {mediaType: 'application/vnd.oci.image.config.v1+json', ...config},
      layers: [{mediaType: layerType, ...base}, {mediaType: layerType, ...unique}],
    })
    add(base, unique, config, manifest)
    refs.push(ref(i))
    entries.push({mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: {'org.opencontainers.image.ref.name': ref(i)}})
  }
  // Many small files: tiny images under many names (repositories small/s-N).
  for (let i = 0; i < smallImages; i++) {
    const layer = await writeRandomBlob(dir, `small-${i}`, 4096)
    const config = await writeJsonBlob(dir, {architecture: 'amd64', os: 'linux', rootfs: {type: 'layers', diff_ids: [layer.digest]}})
    const manifest = await writeJsonBlob(dir, {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {mediaType: 'application/vnd.oci.image.config.v1+json', ...config},
      layers: [{mediaType: layerType, ...layer}],
    })
    add(layer, config, manifest)
    entries.push({mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: {'org.opencontainers.image.ref.name': `example.com/small/s-${i % 50}:t${i}`}})
  }
  await writeFile(path.join(root, 'oci-layout'), JSON.stringify({imageLayoutVersion: '1.0.0'}))
  await writeFile(path.join(root, 'index.json'), JSON.stringify({schemaVersion: 2, manifests: entries}))
  const uniqueBytes = [...blobs.values()].reduce((a, b) => a + b, 0)
  const blobFiles = [...blobs.keys()].map((digest) => path.join(dir, digest.slice(7)))
  return {uniqueBytes, logicalBytes, blobFiles, blobs, refs}
}
