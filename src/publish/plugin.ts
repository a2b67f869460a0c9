import type {Interfaces} from '@oclif/core'
import type {Backend} from './backend.js'

/**
 * What a folder under `plugins/` exports: its name, its own flags (merged into `reg deploy`) and a
 * factory. Adding a backend is adding a folder and one line in `plugins.ts`.
 */
export interface BackendPlugin {
  name: string
  summary: string
  flags: Interfaces.FlagInput
  create(flags: Record<string, unknown>): Backend
}
