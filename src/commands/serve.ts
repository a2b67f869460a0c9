import {Args, Flags} from '@oclif/core'
import {CORS_FLAG} from '../../plugins/shared-flags.js'
import {errnoCode, RegError} from '../core/errors.js'
import {RegCommand} from '../ui/reg-command.js'
import {DEFAULT_PROXY_TTL_SECONDS, parseDuration, parseProxyFlag} from '../server/proxy.js'
import {DEFAULT_UPLOAD_TTL_SECONDS, readHtpasswd} from '../server/push.js'
import {startRegistryServer} from '../server/registry-server.js'
import {readAccessPolicy} from '../config/access.js'
import {RegistryTree} from '../tree/registry-tree.js'

export default class Serve extends RegCommand {
  static override summary = 'Serve a tree as a registry: read-only, or accepting pushes (--push), or as a pull-through proxy (--proxy)'
  static override examples = ['<%= config.bin %> serve dist -p 5000', '<%= config.bin %> serve dist --push', '<%= config.bin %> serve dist --proxy hub=https://registry-1.docker.io --proxy-ttl 5m']
  static override args = {dir: Args.string({description: 'tree directory', default: './dist'})}
  static override flags = {
    port: Flags.integer({char: 'p', description: 'port to listen on (0: any free port)', default: 5000, min: 0, max: 65535}),
    host: Flags.string({description: 'address to listen on', default: '127.0.0.1'}),
    push: Flags.boolean({description: 'accept pushes (docker push, skopeo copy, podman push) into the tree; read-only without it'}),
    'push-auth': Flags.string({description: 'htpasswd file (bcrypt, `htpasswd -B`) of the users allowed to push; reads stay anonymous', dependsOn: ['push']}),
    'allow-delete': Flags.boolean({description: 'with --push: accept DELETE of tags, and of manifests by digest', dependsOn: ['push']}),
    'upload-ttl': Flags.string({description: `with --push: unfinished uploads untouched this long are deleted (300s, 30m, 24h; default ${DEFAULT_UPLOAD_TTL_SECONDS / 3600}h)`, dependsOn: ['push']}),
    proxy: Flags.string({description: 'pull-through proxy: NAME=URL serves the upstream registry under NAME/ (e.g. hub=https://registry-1.docker.io), storing what is pulled into the tree', multiple: true}),
    cors: {...CORS_FLAG, helpGroup: undefined},
    'read-auth': Flags.string({description: 'htpasswd file (bcrypt, `htpasswd -B`) of the users who may read private repositories; the /v2/ ping then asks for credentials'}),
    private: Flags.string({description: 'with --read-auth: repositories that need a user, a glob of names (team/**; *: any characters but /, **: any); repeatable; without it, every repository', multiple: true, dependsOn: ['read-auth']}),
    'proxy-ttl': Flags.string({description: `how long a proxied tag is served before it is checked upstream again (300, 300s, 5m; default ${DEFAULT_PROXY_TTL_SECONDS / 60}m)`, dependsOn: ['proxy']}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Serve)
    try {
      const uploadTtlSeconds = flags['upload-ttl'] ? parseDuration(flags['upload-ttl']) : DEFAULT_UPLOAD_TTL_SECONDS
      if (uploadTtlSeconds < 1) throw new RegError('--upload-ttl must be at least 1s', 'uploads in progress would be deleted under their clients')
      const push = flags.push ? {users: flags['push-auth'] ? await readHtpasswd(flags['push-auth']) : undefined, allowDelete: flags['allow-delete'], uploadTtlSeconds} : undefined
      const proxy = flags.proxy ? {upstreams: flags.proxy.map(parseProxyFlag), ttlSeconds: flags['proxy-ttl'] ? parseDuration(flags['proxy-ttl']) : DEFAULT_PROXY_TTL_SECONDS, log: (line: string) => this.warn(line)} : undefined
      const readAuth = flags['read-auth'] ? {policy: await readAccessPolicy(flags['read-auth'], flags.private, '--read-auth')} : undefined
      const running = await startRegistryServer(args.dir, {host: flags.host, port: flags.port, push, proxy, cors: flags.cors, readAuth}).catch((error: unknown) => {
        if (errnoCode(error) !== 'EADDRINUSE') throw error
        // 5000, the default, is taken on macOS by AirPlay Receiver.
        throw new RegError(`port ${flags.port} on ${flags.host} is in use by another program`, `pick another port: reg serve ${args.dir} -p ${flags.port === 5001 ? 5002 : 5001} (for npm start: PORT=${flags.port === 5001 ? 5002 : 5001} npm start)`, 'EADDRINUSE')
      })
      const tree = await RegistryTree.load(args.dir)
      const hostPort = running.url.replace(/^http:\/\//, '')
      this.log(`reg serving ${args.dir} at ${running.url}/v2/${flags.push ? ' (push enabled)' : ''}`)
      if (readAuth) this.log(flags.private?.length ? `read access: a user of ${flags['read-auth']} for ${flags.private.join(', ')}; the rest is public` : `read access: every repository needs a user of ${flags['read-auth']}`)
      for (const upstream of proxy?.upstreams ?? []) this.log(`proxy: ${hostPort}/${upstream.name}/NAME:TAG pulls ${upstream.url}/NAME:TAG`)
      const [name, repo] = Object.entries(tree.index.repositories)[0] ?? []
      const tag = repo ? Object.keys(repo.tags).sort()[0] : undefined
      if (name && tag) {
        this.log(`try: skopeo inspect --tls-verify=false docker://${hostPort}/${name}:${tag}`)
        this.log(`     docker pull ${hostPort}/${name}:${tag}   (Docker allows plain HTTP to 127.0.0.1 and localhost)`)
      }
      const stop = () => {
        running.close().then(() => process.exit(0), () => process.exit(0))
      }
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
      await new Promise<void>((resolve) => running.server.once('close', () => resolve()))
    } catch (error) {
      this.fail(error)
    }
  }
}
