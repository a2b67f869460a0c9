import path from 'node:path'
import {Flags} from '@oclif/core'
import {RegError} from '../../src/core/errors.js'
import type {Backend, BackendCapabilities, RemoteState} from '../../src/publish/backend.js'
import {LocalFileTarget} from '../../src/publish/local-files.js'
import type {BackendPlugin} from '../../src/publish/plugin.js'
import type {RegistryObject} from '../../src/tree/model.js'

/**
 * Plain directories, ready for rsync or any static host: every URL is a file, each blob stored
 * once (the other repositories' paths are hardlinks). A directory URL (`/v2/`) is its `index.json`.
 */
class DirBackend implements Backend {
  readonly name = 'dir'
  readonly capabilities: BackendCapabilities = {customHeaders: false, rewrites: false, redirects: false, basicAuth: false, serverSideCopy: true}
  private readonly files: LocalFileTarget

  constructor(readonly location: string) {
    this.files = new LocalFileTarget(location, ['v2'])
  }

  storageKeyOf(object: RegistryObject): string {
    return object.path.endsWith('/') ? `${object.path}index.json` : object.path
  }

  describeRemote(): Promise<RemoteState> {
    return this.files.describe()
  }

  putObject(key: string, object: RegistryObject, file: string): Promise<void> {
    return this.files.put(key, object, file)
  }

  copyObject(fromKey: string, key: string, object: RegistryObject): Promise<void> {
    return this.files.copy(fromKey, key, object)
  }

  deleteObject(key: string): Promise<void> {
    return this.files.delete(key)
  }

  async writeHostConfig(): Promise<void> {
    await this.files.saveState()
  }
}

export const dirBackend: BackendPlugin = {
  name: 'dir',
  summary: 'plain directories (each blob once, hardlinked per repository), for rsync or any static host',
  flags: {
    target: Flags.string({description: '[dir, nginx, apache] directory to write the files to serve into', helpGroup: 'FILE BACKENDS'}),
  },
  create(flags) {
    if (typeof flags.target !== 'string') throw new RegError('--backend dir needs --target OUT', 'e.g. reg deploy ./dist --backend dir --target ./public')
    return new DirBackend(path.resolve(flags.target))
  },
}
