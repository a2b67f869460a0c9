// Deterministic synthetic images for the benchmarks: incompressible layers, no downloads.
import {execFileSync} from 'node:child_process'
import {createCipheriv, createHash} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {mkdir, readdir, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'

const MB = 1024 * 1024

/** Deterministic incompressible bytes (AES-CTR keystream of a seed), streamed to `file`; returns the digest. */
async function writeRandomBlob(dir: string, seed: string, bytes: number): Promise<{digest: string; size: number}> {
  const key = createHash('sha256').update(seed).digest()
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  const hash = createHash('sha256')
  const temp = path.join(dir, `.tmp-${seed}`)
  const out = createWriteStream(temp)
  const zero = Buffer.alloc(MB)
  for (let written = 0; written < bytes; written += MB) {
    const chunk = cipher.update(zero.subarray(0, Math.min(MB, bytes - written)))
    hash.update(chunk)
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()))
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())))
  const digest = 'sha256:' + hash.digest('hex')
  execFileSync('mv', [temp, path.join(dir, digest.slice(7))])
  return {digest, size: bytes}
}

async function writeJsonBlob(dir: string, value: unknown): Promise<{digest: string; size: number}> {
  const bytes = Buffer.from(JSON.stringify(value))
  const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex')
  await writeFile(path.join(dir, digest.slice(7)), bytes)
  return {digest, size: bytes.length}
}

/** An OCI layout with IMAGES images `img-<i>`: one shared base layer, one unique layer each. */
/** The index name of big image `i`: four repositories share the base layer. */
export function bigImageRef(i: number): string {
  return `example.com/bench/img-${i % 4}:v${i}`
}

export async function makeLayout(root: string, {images: IMAGES, baseMb: BASE_MB, uniqueMb: UNIQUE_MB, smallImages = 0}: {images: number; baseMb: number; uniqueMb: number; smallImages?: number}): Promise<{uniqueBytes: number; blobFiles: string[]}> {
  const blobs = path.join(root, 'blobs', 'sha256')
  await mkdir(blobs, {recursive: true})
  const layerType = 'application/vnd.oci.image.layer.v1.tar'
  const base = await writeRandomBlob(blobs, 'base', BASE_MB * MB)
  const entries = []
  for (let i = 0; i < IMAGES; i++) {
    const unique = await writeRandomBlob(blobs, `unique-${i}`, UNIQUE_MB * MB)
    const config = await writeJsonBlob(blobs, {architecture: 'amd64', os: 'linux', rootfs: {type: 'layers', diff_ids: [base.digest, unique.digest]}, config: {Env: [`IMAGE=${i}`]}})
    const manifest = await writeJsonBlob(blobs, {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {mediaType: 'application/vnd.oci.image.config.v1+json', ...config},
      layers: [{mediaType: layerType, ...base}, {mediaType: layerType, ...unique}],
    })
    entries.push({mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: {'org.opencontainers.image.ref.name': bigImageRef(i)}})
  }
  // Many small files: tiny images under many names (repositories big/img-N, small/s-N).
  for (let i = 0; i < smallImages; i++) {
    const layer = await writeRandomBlob(blobs, `small-${i}`, 4096)
    const config = await writeJsonBlob(blobs, {architecture: 'amd64', os: 'linux', rootfs: {type: 'layers', diff_ids: [layer.digest]}})
    const manifest = await writeJsonBlob(blobs, {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {mediaType: 'application/vnd.oci.image.config.v1+json', ...config},
      layers: [{mediaType: layerType, ...layer}],
    })
    entries.push({mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: {'org.opencontainers.image.ref.name': `example.com/small/s-${i % 50}:t${i}`}})
  }
  await writeFile(path.join(root, 'oci-layout'), JSON.stringify({imageLayoutVersion: '1.0.0'}))
  await writeFile(path.join(root, 'index.json'), JSON.stringify({schemaVersion: 2, manifests: entries}))
  const blobFiles = (await readdir(blobs)).map((n) => path.join(blobs, n))
  let uniqueBytes = 0
  for (const file of blobFiles) uniqueBytes += (await stat(file)).size
  return {uniqueBytes, blobFiles}
}

