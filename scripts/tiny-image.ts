// A tiny deterministic OCI image layout writer: the example image of `npm start` and test inputs.
import {createHash} from 'node:crypto'
import {mkdir, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {gzipSync} from 'node:zlib'
import * as tar from 'tar-stream'

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex')

export async function layerTarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack()
  const chunks: Buffer[] = []
  pack.on('data', (c) => chunks.push(c as Buffer))
  const done = new Promise<void>((resolve) => pack.on('end', () => resolve()))
  for (const [name, content] of Object.entries(files).sort()) {
    pack.entry({name, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0, uname: 'root', gname: 'root'}, content)
  }
  pack.finalize()
  await done
  return Buffer.concat(chunks)
}

export interface TinyImage {
  manifestDigest: string
  configDigest: string
  layerDigest: string
}

async function startLayout(out: string): Promise<(b: Buffer) => Promise<{digest: string; size: number}>> {
  await rm(out, {recursive: true, force: true})
  await mkdir(path.join(out, 'blobs/sha256'), {recursive: true})
  await writeFile(path.join(out, 'oci-layout'), JSON.stringify({imageLayoutVersion: '1.0.0'}))
  return async (b: Buffer) => {
    await writeFile(path.join(out, 'blobs/sha256', sha(b).slice(7)), b)
    return {digest: sha(b), size: b.length}
  }
}

/** One image whose layers are the given file sets (a shared base layer is just the same set twice). */
async function writeImage(put: (b: Buffer) => Promise<{digest: string; size: number}>, layerFiles: Array<Record<string, string>>, platform: {os: string; architecture: string; variant?: string}): Promise<TinyImage & {size: number}> {
  const tars = await Promise.all(layerFiles.map((files) => layerTarOf(files)))
  const layers = await Promise.all(tars.map((t) => put(gzipSync(t, {level: 9}))))
  const config = await put(Buffer.from(JSON.stringify({
    ...platform, created: '2026-01-01T00:00:00Z',
    config: {Cmd: ['/bin/true']}, rootfs: {type: 'layers', diff_ids: tars.map(sha)},
  })))
  const manifest = await put(Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {mediaType: 'application/vnd.oci.image.config.v1+json', ...config},
    layers: layers.map((l) => ({mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l})),
  })))
  return {manifestDigest: manifest.digest, configDigest: config.digest, layerDigest: layers[layers.length - 1].digest, size: manifest.size}
}

async function writeIndexJson(out: string, entries: Array<{mediaType: string; digest: string; size: number; ref: string}>): Promise<void> {
  await writeFile(path.join(out, 'index.json'), JSON.stringify({schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests:
    entries.map(({ref, ...d}) => ({...d, annotations: {'org.opencontainers.image.ref.name': ref}}))}))
}

/** Write an OCI layout holding one linux/amd64 image with one layer of `files`, under index entry `ref`. */
export async function writeTinyOciLayout(out: string, files: Record<string, string>, ref: string): Promise<TinyImage> {
  const put = await startLayout(out)
  const {size, ...image} = await writeImage(put, [files], {os: 'linux', architecture: 'amd64'})
  await writeIndexJson(out, [{mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.manifestDigest, size, ref}])
  return image
}

/** The base layer every image of a multi-platform index shares. */
export const SHARED_BASE_FILES: Record<string, string> = {'etc/os-release': 'NAME="reg test base"\n', 'base.txt': 'shared base layer\n'.repeat(64)}

/**
 * Write an OCI layout with one multi-platform image index under `ref`: one tiny image per
 * platform, each with the same base layer and a layer of its own.
 */
export async function writeTinyIndexLayout(out: string, platforms: string[], ref: string): Promise<{indexDigest: string; images: TinyImage[]}> {
  const put = await startLayout(out)
  const manifests = []
  const images: TinyImage[] = []
  for (const text of platforms) {
    const [os, architecture, variant] = text.split('/')
    const platform = {os, architecture, ...(variant ? {variant} : {})}
    const {size, ...image} = await writeImage(put, [SHARED_BASE_FILES, {'platform.txt': `${text}\n`}], platform)
    images.push(image)
    manifests.push({mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.manifestDigest, size, platform})
  }
  const index = await put(Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests})))
  await writeIndexJson(out, [{mediaType: 'application/vnd.oci.image.index.v1+json', ...index, ref}])
  return {indexDigest: index.digest, images}
}
