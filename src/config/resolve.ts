import {BACKENDS} from '../../plugins/index.js'
import {RegError} from '../core/errors.js'
import type {Backend} from '../publish/backend.js'
import type {DeployOptions} from '../publish/deploy.js'
import {parseSourceSpec, type SourceSpec} from '../sources/index.js'
import type {BuildOptions} from '../tree/builder.js'
import {parseDuration} from './duration.js'
import {DEFAULT_PRUNE_GRACE} from './deploy-flags.js'
import {configSources, loadConfig, resolveFromConfig, selectTarget} from './config-file.js'
import {parsePublicUrl} from './deploy-flags.js'

/**
 * Flags and the config file, merged the same way for `reg build`/`reg deploy` and the GitHub
 * Action: flags given on the command line win, then the config file, then the defaults.
 */
export interface BuildFlags {
  config?: string
  out?: string
  prefix?: string
  clean?: boolean
  'tag-max-age'?: number
  creds?: string
  platform?: string
  'plain-http'?: boolean
  insecure?: boolean
  'with-referrers'?: boolean
  page?: boolean
  'public-url'?: string
}

export async function resolveBuild(sourceArgs: readonly string[], flags: BuildFlags): Promise<{specs: SourceSpec[]; options: BuildOptions & {out: string}}> {
  const loaded = await loadConfig(flags.config)
  const config = loaded?.config ?? {}
  const sources = sourceArgs.length > 0 ? [...sourceArgs] : loaded ? configSources(loaded) : []
  if (sources.length === 0) throw new RegError('reg build needs a SOURCE', loaded ? `${loaded.file} has no sources` : 'e.g. reg build oci:./layout=team/app:1, or list sources in reg.config.json / reg.config.yaml')
  return {
    specs: sources.map((a) => parseSourceSpec(a)),
    options: {
      out: flags.out ?? (loaded && config.out ? resolveFromConfig(loaded, config.out) : './dist'),
      prefix: flags.prefix ?? config.prefix, clean: flags.clean, tagMaxAge: flags['tag-max-age'] ?? config.tagMaxAge,
      withReferrers: flags['with-referrers'] ?? config.withReferrers,
      page: flags.page ?? config.page, publicUrl: flags['public-url'] ?? config.publicUrl,
      sources: {creds: flags.creds, platform: flags.platform ?? config.platform, plainHttp: flags['plain-http'], insecure: flags.insecure},
    },
  }
}

export interface ResolvedDeploy {
  dir: string
  backend: Backend
  /** the config target used, if any */
  target?: string
  /** the deploy's settings, from the merged flags (the command adds its progress observer and Ctrl-C) */
  options: DeployOptions
  /** the registry URL `reg verify` checks after the deploy (--verify, or `verify:` of the target) */
  verify?: string
}

/**
 * `given`: the parsed flags (defaults applied); `explicit`: the names of flags the user typed. A
 * deploy target's settings stand in for flags not typed; `--backend` without `--target` ignores
 * targets. The chosen backend's path flags are relative to the config file.
 */
export async function resolveDeploy(dirArg: string | undefined, given: Record<string, unknown>, explicit: ReadonlySet<string>): Promise<ResolvedDeploy> {
  const loaded = await loadConfig(given.config as string | undefined)
  const flags: Record<string, unknown> = {...given}
  const selected = explicit.has('backend') && !explicit.has('target') ? undefined : selectTarget(loaded, given.target as string | undefined)
  for (const [name, value] of Object.entries(selected?.target ?? {})) if (!explicit.has(name)) flags[name] = value
  const dir = dirArg ?? (loaded?.config.out ? resolveFromConfig(loaded, loaded.config.out) : './dist')
  if (typeof flags.backend !== 'string') throw new RegError('reg deploy needs --backend or a deploy target', 'pass --backend NAME, or define targets in reg.config.json / reg.config.yaml and pass --target NAME')
  const plugin = BACKENDS.plugin(flags.backend)
  // Whether the backend was typed or came from a target: a typed flag it does not read would be ignored.
  BACKENDS.refuseForeignFlags(flags.backend, explicit)
  for (const name of [...plugin.paths ?? [], 'containerd-hosts']) {
    const value = selected?.target[name]
    if (loaded && typeof value === 'string' && !explicit.has(name)) flags[name] = resolveFromConfig(loaded, value)
  }
  const options: DeployOptions = {
    namePrefix: flags['name-prefix'] as string | undefined, dryRun: Boolean(flags['dry-run']), prune: Boolean(flags.prune),
    pruneGraceMs: parseDuration(String(flags['prune-grace'] ?? DEFAULT_PRUNE_GRACE), '--prune-grace'),
    concurrency: flags.concurrency as number | undefined, retries: flags.retries as number | undefined,
    offload: flags.offload as string[] | undefined, offloadClients: flags['offload-clients'] as string[] | undefined,
  }
  const publicUrl = (flags['public-url'] as string | undefined) ?? loaded?.config.url
  if (publicUrl !== undefined) options.publicUrl = parsePublicUrl(publicUrl).origin
  if (typeof flags['mirror-of'] === 'string' || typeof flags['containerd-hosts'] === 'string') {
    options.containerdMirror = {upstream: (flags['mirror-of'] as string | undefined) ?? 'docker.io', hostsDir: flags['containerd-hosts'] as string | undefined}
  }
  return {dir, backend: await plugin.create(flags), target: selected?.name, options, verify: flags.verify as string | undefined}
}
