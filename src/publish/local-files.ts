import {randomBytes} from 'node:crypto'
import {createReadStream, type Dirent} from 'node:fs'
import {copyFile, link, lstat, mkdir, readdir, rename, rmdir, stat, unlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {mapLimit} from '../core/concurrency.js'
import {errnoCode, RegError} from '../core/errors.js'
import {JsonSectionsReader, NotAnObjectError} from '../tree/json-sections.js'
import type {RegistryObject} from '../tree/model.js'
import type {RemoteObject, RemoteState} from './backend.js'

export const LOCAL_STATE_FILE = '.reg-state.json'
/** directory reads and file lookups in flight while describing what is deployed */
const DESCRIBE_CONCURRENCY = 32

/** `dir`, or its nearest existing parent: where a destination that does not exist yet will be. */
async function nearestExistingDirectory(dir: string): Promise<string> {
  let current = path.resolve(dir)
  for (;;) {
    try {
      if ((await stat(current)).isDirectory()) return current
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error
    }
    const parent = path.dirname(current)
    if (parent === current) return current
    current = parent
  }
}

/**
 * Whether files in `dir` (or where it will be created) are told apart by case: creates a probe file
 * with a lowercase name and looks for its uppercase name (macOS and Windows file systems, vfat and
 * casefolded ext4 directories find it). The probe is removed; nothing else is written.
 */
export async function isCaseSensitiveDirectory(dir: string): Promise<boolean> {
  const where = await nearestExistingDirectory(dir)
  const probe = path.join(where, `.reg-case-probe-${randomBytes(6).toString('hex')}`)
  await writeFile(probe, '', {flag: 'wx'})
  try {
    await stat(path.join(where, path.basename(probe).toUpperCase()))
    return false
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return true
    throw error
  } finally {
    await unlink(probe).catch(() => undefined)
  }
}

/**
 * The `unreferenced` map of a deploy state (key → ISO time since which the tree no longer has it):
 * a time that does not parse is dropped (its key counts from now: later, never earlier).
 */
export function parseUnreferenced(saved: unknown): Map<string, number> {
  const since = new Map<string, number>()
  if (typeof saved !== 'object' || saved === null || Array.isArray(saved)) return since
  for (const [key, value] of Object.entries(saved)) {
    const time = typeof value === 'string' ? Date.parse(value) : Number.NaN
    if (Number.isFinite(time)) since.set(key, time)
  }
  return since
}

/** Objects at content-addressed keys (blobs and manifests by digest): the bytes of a key can never change. */
function contentAddressed(object: RegistryObject): boolean {
  return object.class === 'blob' || object.class === 'digest-manifest'
}

/** Hardlink `source` to `file`, or copy it where a link cannot be made (another file system). */
async function linkOrCopy(source: string, file: string): Promise<void> {
  try {
    await link(source, file)
  } catch (error) {
    if (errnoCode(error) !== 'EXDEV' && errnoCode(error) !== 'EPERM') throw error
    await copyFile(source, file)
  }
}

/**
 * Write `file` atomically: `write` fills a temporary sibling, renamed over it only when complete
 * (a running server never sees a partial or mixed file). Its directory must exist.
 */
export async function replaceFileAtomically(file: string, write: (temp: string) => Promise<void>): Promise<void> {
  const temp = path.join(path.dirname(file), `.tmp-${randomBytes(6).toString('hex')}`)
  try {
    await write(temp)
    await rename(temp, file)
  } catch (error) {
    await unlink(temp).catch(() => undefined)
    throw error
  }
}

/** Keys and their values, sorted by key, as the members of a JSON object: `"key":"value",…`. */
function* jsonMembers(entries: ReadonlyMap<string, string>): Generator<string> {
  let piece = ''
  let separator = ''
  for (const key of [...entries.keys()].sort()) {
    piece += `${separator}${JSON.stringify(key)}:${JSON.stringify(entries.get(key))}`
    separator = ','
    if (piece.length >= 1 << 16) {
      yield piece
      piece = ''
    }
  }
  if (piece !== '') yield piece
}

/**
 * The local deploy state as `saveState` wrote it, read as JSON.parse reads it, in pieces (at
 * 150,000 objects it is megabytes: never its text and a parsed copy at once). Throws what
 * JSON.parse would: a file that is no JSON, or `null`.
 */
async function readState(file: string): Promise<{objects: Map<string, string>; unreferenced: unknown}> {
  let objects = new Map<string, string>()
  let unreferenced: unknown
  const reader = new JsonSectionsReader(new Set(['objects', 'unreferenced']), {
    value(key, value) {
      if (key === 'objects') objects = new Map(Object.entries((value ?? {}) as object))
      else if (key === 'unreferenced') unreferenced = value
    },
    sectionStart(section) {
      if (section === 'objects') objects = new Map()
      else unreferenced = Object.create(null)
    },
    member(section, key, value) {
      if (section === 'objects') objects.set(key, value as string)
      else (unreferenced as Record<string, unknown>)[key] = value
    },
  })
  try {
    for await (const chunk of createReadStream(file, {highWaterMark: 1 << 20})) reader.write(chunk as Buffer)
    reader.end()
  } catch (error) {
    // JSON, but no object: read as an object without members, as JSON.parse's value would be.
    if (!(error instanceof NotAnObjectError) || error.value === null) throw error
  }
  return {objects, unreferenced}
}

/**
 * The local deploy state as JSON (`{"objects":{key:digest},"unreferenced":{key:time}}`, keys
 * sorted), in pieces: at 150,000 objects it is megabytes, never one string nor a copy of the map.
 */
function* stateJson(objects: ReadonlyMap<string, string>, unreferenced: ReadonlyMap<string, number>): Generator<string> {
  yield '{"objects":{'
  yield* jsonMembers(objects)
  yield '}'
  if (unreferenced.size > 0) {
    yield ',"unreferenced":{'
    yield* jsonMembers(new Map([...unreferenced].map(([key, since]) => [key, new Date(since).toISOString()])))
    yield '}'
  }
  yield '}'
}

/**
 * Deploying into a local directory, shared by every file-serving backend (dir, nginx, apache).
 * Keys are relative file paths. Mutable files (tags, lists, configurations) are written under a
 * temporary name and renamed into place (a running server never sees a partial or mixed file);
 * content-addressed ones are hardlinked straight to their name, which shows the whole file at once.
 * Files are hardlinked from the tree when on the same file system (else copied, under a temporary
 * name), further copies hardlinked to the first; a small state file of digests lets re-runs skip
 * what is there without re-hashing.
 */
export class LocalFileTarget {
  /** digests of the files we wrote, by key */
  private state = new Map<string, string>()
  /** deployed keys the tree no longer has, and since when (ms): kept for --prune-grace */
  private unreferenced = new Map<string, number>()
  /** each directory this run made (or found), made once: tens of thousands of files share a few thousand directories */
  private readonly directories = new Map<string, Promise<void>>()

  /** `roots`: the top-level directories of OUT that hold deployed objects (and nothing else), or single files (`index.html`). */
  constructor(readonly root: string, private readonly roots: readonly string[]) {}

  fileOf(key: string): string {
    const file = path.resolve(this.root, key)
    if (!file.startsWith(this.root + path.sep)) throw new RegError(`refusing to write outside ${this.root}: ${key}`)
    return file
  }

  async describe(): Promise<RemoteState> {
    try {
      const saved = await readState(path.join(this.root, LOCAL_STATE_FILE))
      this.state = saved.objects
      this.unreferenced = parseUnreferenced(saved.unreferenced)
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw new RegError(`${path.join(this.root, LOCAL_STATE_FILE)} is corrupt`, 'delete it: the next deploy rewrites what it cannot verify')
    }
    // Every directory is read, then every file's size looked up, each with many calls in flight: a
    // deployed tree holds tens of thousands of files, and one awaited call at a time takes seconds.
    const listings = new Map<string, Dirent[]>()
    /** roots that are files, not directories */
    const rootFiles: string[] = []
    for (let level = [...this.roots]; level.length > 0;) {
      const read = await mapLimit(level, DESCRIBE_CONCURRENCY, async (relative) => {
        try {
          return await readdir(path.join(this.root, relative), {withFileTypes: true})
        } catch (error) {
          if (errnoCode(error) === 'ENOENT') return []
          if (errnoCode(error) === 'ENOTDIR' && this.roots.includes(relative)) {
            rootFiles.push(relative)
            return []
          }
          throw error
        }
      })
      const next: string[] = []
      level.forEach((relative, i) => {
        const entries = read[i].filter((entry) => !entry.name.startsWith('.'))
        listings.set(relative, entries)
        for (const entry of entries) if (entry.isDirectory()) next.push(`${relative}/${entry.name}`)
      })
      level = next
    }
    // Files in the order of a depth-first walk, as listed.
    const collect = (relative: string): void => {
      for (const entry of listings.get(relative) ?? []) {
        const key = `${relative}/${entry.name}`
        if (entry.isDirectory()) collect(key)
        else if (entry.isFile()) keys.push(key)
      }
    }
    const keys: string[] = [...rootFiles]
    for (const root of this.roots) collect(root)
    // A name that is no longer a regular file is left out: absent, it is written again (and replaced).
    const sizes = await mapLimit(keys, DESCRIBE_CONCURRENCY, async (key) => {
      const found = await lstat(this.fileOf(key))
      return found.isFile() ? found.size : undefined
    })
    const objects = new Map<string, RemoteObject>()
    keys.forEach((key, i) => {
      const size = sizes[i]
      if (size !== undefined) objects.set(key, {key, size, digest: this.state.get(key)})
    })
    return {objects, unreferencedSince: this.unreferenced}
  }

  /** What the tree no longer has and stays deployed, since when: saved with the state. */
  recordUnreferenced(since: ReadonlyMap<string, number>): void {
    this.unreferenced = new Map(since)
  }

  private directory(dir: string): Promise<void> {
    let made = this.directories.get(dir)
    if (made === undefined) {
      made = mkdir(dir, {recursive: true}).then(() => undefined)
      // A failure is not remembered: a retried step tries again.
      made.catch(() => this.directories.delete(dir))
      this.directories.set(dir, made)
    }
    return made
  }

  /** Write a file atomically (temporary name, then rename). */
  async placeFile(file: string, write: (temp: string) => Promise<void>): Promise<void> {
    await this.directory(path.dirname(file))
    await replaceFileAtomically(file, write)
  }

  /** Hardlink (same file system) or copy `source` to the key's file. */
  async put(key: string, object: RegistryObject, source: string): Promise<void> {
    const file = this.fileOf(key)
    if (!contentAddressed(object) || !(await this.linkInPlace(file, key, object, source))) {
      await this.placeFile(file, (temp) => linkOrCopy(source, temp))
    }
    this.state.set(key, object.digest)
  }

  /**
   * A content-addressed file without a temporary name: a hardlink appears whole. False when it has to
   * be written the atomic way: a copy (no link across file systems), or a file already at the name
   * that is not known to hold these bytes (left by something else: replaced, never trusted).
   */
  private async linkInPlace(file: string, key: string, object: RegistryObject, source: string): Promise<boolean> {
    await this.directory(path.dirname(file))
    try {
      await link(source, file)
      return true
    } catch (error) {
      const code = errnoCode(error)
      if (code === 'EXDEV' || code === 'EPERM') return false
      if (code !== 'EEXIST') throw error
    }
    const [existing, wanted] = await Promise.all([lstat(file), stat(source)])
    if (!existing.isFile()) return false
    if (existing.dev === wanted.dev && existing.ino === wanted.ino) return true
    return existing.size === object.size && this.state.get(key) === object.digest
  }

  /** Another key for bytes already deployed: a hardlink, so the bytes are stored once. */
  async copy(fromKey: string, key: string, object: RegistryObject): Promise<void> {
    await this.put(key, object, this.fileOf(fromKey))
  }

  async delete(key: string): Promise<void> {
    const file = this.fileOf(key)
    await unlink(file).catch((error: unknown) => {
      if (errnoCode(error) !== 'ENOENT') throw error
    })
    this.state.delete(key)
    // Remove directories left empty, up to the top-level root they belong to.
    let dir = path.dirname(file)
    while (this.roots.some((root) => dir.startsWith(this.fileOf(root) + path.sep))) {
      try {
        await rmdir(dir)
      } catch {
        break
      }
      this.directories.delete(dir)
      dir = path.dirname(dir)
    }
  }

  /** Persist the digests of what is deployed, for the next run's plan. */
  async saveState(): Promise<void> {
    await this.placeFile(path.join(this.root, LOCAL_STATE_FILE), (temp) => writeFile(temp, stateJson(this.state, this.unreferenced)))
  }
}
