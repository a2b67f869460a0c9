import {createReadStream, createWriteStream} from 'node:fs'
import {link, mkdir, open, symlink} from 'node:fs/promises'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {createGunzip} from 'node:zlib'
import * as tar from 'tar-stream'
import {errnoCode, RegError} from '../core/errors.js'

/** Is the file gzip-compressed (magic 1f 8b)? */
export async function isGzipFile(file: string): Promise<boolean> {
  const handle = await open(file, 'r')
  try {
    const {bytesRead, buffer} = await handle.read(Buffer.alloc(2), 0, 2, 0)
    return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b
  } finally {
    await handle.close()
  }
}

/** Does `name` (a path inside the archive, posix) stay inside it? */
function staysInside(name: string): boolean {
  const normalized = path.posix.normalize(name)
  return !name.startsWith('/') && !path.isAbsolute(name) && normalized !== '..' && !normalized.startsWith('../') && !name.split('/').includes('..')
}

/**
 * Extract a tar archive (optionally gzip-compressed) into `dest`, refusing entry names that would
 * escape it (`../`, absolute paths) and links pointing outside it. Links inside are kept: skopeo's
 * docker-archive links `<id>/layer.tar` to `../<digest>.tar`.
 */
export async function extractArchive(file: string, dest: string, label: string): Promise<void> {
  let gzip: boolean
  try {
    gzip = await isGzipFile(file)
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') throw new RegError(`${label}: file ${file} does not exist`, 'check the path')
    if (errnoCode(error) === 'EISDIR') throw new RegError(`${label}: ${file} is a directory, not an archive`, 'use the oci: or dir: transport for directories')
    throw error
  }
  await extractTarStream(createReadStream(file), dest, label, {what: file, gzip})
}

/** Extract a tar stream into `dest` with the same checks (entry names, links) as `extractArchive`. */
export async function extractTarStream(input: Readable, dest: string, label: string, options: {what?: string; gzip?: boolean} = {}): Promise<void> {
  const what = options.what ?? 'the archive'
  await mkdir(dest, {recursive: true})
  const extract = tar.extract()
  extract.on('entry', (header, stream, next) => {
    // A truncated entry errors on its stream before we may have piped it; the extract stream reports it too.
    stream.on('error', () => undefined)
    const fail = (error: Error) => {
      stream.resume()
      next(error)
    }
    const name = header.name
    if (!staysInside(name)) {
      fail(new RegError(`${label}: archive entry "${name}" points outside the archive`, 'the archive is malicious or corrupt; reg refuses path traversal'))
      return
    }
    const target = path.join(dest, path.posix.normalize(name))
    if (header.type === 'directory') {
      mkdir(target, {recursive: true}).then(() => { stream.resume(); next() }, fail)
      return
    }
    if (header.type !== 'file' && header.type !== 'contiguous-file') {
      if (header.type === 'symlink' || header.type === 'link') {
        const linkname = header.linkname ?? ''
        // A symlink is relative to its directory, a hard link to the archive root.
        const resolved = header.type === 'symlink' ? path.posix.join(path.posix.dirname(name), linkname) : linkname
        if (linkname.startsWith('/') || !staysInside(resolved)) {
          fail(new RegError(`${label}: archive entry "${name}" is a ${header.type} to "${linkname}", outside the archive`, 'the archive is malicious or corrupt; reg refuses links leaving it'))
          return
        }
        stream.resume()
        mkdir(path.dirname(target), {recursive: true})
          .then(() => (header.type === 'symlink' ? symlink(linkname, target) : link(path.join(dest, path.posix.normalize(resolved)), target)))
          .then(() => next(), fail)
        return
      }
      stream.resume()
      next()
      return
    }
    mkdir(path.dirname(target), {recursive: true})
      .then(() => pipeline(stream, createWriteStream(target, {flags: 'wx'})))
      .then(() => next(), (error: unknown) => fail(errnoCode(error) === 'EEXIST' ? new RegError(`${label}: archive entry "${name}" appears twice`) : error as Error))
  })
  try {
    await (options.gzip ? pipeline(input, createGunzip(), extract) : pipeline(input, extract))
  } catch (error) {
    if (error instanceof RegError) throw error
    throw new RegError(`${label}: cannot read archive ${what}: ${(error as Error).message}`, 'the archive is truncated or corrupt; export it again')
  }
}
