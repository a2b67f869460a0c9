import type {Interfaces} from '@oclif/core'
import type {Backend} from '../src/publish/backend.js'
import type {SHARED_FLAGS} from './shared-flags.js'

export type SharedFlags = typeof SHARED_FLAGS
export type SharedFlagName = keyof SharedFlags

/** The deploy's own settings a backend may follow (Netlify runs its uploads with them). */
export interface DeploySettings {
  concurrency?: number
  retries?: number
}

type ValueOf<F> = F extends Interfaces.Flag<infer V> ? V : never

/** What `create` gets: its own and its shared flags, typed, as given (a flag not given may be absent). */
export type BackendFlags<Own extends object, Uses extends SharedFlagName> =
  {[K in keyof Own]?: ValueOf<Own[K]>} & {[K in Uses]?: ValueOf<SharedFlags[K]>} & DeploySettings

/**
 * What a folder under `plugins/` exports: one backend, declared once. `reg deploy`'s flags and help,
 * the config file's JSON Schema and the config merge are derived from these declarations
 * (`plugins/registry.ts`); adding a backend is a folder and one line in `plugins/index.ts`.
 */
export interface BackendPlugin<Own extends Interfaces.FlagInput = Interfaces.FlagInput, Uses extends SharedFlagName = SharedFlagName> {
  name: string
  summary: string
  /** flags only this backend reads: no other backend may declare the same name */
  flags: Own
  /** the shared flags (plugins/shared-flags.ts) it reads */
  uses: readonly Uses[]
  /** flags holding a file path: in a config file, relative to that file */
  paths?: ReadonlyArray<Extract<keyof Own, string> | Uses>
  /** flags that never belong in a config file (tokens): left out of its schema (a shared one when any user says so) */
  secrets?: ReadonlyArray<Extract<keyof Own, string> | Uses>
  /** the backend; its module (and the SDK it needs) is imported here, only when this backend runs */
  create(flags: BackendFlags<Own, Uses>): Promise<Backend>
}

/** Declare a backend with its flags' types inferred (`create` sees typed flags). */
export function defineBackend<const Own extends Interfaces.FlagInput, const Uses extends SharedFlagName = never>(plugin: BackendPlugin<Own, Uses>): BackendPlugin<Own, Uses> {
  return plugin
}
