import path from 'node:path'
import {Flags} from '@oclif/core'
import {RegError} from '../../src/core/errors.js'
import {LocalHostBackend} from '../../src/publish/local-host.js'
import type {BackendPlugin} from '../../src/publish/plugin.js'

/**
 * Plain directories, ready for rsync or any static host: every URL is a file, each blob stored
 * once (the other repositories' paths are hardlinks). A directory URL (`/v2/`) is its `index.json`.
 */
export const dirBackend: BackendPlugin = {
  name: 'dir',
  summary: 'plain directories (each blob once, hardlinked per repository), for rsync or any static host',
  flags: {
    dest: Flags.string({description: '[dir, nginx, apache] directory to write the files to serve into', helpGroup: 'FILE BACKENDS'}),
  },
  create(flags) {
    if (typeof flags.dest !== 'string') throw new RegError('--backend dir needs --dest DIR', 'e.g. reg deploy ./dist --backend dir --dest ./public')
    return new LocalHostBackend('dir', path.resolve(flags.dest), {customHeaders: false, rewrites: false, redirects: false, basicAuth: false, serverSideCopy: true, caseSensitiveTags: 'destination-file-system'}, {
      roots: ['v2'],
      storageKeyOf: (object) => (object.path.endsWith('/') ? `${object.path}index.json` : object.path),
    })
  },
}
