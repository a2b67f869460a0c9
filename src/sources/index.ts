import {existsSync, statSync} from 'node:fs'
import path from 'node:path'
import {RegError} from '../core/errors.js'
import type {ImageSource} from '../core/image-source.js'
import {validateName, validateTag} from '../core/reference.js'
import {DaemonSource} from './daemon/daemon-source.js'
import {DirSource} from './dir.js'
import {DockerArchiveSource} from './docker-archive.js'
import {OciArchiveSource} from './oci-archive.js'
import {OciLayoutSource} from './oci-layout.js'
import {RegistrySource, type RegistrySourceOptions} from './registry/registry-source.js'

export const TRANSPORTS = ['oci', 'oci-archive', 'docker-archive', 'dir', 'docker', 'docker-daemon'] as const
const LATER_TRANSPORTS = ['containers-storage']

/** Options of the sources that need them (remote registries). */
export type SourceOptions = RegistrySourceOptions

export interface SourceSpec {
  /** the argument as given, for messages */
  text: string
  transport: (typeof TRANSPORTS)[number]
  path: string
  /** oci/oci-archive REF, docker-archive NAME:TAG */
  ref?: string
  /** `=NAME[:TAG]`: the name (and tag) to publish under */
  target?: {name: string; tag?: string}
}

/**
 * Parse `transport:location[=NAME[:TAG]]`, skopeo's syntax: `oci:PATH[:REF]`, `oci-archive:FILE[:REF]`,
 * `docker-archive:FILE[:NAME:TAG]`, `dir:PATH`. Like skopeo, PATH ends at the first `:`.
 */
export function parseSourceSpec(text: string): SourceSpec {
  const colon = text.indexOf(':')
  const transport = colon > 0 ? text.slice(0, colon) : ''
  if (!(TRANSPORTS as readonly string[]).includes(transport)) {
    const known = TRANSPORTS.map((t) => (t === 'docker' ? 'docker://' : `${t}:`)).join(', ')
    if (LATER_TRANSPORTS.includes(transport)) {
      throw new RegError(`source "${text}": the ${transport}: transport is not supported yet`, `supported transports: ${known}; export the image first, e.g. \`skopeo copy ${text} oci:./layout:TAG\``)
    }
    const suggestion = transportFor(text)
    if (suggestion) throw new RegError(`source "${text}": no transport given`, suggestion)
    throw new RegError(`source "${text}": unknown transport "${transport || text}"`, `write SOURCE as TRANSPORT:LOCATION with one of ${known}`)
  }
  let rest = text.slice(colon + 1)
  let target: SourceSpec['target']
  const eq = rest.lastIndexOf('=')
  if (eq >= 0) {
    const targetText = rest.slice(eq + 1)
    rest = rest.slice(0, eq)
    const tagAt = targetText.lastIndexOf(':')
    const name = tagAt > targetText.lastIndexOf('/') ? targetText.slice(0, tagAt) : targetText
    const tag = tagAt > targetText.lastIndexOf('/') ? targetText.slice(tagAt + 1) : undefined
    target = {name: validateName(name), tag: tag === undefined ? undefined : validateTag(tag, name)}
  }
  if (transport === 'docker-daemon') {
    if (!rest) throw new RegError(`source "${text}": no image named`, 'write docker-daemon:NAME[:TAG], globs allowed: docker-daemon:\'example.com/*\'')
    return {text, transport, path: rest, target}
  }
  if (transport === 'docker') {
    if (!rest.startsWith('//')) throw new RegError(`source "${text}": write docker://HOST/NAME[:TAG|@DIGEST]`)
    return {text, transport, path: rest, target}
  }
  let location = rest
  let ref: string | undefined
  if (transport !== 'dir') {
    const refAt = rest.indexOf(':')
    if (refAt >= 0) {
      location = rest.slice(0, refAt)
      ref = rest.slice(refAt + 1) || undefined
    }
  }
  if (!location) throw new RegError(`source "${text}": no path given`, `write ${transport}:PATH`)
  if (transport === 'dir' && !target) {
    throw new RegError(`source "${text}": a dir: source has no name`, `add the name to publish it under: ${text}=team/app:1.0`)
  }
  return {text, transport: transport as SourceSpec['transport'], path: path.resolve(location), ref, target}
}

/**
 * What to write for a source given as a bare local path (`./layout`, `image.tar`): the transport
 * that reads what is there, or undefined when nothing is. Looks at the path only (a stat, a name).
 */
function transportFor(text: string): string | undefined {
  // `./layout=team/app:1` and `./layout:1.0` name the path before the `=` and the `:`
  const location = text.split('=')[0].split(':')[0]
  let stats
  try {
    stats = statSync(location)
  } catch {
    return undefined
  }
  if (stats.isDirectory()) {
    if (existsSync(path.join(location, 'oci-layout'))) return `${location} is an OCI layout: write oci:${text}`
    if (existsSync(path.join(location, 'manifest.json'))) return `${location} looks like a skopeo dir: write dir:${text.includes('=') ? text : `${text}=NAME:TAG`}`
    return `${location} is a directory but not an OCI layout (no oci-layout file) nor a skopeo dir (no manifest.json)`
  }
  if (stats.isFile()) return `${location} is a file: write docker-archive:${text} for a \`docker save\` tar, or oci-archive:${text} for an OCI layout in a tar`
  return undefined
}

/** Open the adapter for a spec. `workDir` is a private scratch directory for archives. */
export function openSource(spec: SourceSpec, workDir: string, options: SourceOptions = {}): ImageSource {
  switch (spec.transport) {
    case 'docker': return new RegistrySource(spec.text, spec.path, options)
    case 'docker-daemon': return new DaemonSource(spec.text, spec.path, workDir)
    case 'oci': return new OciLayoutSource(spec.text, spec.path, spec.ref)
    case 'oci-archive': return new OciArchiveSource(spec.text, spec.path, workDir, spec.ref)
    case 'docker-archive': return new DockerArchiveSource(spec.text, spec.path, workDir, spec.ref)
    case 'dir': return new DirSource(spec.text, spec.path)
  }
}
