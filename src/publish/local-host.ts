import {writeFile} from 'node:fs/promises'
import type {RegistryObject} from '../tree/model.js'
import type {RegistryTree} from '../tree/registry-tree.js'
import type {Backend, BackendCapabilities, HostDeployReport, RemoteState} from './backend.js'
import {LocalFileTarget} from './local-files.js'

/** A configuration file a host needs next to the objects (nginx.conf, .htaccess, error bodies). */
export interface HostConfigFile {
  /** relative to the target directory */
  path: string
  content: string
}

export interface LocalHostOptions {
  /** top-level directories of the target that hold objects */
  roots: readonly string[]
  storageKeyOf(object: RegistryObject): string | null
  /** the host configuration for this tree, answering the `routed` URLs; written after the tags phase, before pruning */
  configFiles?(tree: RegistryTree, routed: readonly RegistryObject[]): Promise<HostConfigFile[]> | HostConfigFile[]
  /** what to do with configuration files a previous deploy wrote and this one does not */
  staleConfigFiles?(current: readonly HostConfigFile[]): Promise<string[]>
}

/**
 * A backend that writes into a local directory served by some host: the objects through the
 * shared local writer, then the host's configuration files, each replaced atomically. The dir,
 * nginx and apache plugins are this with different layouts and configurations.
 */
export class LocalHostBackend implements Backend {
  private readonly files: LocalFileTarget
  readonly localDirectory: string

  /** only where the host has a configuration: the plan gives it a phase */
  readonly writeHostConfig?: (tree: RegistryTree, routed: readonly RegistryObject[]) => Promise<void>

  constructor(readonly name: string, readonly location: string, readonly capabilities: BackendCapabilities, private readonly options: LocalHostOptions) {
    this.files = new LocalFileTarget(location, options.roots)
    this.localDirectory = location
    if (options.configFiles) this.writeHostConfig = (tree, routed) => this.writeConfigFiles(tree, routed)
  }

  storageKeyOf(object: RegistryObject): string | null {
    return this.options.storageKeyOf(object)
  }

  describeRemote(): Promise<RemoteState> {
    return this.files.describe()
  }

  putObject(key: string, object: RegistryObject, file: string): Promise<void> {
    return this.files.put(key, object, file)
  }

  copyObject(fromKey: string, key: string, object: RegistryObject): Promise<void> {
    return this.files.copy(fromKey, key, object)
  }

  deleteObject(key: string): Promise<void> {
    return this.files.delete(key)
  }

  async recordUnreferenced(since: ReadonlyMap<string, number>): Promise<void> {
    this.files.recordUnreferenced(since)
  }

  private async writeConfigFiles(tree: RegistryTree, routed: readonly RegistryObject[]): Promise<void> {
    const configs = (await this.options.configFiles?.(tree, routed)) ?? []
    for (const config of configs) {
      await this.files.placeFile(this.files.fileOf(config.path), (temp) => writeFile(temp, config.content))
    }
    for (const stale of (await this.options.staleConfigFiles?.(configs)) ?? []) await this.files.delete(stale)
  }

  /** After the prune phase: the state file lists exactly what is deployed now. */
  async finish(): Promise<HostDeployReport | undefined> {
    await this.files.saveState()
    return undefined
  }
}
