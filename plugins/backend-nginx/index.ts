import path from 'node:path'
import {Flags} from '@oclif/core'
import {RegError} from '../../src/core/errors.js'
import {LocalHostBackend} from '../../src/publish/local-host.js'
import {ERROR_DOCUMENTS, ERRORS_DIR, STORE_DIR, staticStorageKey, tagRoutes} from '../../src/publish/static-host.js'
import {offloadRedirects} from '../../src/publish/offload.js'
import {defineBackend} from '../plugin.js'
import {nginxMaps, nginxServer, nginxStandalone} from './config.js'

/** nginx's `listen`: PORT, ADDRESS:PORT, [IPv6]:PORT or unix:PATH; the value goes into nginx.conf as is. */
const LISTEN = /^(?:unix:\/[^\s;{}'"\\]+|(?:(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.*-]+):)?(\d{1,5}))$/

export function checkListen(listen: string): void {
  const port = LISTEN.exec(listen)?.[1]
  if (!LISTEN.test(listen) || (port !== undefined && (Number(port) < 1 || Number(port) > 65_535))) {
    throw new RegError(`--listen ${JSON.stringify(listen)} is not a port or ADDRESS:PORT`, 'e.g. --listen 8080, --listen 127.0.0.1:8080, --listen [::]:8080 or --listen unix:/run/registry.sock')
  }
}

/**
 * nginx, stock modules only: objects under `_registry/` (each blob and manifest once), a server-level
 * include of a dozen pattern locations, an http-level map routing tags, and a standalone nginx.conf.
 */
export const nginxBackend = defineBackend({
  name: 'nginx',
  summary: 'files + nginx.conf / registry.conf (stock nginx: pattern locations, tags in a map)',
  flags: {
    'server-name': Flags.string({description: 'server_name of the generated server block', default: '_'}),
    listen: Flags.string({description: 'listen address of the generated nginx.conf', default: '80'}),
    'server-root': Flags.string({description: 'root the configuration serves from (default: the target directory; any string, e.g. $registry_root)'}),
  },
  uses: ['dest'],
  paths: ['dest'],
  async create(flags) {
    if (typeof flags.dest !== 'string') throw new RegError('--backend nginx needs --dest DIR', 'e.g. reg deploy ./dist --backend nginx --dest /srv/registry')
    const target = path.resolve(flags.dest)
    if (flags.listen !== undefined) checkListen(flags.listen)
    const settings = {
      serverRoot: typeof flags['server-root'] === 'string' ? flags['server-root'] : target,
      listen: String(flags.listen ?? '80'),
      serverName: String(flags['server-name'] ?? '_'),
    }
    return new LocalHostBackend('nginx', target, {serverSideCopy: true, caseSensitiveTags: true}, {
      roots: ['v2', `${STORE_DIR}/blobs`, `${STORE_DIR}/manifests`],
      storageKeyOf: staticStorageKey,
      configFiles: (tree, routed) => [
        ...ERROR_DOCUMENTS.map((doc) => ({path: `${ERRORS_DIR}/${doc.file}`, content: doc.body})),
        {path: 'registry-maps.conf', content: nginxMaps(tagRoutes(routed), offloadRedirects(routed))},
        {path: 'registry.conf', content: nginxServer(tree.index, settings)},
        {path: 'nginx.conf', content: nginxStandalone(settings)},
      ],
    })
  },
})
