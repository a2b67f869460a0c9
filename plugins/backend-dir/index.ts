import path from 'node:path'
import {RegError} from '../../src/core/errors.js'
import {LocalHostBackend} from '../../src/publish/local-host.js'
import {defineBackend} from '../plugin.js'
import {PAGE_ROOTS} from '../../src/page/documents.js'

/**
 * Plain directories, ready for rsync or any static host: every URL is a file, each blob stored
 * once (the other repositories' paths are hardlinks). A directory URL (`/v2/`) is its `index.json`.
 */
export const dirBackend = defineBackend({
  name: 'dir',
  summary: 'plain directories (each blob once, hardlinked per repository), for rsync or any static host',
  flags: {},
  uses: ['dest'],
  paths: ['dest'],
  async create(flags) {
    if (typeof flags.dest !== 'string') throw new RegError('--backend dir needs --dest DIR', 'e.g. reg deploy ./dist --backend dir --dest ./public')
    return new LocalHostBackend('dir', path.resolve(flags.dest), {serverSideCopy: true, caseSensitiveTags: 'destination-file-system'}, {
      roots: ['v2', ...PAGE_ROOTS],
      storageKeyOf: (object) => (object.path.endsWith('/') ? `${object.path}index.json` : object.path),
    })
  },
})
