import {createReadStream, createWriteStream} from 'node:fs'
import {mkdir, open} from 'node:fs/promises'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {createGunzip} from 'node:zlib'
import * as tar from 'tar-stream'
import {errnoCode, RegError} from '../core/errors.js'
import {quoted} from '../core/quote.js'
import {MAX_GRAPH_NODES, MAX_MANIFEST_BYTES, readBounded, TooLargeError} from '../core/limits.js'

/** Symlinks followed in one lookup before it counts as a loop: Linux's MAXSYMLINKS. */
const MAX_LINK_HOPS = 40
/** Longest entry name or link target: the kernel's PATH_MAX, which no unpacked archive could exceed either. */
const PATH_MAX = 4096
/** Entries one archive may hold: `docker save` writes about four per layer (directory, VERSION, json, layer.tar). */
const MAX_ARCHIVE_ENTRIES = 4 * MAX_GRAPH_NODES
/** Small JSON files (manifests, configs, index.json) kept in memory by the first read, so that metadata costs no second read. */
const RETAINED_BYTES = 16 * MAX_MANIFEST_BYTES

const REFUSED_HINT = 'the archive is malicious or corrupt; reg refuses paths and links leaving it'
const CORRUPT_HINT = 'the archive is truncated or corrupt; export it again'

/** A regular file of the archive: where it is in the tar, never a path on disk. */
export interface ArchiveFile {
  kind: 'file'
  /** position of its entry in the tar, counting from 0 */
  ordinal: number
  /** its entry name, for messages */
  name: string
  size: number
  /** starts with the gzip magic (1f 8b) */
  gzip: boolean
  /** its bytes, when a read kept them */
  body?: Buffer
}

interface ArchiveDir {
  kind: 'dir'
  children: Map<string, ArchiveNode>
}

interface ArchiveLink {
  kind: 'symlink'
  name: string
  target: string
}

type ArchiveNode = ArchiveFile | ArchiveDir | ArchiveLink

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

/** Does `name` (a path inside the archive, posix) stay inside it, read as text? */
function staysInside(name: string): boolean {
  const normalized = path.posix.normalize(name)
  return !name.startsWith('/') && !path.isAbsolute(name) && normalized !== '..' && !normalized.startsWith('../') && !name.split('/').includes('..')
}

/** The path's components, without empty ones and `.`. */
function components(name: string): string[] {
  return name.split('/').filter((part) => part !== '' && part !== '.')
}

/**
 * A tar archive (optionally gzip-compressed) read as a namespace of its own, never unpacked as it is.
 * A first read records every entry (directories, files, symlinks, hard links) in memory; paths are
 * then resolved against that namespace the way the kernel would resolve them on disk, following the
 * archive's own symlinks, and refused when they climb above its root or loop. Nothing the archive
 * names is ever created on disk: files are read straight from the tar stream, into memory or into
 * scratch files named by their position in the tar. So no link can point a write outside scratch,
 * and a plain tar never costs more disk than its own size.
 */
export class TarArchive {
  private readonly root: ArchiveDir = {kind: 'dir', children: new Map()}
  /** every regular file by entry position (hard links share one) */
  private readonly files = new Map<number, ArchiveFile>()

  private constructor(readonly file: string, readonly label: string, private readonly gzip: boolean) {}

