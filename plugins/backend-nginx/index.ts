import {execFile} from 'node:child_process'
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {Flags} from '@oclif/core'
import {parseCorsOrigin} from '../../src/core/cors.js'
import {errnoCode, RegError} from '../../src/core/errors.js'
import {replaceFileAtomically} from '../../src/publish/local-files.js'
import {type HostConfigFile, LocalHostBackend} from '../../src/publish/local-host.js'
import {ERROR_DOCUMENTS, ERRORS_DIR, STORE_DIR, staticStorageKey, type TagRoute, tagRoutes} from '../../src/publish/static-host.js'
import {offloadRedirects} from '../../src/publish/offload.js'
import type {RegistryObject} from '../../src/tree/model.js'
import type {RegistryTree} from '../../src/tree/registry-tree.js'
import {defineBackend} from '../plugin.js'
import {deployAccessPolicy, installHtpasswd, privateOnlyDigests} from '../../src/config/access.js'
import {PAGE_ROOTS, ROOT_PAGE, ROOT_PAGE_STORED} from '../../src/page/documents.js'
import {nginxAccessMaps, nginxAccessServer, nginxMapsPieces, nginxServer, nginxStandalone} from './config.js'

/** The tags' file: one line a tag, written piece by piece (never one string: 100,000 tags are tens of megabytes). */
const MAPS_FILE = 'registry-maps.conf'
/** The configuration files nginx reads when it starts or reloads (not per request, unlike the objects). */
const LOADED_CONFIG = [MAPS_FILE, 'registry.conf', 'nginx.conf']

/** The configuration of a deploy: the tags' file in pieces, the others whole (each a few kilobytes). */
interface NginxConfig {
  maps: Iterable<string>
  files: HostConfigFile[]
}

/** The tag routes of `routed`, made one at a time on each pass (none kept: the maps read them three times). */
function lazyTagRoutes(routed: readonly RegistryObject[]): Iterable<TagRoute> {
  return {[Symbol.iterator]: () => tagRoutes(routed)}
}

/** The sha256 of a file's bytes, read as a stream, or undefined when there is none. */
async function fileDigest(file: string): Promise<string | undefined> {
  const hash = createHash('sha256')
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined
    throw error
  }
  return hash.digest('hex')
}

/** The command that makes the standalone nginx of `target` read its configuration again. */
export function nginxReloadCommand(target: string): string[] {
  return ['nginx', '-p', target, '-c', 'nginx.conf', '-s', 'reload']
}

