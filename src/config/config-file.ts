import {existsSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import type {Ajv, ErrorObject} from 'ajv'
import {RegError} from '../core/errors.js'
import {BACKENDS} from '../../plugins/index.js'
import {CONFIG_SCHEMA_ID, configSchema} from './config-schema.js'
import {TARGET_SETTINGS} from './deploy-flags.js'

/** `reg.config.json` / `reg.config.yaml`: which images go into the tree, and where it is deployed. */
export interface RegConfig {
  out?: string
  prefix?: string
  tagMaxAge?: number
  platform?: string
  /** docker:// sources: also copy signatures, SBOMs and other referrers (reg build --with-referrers) */
  withReferrers?: boolean
  /** publish the catalog page (reg build --page) */
  page?: boolean
  /** the registry's public URL, for the page's pull commands (reg build --public-url) */
  publicUrl?: string
  sources?: Array<string | {source: string; name?: string}>
  /** the registry's public URL (--public-url): a target's `public-url` wins over it */
  url?: string
  /** what `reg prune` removes when no rule is given on its command line */
  retention?: RetentionConfig
  defaultTarget?: string
  targets?: Record<string, DeployTarget>
}

/** `retention:` of the config file: the rules of `reg prune`, spelled as its flags are. */
export interface RetentionConfig {
  keepLast?: number
  olderThan?: string
  match?: string | string[]
  untagged?: boolean
}

/** A named deploy target: a backend and its flags, as `reg deploy` spells them (no secrets). */
export type DeployTarget = {backend: string} & Record<string, string | number | boolean | string[]>

export interface LoadedConfig {
  file: string
  config: RegConfig
}

export const CONFIG_FILE_NAMES = ['reg.config.json', 'reg.config.yaml', 'reg.config.yml'] as const

let validator: ReturnType<Ajv['compile']> | undefined

// ajv and yaml are imported when a config file is read: a command run without one does not load them (~30 ms of start-up).
async function validate(config: unknown): Promise<ErrorObject[]> {
  if (!validator) {
    const {Ajv} = await import('ajv')
    validator = new Ajv({allErrors: true, strict: false}).compile(configSchema())
  }
  return validator(config) ? [] : [...(validator.errors ?? [])]
}

/** One schema error in words: where in the file, and what was expected there. */
function describeSchemaError(error: ErrorObject): string {
  const where = error.instancePath ? error.instancePath.slice(1).replace(/\//g, '.') : '(top level)'
  const params = error.params as Record<string, unknown>
  switch (error.keyword) {
    case 'additionalProperties': return `${where}: unknown key "${String(params.additionalProperty)}"${SECRET_KEY.test(String(params.additionalProperty)) ? ' (secrets belong in the environment, never in this file)' : ''}`
    case 'required': return `${where}: missing "${String(params.missingProperty)}"`
    case 'enum': return `${where}: expected one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`
    case 'type': return `${where}: expected ${String(params.type)}`
    case 'pattern': return `${where}: ${JSON.stringify(error.data)} does not match ${String(params.pattern)}`
    case 'anyOf': return `${where}: expected a source string ("oci:./layout=team/app:1") or {source, name}`
    default: return `${where}: ${error.message ?? error.keyword}`
  }
}

const SECRET_KEY = /auth|token|password|secret|credential|access-?key/i

/** Parse and check a config file; errors name the file, the path inside it and what was expected. */
export async function readConfigFile(file: string): Promise<LoadedConfig> {
  const text = await readFile(file, 'utf8')
  let parsed: unknown
  if (file.endsWith('.json')) {
    try {
      parsed = JSON.parse(text)
    } catch (error) {
      throw new RegError(`${file}: not valid JSON: ${(error as Error).message}`)
    }
  } else {
    const {parseDocument} = await import('yaml')
    const document = parseDocument(text, {prettyErrors: true})
    if (document.errors.length > 0) throw new RegError(`${file}: not valid YAML: ${document.errors[0]?.message}`)
    parsed = document.toJS()
  }
  const errors = await validate(parsed)
  // anyOf reports each branch too; the anyOf line says it better.
  const anyOfPaths = errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath)
  const shown = errors.filter((e) => e.keyword === 'anyOf' || !anyOfPaths.some((p) => e.instancePath.startsWith(p)))
  if (shown.length > 0) {
    throw new RegError(`${file} is not a valid reg config:\n  ${[...new Set(shown.map(describeSchemaError))].join('\n  ')}`, `the schema: ${CONFIG_SCHEMA_ID} (schema/reg.config.schema.json in the reg package)`)
  }
  const config = parsed as RegConfig
  if (config.defaultTarget && !config.targets?.[config.defaultTarget]) throw new RegError(`${file}: defaultTarget: no target "${config.defaultTarget}" in targets`)
  const unread = Object.entries(config.targets ?? {}).flatMap(([name, target]) => keysNotRead(target).map((key) => `targets.${name}: backend ${target.backend} does not read "${key}"`))
  if (unread.length > 0) throw new RegError(`${file} is not a valid reg config:\n  ${unread.join('\n  ')}`, 'each backend reads its own flags and the shared ones it names (reg deploy --help)')
  return {file, config}
}

/** A target's keys its backend would ignore: a flag of another backend is a mistake worth saying. */
function keysNotRead(target: DeployTarget): string[] {
  const plugin = BACKENDS.plugin(target.backend)
  const read = new Set<string>(['backend', ...TARGET_SETTINGS, ...Object.keys(plugin.flags), ...plugin.uses])
  return Object.keys(target).filter((key) => !read.has(key))
}

/** `--config FILE`, else the first of reg.config.{json,yaml,yml} in `cwd`; undefined when there is none. */
export async function loadConfig(explicit: string | undefined, cwd = process.cwd()): Promise<LoadedConfig | undefined> {
  if (explicit) {
    const file = path.resolve(cwd, explicit)
    if (!existsSync(file)) throw new RegError(`no config file ${explicit}`, `expected a file like ${CONFIG_FILE_NAMES.join(' or ')}`)
    return readConfigFile(file)
  }
  const found = CONFIG_FILE_NAMES.map((name) => path.join(cwd, name)).find((file) => existsSync(file))
  return found ? readConfigFile(found) : undefined
}

/** The deploy target `--target NAME` names, or the default one; undefined when the file has none. */
export function selectTarget(loaded: LoadedConfig | undefined, name: string | undefined): {name: string; target: DeployTarget} | undefined {
  const targets = loaded?.config.targets ?? {}
  const names = Object.keys(targets)
  if (name !== undefined) {
    const target = targets[name]
    if (!target) {
      throw new RegError(loaded ? `${loaded.file} has no target "${name}"` : `--target ${name}: no reg.config.json or reg.config.yaml here`,
        names.length > 0 ? `targets: ${names.join(', ')}` : 'define targets: { NAME: { backend: ..., ... } } in reg.config.json (or pass --config FILE); a directory to deploy into is --dest DIR')
    }
    return {name, target}
  }
  const chosen = loaded?.config.defaultTarget ?? (names.length === 1 ? names[0] : undefined)
  if (chosen === undefined) {
    if (names.length > 1) throw new RegError(`${loaded?.file}: several targets (${names.join(', ')}) and no defaultTarget`, 'pass --target NAME')
    return undefined
  }
  const target = targets[chosen]
  return target ? {name: chosen, target} : undefined
}

const PATH_TRANSPORTS = ['oci', 'oci-archive', 'docker-archive', 'dir']

/** Relative paths in a config file are relative to the file, wherever reg runs. */
export function resolveFromConfig(loaded: LoadedConfig, value: string): string {
  return path.resolve(path.dirname(loaded.file), value)
}

/** Build sources of the config, as `reg build` arguments, with file paths resolved against the config file. */
export function configSources(loaded: LoadedConfig): string[] {
  return (loaded.config.sources ?? []).map((entry) => {
    const spec = typeof entry === 'string' ? entry : entry.name ? `${entry.source}=${entry.name}` : entry.source
    const colon = spec.indexOf(':')
    const transport = spec.slice(0, colon)
    const rest = spec.slice(colon + 1)
    return PATH_TRANSPORTS.includes(transport) && !rest.startsWith('/') ? `${transport}:${path.join(path.dirname(loaded.file), rest)}` : spec
  })
}
