import {randomBytes} from 'node:crypto'
import {copyFile, link, mkdir, readdir, readFile, rename, rmdir, stat, unlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {errnoCode, RegError} from '../core/errors.js'
import type {RegistryObject} from '../tree/model.js'
import type {RemoteObject, RemoteState} from './backend.js'

/** Where a URL path is stored as a file: a directory URL (`v2/`) becomes its `index.json`. */
export function fileKeyOf(urlPath: string): string {
  return urlPath.endsWith('/') ? `${urlPath}index.json` : urlPath
}

export const LOCAL_STATE_FILE = '.reg-state.json'

/**
 * Deploying into a local directory, shared by every file-serving backend (dir, nginx, apache):
 * files written under a temporary name and renamed into place (a running server never sees a
 * partial file), blobs hardlinked from the tree when on the same file system, further copies
 * hardlinked to the first, and a small state file of digests so re-runs skip what is there.
 */
export class LocalFileTarget {
  /** digests of the mutable files we wrote, by URL path */
  private state = new Map<string, string>()

  constructor(readonly root: string, private readonly urlRoot = 'v2') {}

  private fileOf(urlPath: string): string {
    const file = path.join(this.root, fileKeyOf(urlPath))
    if (!file.startsWith(this.root + path.sep)) throw new RegError(`refusing to write outside ${this.root}: ${urlPath}`)
    return file
  }

  async describe(): Promise<RemoteState> {
    try {
      const saved = JSON.parse(await readFile(path.join(this.root, LOCAL_STATE_FILE), 'utf8')) as {objects?: Record<string, string>}
      this.state = new Map(Object.entries(saved.objects ?? {}))
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw new RegError(`${path.join(this.root, LOCAL_STATE_FILE)} is corrupt`, 'delete it: the next deploy rewrites what it cannot verify')
    }
    const objects = new Map<string, RemoteObject>()
    const walk = async (dir: string, prefix: string): Promise<void> => {
      let entries
      try {
        entries = await readdir(dir, {withFileTypes: true})
      } catch (error) {
        if (errnoCode(error) === 'ENOENT') return
        throw error
      }
      for (const entry of entries) {
        if (entry.name.startsWith('.')) continue
        const full = path.join(dir, entry.name)
        const urlPath = `${prefix}${entry.name}`
        if (entry.isDirectory()) await walk(full, `${urlPath}/`)
        else if (entry.isFile()) {
          const key = urlPath.endsWith('/index.json') ? urlPath.slice(0, -'index.json'.length) : urlPath
          objects.set(key, {path: key, size: (await stat(full)).size, digest: this.state.get(key)})
        }
      }
    }
    await walk(path.join(this.root, this.urlRoot), `${this.urlRoot}/`)
    return {objects}
  }

  private async placeFile(file: string, write: (temp: string) => Promise<void>): Promise<void> {
    await mkdir(path.dirname(file), {recursive: true})
    const temp = path.join(path.dirname(file), `.tmp-${randomBytes(6).toString('hex')}`)
    try {
      await write(temp)
      await rename(temp, file)
    } catch (error) {
      await unlink(temp).catch(() => undefined)
      throw error
    }
  }

  /** Hardlink (same file system) or copy `source` to the object's file. */
  async put(object: RegistryObject, source: string): Promise<void> {
    await this.placeFile(this.fileOf(object.path), async (temp) => {
      try {
        await link(source, temp)
      } catch (error) {
        if (errnoCode(error) !== 'EXDEV' && errnoCode(error) !== 'EPERM') throw error
        await copyFile(source, temp)
      }
    })
    this.state.set(object.path, object.digest)
  }

  /** Another URL for bytes already deployed: a hardlink, so the bytes are stored once. */
  async copy(fromPath: string, object: RegistryObject): Promise<void> {
    await this.put(object, this.fileOf(fromPath))
  }

  async delete(urlPath: string): Promise<void> {
    const file = this.fileOf(urlPath)
    await unlink(file).catch((error: unknown) => {
      if (errnoCode(error) !== 'ENOENT') throw error
    })
    this.state.delete(urlPath)
    // Remove directories left empty, up to the registry root.
    let dir = path.dirname(file)
    const stop = path.join(this.root, this.urlRoot)
    while (dir.startsWith(stop + path.sep)) {
      try {
        await rmdir(dir)
      } catch {
        break
      }
      dir = path.dirname(dir)
    }
  }

  /** Persist the digests of what is deployed, for the next run's plan. */
  async saveState(): Promise<void> {
    const objects = Object.fromEntries([...this.state.entries()].sort(([a], [b]) => (a < b ? -1 : 1)))
    await this.placeFile(path.join(this.root, LOCAL_STATE_FILE), (temp) => writeFile(temp, JSON.stringify({objects})))
  }
}