function shellLine(words: string[]): string {
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", "'\\''")}'`)).join(' ')
}

/**
 * The nginx backend: a local host whose configuration nginx reads only when it (re)loads: a deploy
 * that changes it says so, and reloads the standalone nginx itself with `--reload`.
 */
class NginxBackend extends LocalHostBackend {
  private changed = false
  private firstDeploy = false
  notes: string[] = []

  constructor(target: string, private readonly reload: boolean, config: (tree: RegistryTree, routed: readonly RegistryObject[]) => Promise<NginxConfig>) {
    super('nginx', target, {serverSideCopy: true, caseSensitiveTags: true, offloadRedirects: {how: 'a 302 in registry.conf', by: 'configuration'}}, {
      roots: ['v2', `${STORE_DIR}/blobs`, `${STORE_DIR}/manifests`, ...PAGE_ROOTS],
      storageKeyOf: (object) => (object.class === 'page' && object.path === ROOT_PAGE ? ROOT_PAGE_STORED : staticStorageKey(object)),
      configFiles: async (tree, routed) => {
        const {maps, files} = await config(tree, routed)
        // Before the server-level file that reads its variables.
        await this.writeMaps(maps)
        await this.compare(files)
        return files
      },
    })
  }

  /** The tags' file, replaced atomically, compared with the one it replaces by digest (neither is read whole). */
  private async writeMaps(pieces: Iterable<string>): Promise<void> {
    const file = path.join(this.localDirectory, MAPS_FILE)
    const before = await fileDigest(file)
    const hash = createHash('sha256')
    function* hashed(): Generator<string> {
      for (const piece of pieces) {
        hash.update(piece)
        yield piece
      }
    }
    await replaceFileAtomically(file, (temp) => writeFile(temp, hashed()))
    if (before === undefined) this.firstDeploy = true
    else if (before !== hash.digest('hex')) this.changed = true
  }

  /** Before the new files replace them: does nginx, if it runs, serve an older configuration now? */
  private async compare(files: HostConfigFile[]): Promise<void> {
    for (const file of files.filter((f) => LOADED_CONFIG.includes(f.path))) {
      let before: string | undefined
      try {
        before = await readFile(path.join(this.localDirectory, file.path), 'utf8')
      } catch (error) {
        if (errnoCode(error) !== 'ENOENT') throw error
      }
      if (before === undefined) this.firstDeploy = true
      else if (before !== file.content) this.changed = true
    }
  }

  override async finish(): Promise<undefined> {
    await super.finish()
    const command = nginxReloadCommand(this.localDirectory)
    if (this.reload) {
      // Always: an earlier deploy without --reload may have changed what nginx has not read yet.
      await runReload(command)
      this.notes.push(`nginx: reloaded (${shellLine(command)}): it serves this deploy's tags`)
    } else if (this.firstDeploy) {
      this.notes.push(`nginx: start it with: ${shellLine(command.slice(0, 5))}  (or include registry-maps.conf at http level and registry.conf in a server block of your nginx)`)
    } else if (this.changed) {
      this.notes.push(`nginx: the tags changed: nginx serves the old ones until it reloads: ${shellLine(command)}  (or deploy with --reload; nginx -s reload where your own nginx includes registry.conf)`)
    }
    return undefined
  }
}

function runReload(command: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(command[0], command.slice(1), {timeout: 60_000}, (error, _stdout, stderr) => {
      if (!error) return resolve()
      // nginx's last line, without its timestamp and process prefix
      const why = errnoCode(error) === 'ENOENT' ? 'nginx is not installed (not on PATH)' : (stderr.trim().split('\n').slice(-1)[0] ?? '').replace(/^\S+ \S+ \[\w+\] \d+#\d+: /, '') || error.message
      reject(new RegError(`--reload: ${shellLine(command)} failed: ${why}`, `the deploy is complete; start nginx with ${shellLine(command.slice(0, 5))}, or reload the nginx that serves it yourself`))
    })
  })
}

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
    reload: Flags.boolean({description: 'after the deploy, reload the nginx started with this nginx.conf (nginx -p DEST -c nginx.conf -s reload), so that it serves the tags as deployed'}),
  },
  uses: ['dest', 'cors', 'auth-file', 'private'],
  paths: ['dest', 'auth-file'],
  async create(flags) {
    if (typeof flags.dest !== 'string') throw new RegError('--backend nginx needs --dest DIR', 'e.g. reg deploy ./dist --backend nginx --dest /srv/registry')
    const target = path.resolve(flags.dest)
    const access = await deployAccessPolicy(flags)
    if (flags.listen !== undefined) checkListen(flags.listen)
    const settings = {
      serverRoot: typeof flags['server-root'] === 'string' ? flags['server-root'] : target,
      listen: String(flags.listen ?? '80'),
      serverName: String(flags['server-name'] ?? '_'),
      cors: parseCorsOrigin(flags.cors),
    }
    return new NginxBackend(target, Boolean(flags.reload), async (tree, routed) => {
      // The users go beside the served directory before the configuration that reads them.
      const htpasswd = access ? await installHtpasswd(access, target) : undefined
      return {
        maps: nginxMapsPieces(lazyTagRoutes(routed), access && nginxAccessMaps(privateOnlyDigests(access, tree.index.objects)), offloadRedirects(routed)),
        files: [
          ...ERROR_DOCUMENTS.map((doc) => ({path: `${ERRORS_DIR}/${doc.file}`, content: doc.body})),
          {path: 'registry.conf', content: nginxServer(tree.index, settings, access && htpasswd ? nginxAccessServer(access, htpasswd) : '')},
          {path: 'nginx.conf', content: nginxStandalone(settings)},
        ],
      }
    })
  },
})
