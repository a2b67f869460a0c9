import {Flags} from '@oclif/core'
import {BACKENDS} from '../../plugins/index.js'

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
}

/** Flags of `reg deploy` a config file's target may set too (the rest a run decides, or is a secret). */
export const TARGET_SETTINGS = ['name-prefix', 'prune', 'prune-grace', 'concurrency', 'retries'] as const

/** Every flag of `reg deploy`, for the command, the Action and the config schema. */
export const DEPLOY_FLAGS = BACKENDS.flagsBeside(OWN_FLAGS)
