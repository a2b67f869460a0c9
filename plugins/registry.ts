import {Flags, type Interfaces} from '@oclif/core'
import {RegError} from '../src/core/errors.js'
import type {Backend} from '../src/publish/backend.js'
import type {BackendPlugin, DeploySettings, SharedFlagName} from './plugin.js'
import {SHARED_FLAGS} from './shared-flags.js'

/** A plugin of any flags: the registry only hands its flags on, by name. */
export type AnyBackendPlugin = BackendPlugin<any, any>

/** One property of a config file's deploy target, in JSON Schema. */
export type FlagSchema = {description?: string} & ({type: 'string' | 'boolean'} | {type: 'integer'; minimum?: number} | {enum: readonly string[]} | {type: 'array'; items: {type: 'string'}})

/** oclif builds every integer flag on one shared parser: that is how an integer flag is told from a string one. */
const INTEGER_PARSE = Flags.integer().parse

/** A flag's JSON Schema, read from its oclif declaration: the CLI and the config file accept the same values. */
export function flagSchema(flag: Interfaces.Flag<any>): FlagSchema {
  const description = flag.description
  if (flag.type === 'boolean') return {type: 'boolean', description}
  // a repeatable flag (--private A --private B) is a list in a config file
  if (flag.multiple) return {type: 'array', items: {type: 'string'}, description}
  if (flag.options) return {enum: [...flag.options], description}
  const {min} = flag as {min?: number}
  if (flag.parse === INTEGER_PARSE) return {type: 'integer', ...(min === undefined ? {} : {minimum: min}), description}
  return {type: 'string', description}
}

/**
 * The backends, joined: each flag name declared once (a second declaration is refused here, at
 * load), help text that says which backends read a flag, and the schema of a config target.
 */
export class BackendRegistry {
  /** every backend flag, own and shared, as `reg deploy` declares it */
  readonly flags: Interfaces.FlagInput
  /** the flags of a config file's target, by name (secrets left out) */
  readonly targetProperties: Record<string, FlagSchema>

  constructor(readonly plugins: readonly AnyBackendPlugin[]) {
    const owner = new Map<string, string>()
    const users = new Map<SharedFlagName, string[]>()
    const flags: Interfaces.FlagInput = {}
    const properties: Record<string, FlagSchema> = {}
    for (const plugin of plugins) {
      if (plugins.filter((p) => p.name === plugin.name).length > 1) throw new RegError(`internal: two backends are named "${plugin.name}"`)
      for (const [name, flag] of Object.entries(plugin.flags as Interfaces.FlagInput)) {
        const other = owner.get(name) ?? (name in SHARED_FLAGS ? 'the shared flags (plugins/shared-flags.ts)' : undefined)
        if (other) throw new RegError(`internal: the backends ${other} and ${plugin.name} both declare --${name}`, 'a flag several backends read is declared once in plugins/shared-flags.ts and named in their `uses`')
        owner.set(name, plugin.name)
        flags[name] = {...flag, description: `[${plugin.name}] ${flag.description ?? ''}`, helpGroup: flag.helpGroup ?? plugin.name.toUpperCase()}
        if (!plugin.secrets?.includes(name)) properties[name] = flagSchema(flags[name])
      }
      for (const name of plugin.uses as readonly SharedFlagName[]) {
        if (!(name in SHARED_FLAGS)) throw new RegError(`internal: backend ${plugin.name} uses --${name}, which no shared flag declares`)
        users.set(name, [...(users.get(name) ?? []), plugin.name])
      }
    }
    const sharedSecrets = new Set(plugins.flatMap((plugin) => (plugin.secrets ?? []) as string[]))
    for (const [name, readers] of users) {
      const flag = SHARED_FLAGS[name] as Interfaces.Flag<unknown>
      flags[name] = {...flag, description: `[${readers.join(', ')}] ${flag.description ?? ''}`}
      if (!sharedSecrets.has(name)) properties[name] = flagSchema(flags[name])
    }
    this.flags = flags
    this.targetProperties = properties
  }

  get names(): string[] {
    return this.plugins.map((p) => p.name)
  }

  plugin(name: string): AnyBackendPlugin {
    const plugin = this.plugins.find((p) => p.name === name)
    if (!plugin) throw new RegError(`unknown backend "${name}"`, `available: ${this.names.join(', ')}`)
    return plugin
  }

  /** `common` (the command's own flags) beside the backends' flags; a name in both is refused. */
  flagsBeside<T extends Interfaces.FlagInput>(common: T): T & Interfaces.FlagInput {
    for (const name of Object.keys(common)) if (name in this.flags) throw new RegError(`internal: --${name} is both a deploy flag and a backend's`)
    return {...common, ...this.flags}
  }

  /** The backend flags `name` reads: its own and the shared ones it uses. */
  flagsOf(name: string): string[] {
    const plugin = this.plugin(name)
    return [...Object.keys(plugin.flags), ...plugin.uses]
  }

  /** Refuse backend flags typed for `name` that only other backends read: they would be ignored. */
  refuseForeignFlags(name: string, typed: Iterable<string>): void {
    const own = new Set(this.flagsOf(name))
    const foreign = [...typed].filter((flag) => flag in this.flags && !own.has(flag))
    if (foreign.length === 0) return
    const list = foreign.map((flag) => `--${flag}`).join(', ')
    const reads = own.size > 0 ? `--backend ${name} reads ${[...own].map((flag) => `--${flag}`).join(', ')}` : `--backend ${name} has no flags of its own`
    throw new RegError(`${list} ${foreign.length > 1 ? 'do' : 'does'} not apply to --backend ${name}`, `${reads}; drop ${list}, or choose the backend ${foreign.length > 1 ? 'they belong' : 'it belongs'} to`)
  }

  /** The backend `name`, from the merged flags (its own, the shared ones it uses, the deploy settings). */
  create(name: string, flags: Record<string, unknown> & DeploySettings): Promise<Backend> {
    return this.plugin(name).create(flags)
  }

  /** One line per backend, for help. */
  summary(): string {
    return this.plugins.map((p) => `  ${p.name.padEnd(10)} ${p.summary}`).join('\n')
  }
}