  /** Read the archive once: record its entries, keep its small JSON files. */
  static async scan(file: string, label: string): Promise<TarArchive> {
    let gzip: boolean
    try {
      gzip = await isGzipFile(file)
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') throw new RegError(`${label}: file ${file} does not exist`, 'check the path')
      if (errnoCode(error) === 'EISDIR') throw new RegError(`${label}: ${file} is a directory, not an archive`, 'use the oci: or dir: transport for directories')
      throw error
    }
    const archive = new TarArchive(file, label, gzip)
    let retained = 0
    await archive.read(async (header, stream, ordinal) => {
      if (ordinal >= MAX_ARCHIVE_ENTRIES) throw new RegError(`${label}: the archive has more than ${MAX_ARCHIVE_ENTRIES} entries`, 'an image archive holds a few entries per layer; this one is malicious or not an image')
      const file = archive.add(header, ordinal)
      if (!file) return 'next'
      const keep = file.size <= MAX_MANIFEST_BYTES && retained + file.size <= RETAINED_BYTES
      const chunks: Buffer[] = []
      let head = Buffer.alloc(0)
      let json = false
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        if (head.length < 2) {
          head = Buffer.concat([head, chunk]).subarray(0, 2)
          json = keep && (head[0] === 0x7b || head[0] === 0x5b)
        }
        if (json) chunks.push(chunk)
      }
      file.gzip = head.length === 2 && head[0] === 0x1f && head[1] === 0x8b
      if (json) {
        file.body = Buffer.concat(chunks)
        retained += file.size
      }
      return 'next'
    })
    return archive
  }

  /** Record one entry in the namespace; the regular file it adds, if any. */
  private add(header: tar.Header, ordinal: number): ArchiveFile | undefined {
    const name = header.name
    if (Buffer.byteLength(name) > PATH_MAX || Buffer.byteLength(header.linkname ?? '') > PATH_MAX) {
      throw new RegError(`${this.label}: archive entry ${ordinal} has a name or link target longer than ${PATH_MAX} bytes`, REFUSED_HINT)
    }
    if (!staysInside(name)) throw new RegError(`${this.label}: archive entry ${quoted(name)} points outside the archive`, REFUSED_HINT)
    const parts = components(name)
    const leaf = parts.pop()
    if (leaf === undefined) return undefined
    const parent = this.resolve(parts, name, {create: true, followLast: true})
    if (parent.node?.kind !== 'dir') throw new RegError(`${this.label}: archive entry ${quoted(name)} is inside something that is not a directory`, REFUSED_HINT)
    const existing = parent.node.children.get(leaf)
    const twice = () => new RegError(`${this.label}: archive entry ${quoted(name)} appears twice`, 'the archive is malicious or corrupt')
    let node: ArchiveNode
    switch (header.type) {
      case 'directory': {
        if (existing?.kind === 'dir') return undefined
        node = {kind: 'dir', children: new Map()}
        break
      }
      case 'file':
      case 'contiguous-file': {
        node = {kind: 'file', ordinal, name, size: header.size ?? 0, gzip: false}
        break
      }
      case 'symlink': {
        const target = header.linkname ?? ''
        // Relative to the link's own (already resolved) directory; a later lookup checks it again through other links.
        if (target.startsWith('/') || !staysInside(path.posix.join(...parent.names, target))) {
          throw new RegError(`${this.label}: archive entry ${quoted(name)} is a symlink to ${quoted(target)}, outside the archive`, REFUSED_HINT)
        }
        node = {kind: 'symlink', name, target}
        break
      }
      case 'link': {
        // A hard link names an earlier entry, from the archive's root.
        const target = header.linkname ?? ''
        if (!staysInside(target)) throw new RegError(`${this.label}: archive entry ${quoted(name)} is a link to ${quoted(target)}, outside the archive`, REFUSED_HINT)
        // As link(2) does, the last component is not followed: a hard link to a symlink is that symlink,
        // whose target is then read from the hard link's own directory (and checked again there).
        const linked = this.resolve(components(target), name, {create: false, followLast: false}).node
        if (linked?.kind === 'symlink') {
          if (!staysInside(path.posix.join(...parent.names, linked.target))) {
            throw new RegError(`${this.label}: archive entry ${quoted(name)} is a hard link to a symlink leading outside the archive from there`, REFUSED_HINT)
          }
          node = {kind: 'symlink', name, target: linked.target}
          break
        }
        if (linked?.kind !== 'file') throw new RegError(`${this.label}: archive entry ${quoted(name)} is a hard link to ${quoted(target)}, which is not a file earlier in the archive`, REFUSED_HINT)
        node = linked
        break
      }
      default:
        // Devices, FIFOs: nothing an image archive needs.
        return undefined
    }
    if (existing) throw twice()
    parent.node.children.set(leaf, node)
    if (node.kind === 'file' && node.ordinal === ordinal) {
      this.files.set(ordinal, node)
      return node
    }
    return undefined
  }

  /**
   * Resolve `parts` from the archive's root as the kernel resolves a path: a symlink is replaced by its
   * target (relative to the directory holding it), `..` goes up from where a link really led. Climbing
   * above the root, or more than MAX_LINK_HOPS links, is refused. `create` makes missing directories.
   */
  private resolve(parts: string[], entry: string, options: {create: boolean; followLast: boolean}): {node?: ArchiveNode; names: string[]} {
    const pending = [...parts].reverse()
    const dirs: ArchiveDir[] = [this.root]
    const names: string[] = []
    let hops = 0
    while (pending.length > 0) {
      const part = pending.pop() as string
      if (part === '..') {
        if (names.length === 0) throw new RegError(`${this.label}: ${quoted(entry)} leads outside the archive through its links`, REFUSED_HINT)
        dirs.pop()
        names.pop()
        continue
      }
      const dir = dirs[dirs.length - 1]
      let node = dir.children.get(part)
      const last = pending.length === 0
      if (node?.kind === 'symlink' && (!last || options.followLast)) {
        if (++hops > MAX_LINK_HOPS) throw new RegError(`${this.label}: ${quoted(entry)} goes through more than ${MAX_LINK_HOPS} links`, REFUSED_HINT)
        if (node.target.startsWith('/')) throw new RegError(`${this.label}: ${quoted(entry)} leads outside the archive through its links`, REFUSED_HINT)
        pending.push(...components(node.target).reverse())
        continue
      }
      // Creating: every part is a directory to be. Looking up: the last part is what was asked for.
      if (last && !options.create) return {node, names: [...names, part]}
      if (!node) {
        if (!options.create) return {names}
        node = {kind: 'dir', children: new Map()}
        dir.children.set(part, node)
      }
      if (node.kind !== 'dir') throw new RegError(`${this.label}: ${quoted(entry)}: ${quoted(part)} is not a directory in the archive`, REFUSED_HINT)
      dirs.push(node)
      names.push(part)
    }
    return {node: dirs[dirs.length - 1], names}
  }

  /** The regular file at `relative` (links followed inside the archive), or undefined when there is none. */
  fileAt(relative: string, what: string): ArchiveFile | undefined {
    if (Buffer.byteLength(relative) > PATH_MAX) throw new RegError(`${this.label}: ${what} has a name longer than ${PATH_MAX} bytes`, 'the archive is corrupt; export it again')
    if (!staysInside(relative)) throw new RegError(`${this.label}: ${what} (${quoted(relative)}) points outside the archive`, REFUSED_HINT)
    const {node} = this.resolve(components(relative), relative, {create: false, followLast: true})
    if (node === undefined) return undefined
    if (node.kind !== 'file') throw new RegError(`${this.label}: ${what} (${quoted(relative)}) is not a file in the archive`, 'the archive is corrupt; export it again')
    return node
  }

  /** The whole file at `relative`, at most `limit` bytes; undefined when missing. */
  async readFile(relative: string, limit: number, what: string): Promise<Buffer | undefined> {
    const file = this.fileAt(relative, what)
    if (!file) return undefined
    await this.load([file], limit, what)
    return file.body
  }

  /** Bring the bodies of `files` into memory, in one read of the archive; each at most `limit` bytes. */
  async load(files: ArchiveFile[], limit: number, what: string): Promise<void> {
    for (const file of files) if (file.size > limit) throw new TooLargeError(`${this.label}: ${what} (${file.name})`, limit)
    const wanted = new Map(files.filter((f) => !f.body).map((f) => [f.ordinal, f]))
    await this.each(wanted, async (file, stream) => {
      file.body = await readBounded(stream, limit, `${this.label}: ${what} (${file.name})`)
    })
  }

  /** Copy each of `files` to `dir/<entry position>`, in one read of the archive; the paths by entry position. */
  async extract(files: ArchiveFile[], dir: string): Promise<Map<number, string>> {
    await mkdir(dir, {recursive: true})
    const paths = new Map<number, string>()
    await this.each(new Map(files.map((f) => [f.ordinal, f])), async (file, stream) => {
      const out = path.join(dir, String(file.ordinal))
      await pipeline(stream, createWriteStream(out, {flags: 'wx'}))
      paths.set(file.ordinal, out)
    })
    return paths
  }

  /**
   * One read of the archive, handing the content of each wanted file to `use` as it streams by;
   * the read stops as soon as the last wanted file is done.
   */
  async each(wanted: Map<number, ArchiveFile>, use: (file: ArchiveFile, stream: Readable) => Promise<void>): Promise<void> {
    let left = wanted.size
    if (left === 0) return
    await this.read(async (header, stream, ordinal) => {
      const file = wanted.get(ordinal)
      if (!file) return 'next'
      if (header.name !== file.name || (header.size ?? 0) !== file.size) {
        throw new RegError(`${this.label}: the archive changed while reg was reading it`, 'do not modify the archive during a build')
      }
      await use(file, stream as Readable)
      return --left === 0 ? 'stop' : 'next'
    })
    if (left > 0) throw new RegError(`${this.label}: the archive changed while reg was reading it`, 'do not modify the archive during a build')
  }

  /** Stream the tar once, entry by entry; `visit` consumes the entry (or not) and says whether to go on. */
  private read(visit: (header: tar.Header, stream: Readable, ordinal: number) => Promise<'next' | 'stop'>): Promise<void> {
    return new Promise((resolve, reject) => {
      const input = createReadStream(this.file, {highWaterMark: 1 << 20})
      const extract = tar.extract()
      let ordinal = 0
      let settled = false
      const finish = (error?: unknown) => {
        if (settled) return
        settled = true
        input.destroy()
        extract.destroy()
        if (error === undefined) resolve()
        else if (error instanceof RegError) reject(error)
        else reject(new RegError(`${this.label}: cannot read archive ${this.file}: ${(error as Error).message}`, CORRUPT_HINT))
      }
      // The entry being visited: when it fails, its error (a digest mismatch, say) is the one to report, not the tar stream's.
      let visiting: Promise<unknown> = Promise.resolve()
      extract.on('entry', (header, stream, next) => {
        // A truncated entry errors on its stream before we may have consumed it; the extract stream reports it too.
        stream.on('error', () => undefined)
        const visited = visit(header, stream as unknown as Readable, ordinal++)
        visiting = visited.catch(() => undefined)
        visited.then((action) => {
          if (action === 'stop') {
            finish()
            return
          }
          stream.resume()
          next()
        }, (error: unknown) => {
          stream.resume()
          finish(error)
        })
      })
      const stages = this.gzip ? pipeline(input, createGunzip({chunkSize: 1 << 18}), extract) : pipeline(input, extract)
      stages.then(() => finish(), (error: unknown) => visiting.then(() => finish(error)))
    })
  }
}
