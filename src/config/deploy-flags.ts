import {Flags} from '@oclif/core'
import {BACKENDS} from '../../plugins/index.js'
import {OFFLOAD_CLIENT_NAMES} from '../publish/offload.js'
import {RegError} from '../core/errors.js'

/**
 * `--public-url`: where clients reach the registry, for the pull commands reg prints (and the
 * containerd mirror configuration). One definition: `reg build` uses it for its catalog page too.
 */
export const PUBLIC_URL_FLAG = Flags.string({description: 'the registry\'s public URL, https://HOST[:PORT], as clients pull from it (config: url); needed where the host cannot tell it (dir, nginx, apache, s3, r2, scaleway)'})

/** A public URL: http(s), served at the host's root (clients address a registry by host alone). */
export function parsePublicUrl(value: string): URL {
  let url: URL | undefined
  try {
    url = new URL(value)
  } catch {}
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
    throw new RegError(`--public-url ${JSON.stringify(value)} is not a registry URL`, 'give the scheme and host a client pulls from, with no path: e.g. --public-url https://registry.example.com (the registry is served at its /v2/)')
  }
  return url
}

/** how long `reg deploy --prune` keeps content a tag no longer reaches: a pull that resolved the tag before the deploy finishes */
export const DEFAULT_PRUNE_GRACE = '24h'

/** `reg deploy`'s own flags; the backends' flags are joined to them (a name in both is refused). */
const OWN_FLAGS = {
  backend: Flags.string({description: 'where to deploy (or from the --target of the config file)', options: BACKENDS.names}),
  target: Flags.string({description: 'a named deploy target of the config file (its backend and flags; flags given here override them)'}),
  config: Flags.string({description: 'config file (default: reg.config.json, reg.config.yaml or reg.config.yml in the working directory)'}),
  'name-prefix': Flags.string({description: 'serve every repository under this namespace (team/app → NS/team/app); the tree is unchanged'}),
  'dry-run': Flags.boolean({description: 'print the plan (uploads, copies, deletes, bytes) and touch nothing'}),
  prune: Flags.boolean({description: 'after publishing, delete what the tree no longer has'}),
  'prune-grace': Flags.string({description: 'with --prune, delete a blob or manifest only once it has been unreferenced this long, so pulls in flight finish (30m, 24h, 7d; 0: at once)', default: DEFAULT_PRUNE_GRACE}),
  concurrency: Flags.integer({description: 'objects in flight at once', default: 8, min: 1}),
  retries: Flags.integer({description: 'retries per object on transient errors', default: 4, min: 0}),
  json: Flags.boolean({description: 'print a JSON summary'}),
  verify: Flags.string({description: 'after the deploy, run reg verify against this URL (the registry as clients reach it): the deploy fails if a client would fail'}),
  'public-url': PUBLIC_URL_FLAG,
  'mirror-of': Flags.string({description: 'print the containerd hosts.toml that makes this registry a pull mirror of NAME (e.g. docker.io); needs the registry\'s URL (--public-url)', helpGroup: 'CONTAINERD'}),
  'containerd-hosts': Flags.string({description: 'write that hosts.toml into DIR/NAME/hosts.toml instead (containerd\'s config_path, ctr --hosts-dir; NAME from --mirror-of, default docker.io)', helpGroup: 'CONTAINERD'}),
  offload: Flags.string({description: 'serve the blobs found at this location (with the right size and digest) by a redirect there instead of uploading them: docker://HOST/NAME, https://HOST/NAME (a static registry) or a URL with {digest} or {hex}; repeatable', multiple: true}),
  'offload-clients': Flags.string({description: 'the clients that must be able to pull (default: all); a location that asks for a token is refused unless every client named can follow it', multiple: true, delimiter: ',', options: OFFLOAD_CLIENT_NAMES}),
}

/** Flags of `reg deploy` a config file's target may set too (the rest a run decides, or is a secret). */
export const TARGET_SETTINGS = ['name-prefix', 'prune', 'prune-grace', 'concurrency', 'retries', 'verify', 'public-url', 'mirror-of', 'containerd-hosts', 'offload', 'offload-clients'] as const

/** Every flag of `reg deploy`, for the command, the Action and the config schema. */
export const DEPLOY_FLAGS = BACKENDS.flagsBeside(OWN_FLAGS)
