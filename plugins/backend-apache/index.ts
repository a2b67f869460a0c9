import {readdir} from 'node:fs/promises'
import path from 'node:path'
import {parseCorsOrigin} from '../../src/core/cors.js'
import {errnoCode, RegError} from '../../src/core/errors.js'
import {LocalHostBackend} from '../../src/publish/local-host.js'
import {ERROR_DOCUMENTS, ERRORS_DIR, STORE_DIR, staticStorageKey, tagRoutes} from '../../src/publish/static-host.js'
import {offloadRedirects} from '../../src/publish/offload.js'
import {defineBackend} from '../plugin.js'
import {deployAccessPolicy, installHtpasswd, privateOnlyDigests} from '../../src/config/access.js'
import {PAGE_ROOTS, ROOT_PAGE, ROOT_PAGE_STORED} from '../../src/page/documents.js'
import {apacheAccess, apacheConfigFiles} from './config.js'

/** Every `v2/<name>/manifests/.htaccess` under the target: the ones a repository that left no longer needs are removed. */
async function repositoryHtaccessFiles(target: string, dir = 'v2'): Promise<string[]> {
  let entries
  try {
    entries = await readdir(path.join(target, dir), {withFileTypes: true})
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return []
    throw error
  }
  const found: string[] = []
  for (const entry of entries) {
    const relative = `${dir}/${entry.name}`
    if (entry.isDirectory()) found.push(...await repositoryHtaccessFiles(target, relative))
    else if (entry.name === '.htaccess' && dir.endsWith('/manifests')) found.push(relative)
  }
  return found
}

/**
 * Apache with only `.htaccess` (shared hosting): the same store-once layout as nginx, routed by
 * mod_rewrite; headers by mod_headers; each repository's tags in its own small .htaccess, so a
 * request only reads the rules of its repository and a deploy is live without a reload.
 */
export const apacheBackend = defineBackend({
  name: 'apache',
  summary: 'files + .htaccess (mod_rewrite, mod_headers, mod_mime; AllowOverride FileInfo), the target is the DocumentRoot',
  flags: {},
  uses: ['dest', 'cors', 'auth-file', 'private'],
  paths: ['dest', 'auth-file'],
  async create(flags) {
    if (typeof flags.dest !== 'string') throw new RegError('--backend apache needs --dest DIR', 'e.g. reg deploy ./dist --backend apache --dest /var/www/registry (the DocumentRoot)')
    const target = path.resolve(flags.dest)
    const cors = parseCorsOrigin(flags.cors)
    const access = await deployAccessPolicy(flags)
    return new LocalHostBackend('apache', target, {serverSideCopy: true, caseSensitiveTags: true, offloadRedirects: {how: 'a RewriteRule [R=302] in .htaccess', by: 'configuration'}}, {
      roots: ['v2', `${STORE_DIR}/blobs`, `${STORE_DIR}/manifests`, ...PAGE_ROOTS],
      storageKeyOf: (object) => (object.class === 'page' && object.path === ROOT_PAGE ? ROOT_PAGE_STORED : staticStorageKey(object)),
      configFiles: async (tree, routed) => {
        // The users go beside the DocumentRoot before the .htaccess that reads them.
        const htpasswd = access ? await installHtpasswd(access, target) : undefined
        const rules = access && htpasswd ? apacheAccess(access, htpasswd, privateOnlyDigests(access, tree.index.objects)) : ''
        return [
          ...ERROR_DOCUMENTS.map((doc) => ({path: `${ERRORS_DIR}/${doc.file}`, content: doc.body})),
          ...apacheConfigFiles(tree.index, [...tagRoutes(routed)], cors, rules, offloadRedirects(routed)),
        ]
      },
      staleConfigFiles: async (current) => {
        const wanted = new Set(current.map((c) => c.path))
        return (await repositoryHtaccessFiles(target)).filter((file) => !wanted.has(file))
      },
    })
  },
})
