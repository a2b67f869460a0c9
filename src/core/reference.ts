import {RegError} from './errors.js'
import {quoted} from './quote.js'

const COMPONENT = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$/
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/
/** Path segments that a repository's own URLs use below its name: a repository may not be named after them. */
export const RESERVED_SEGMENTS = ['manifests', 'blobs', 'tags', 'referrers'] as const

export interface ImageName {
  name: string
  tag: string
}

/** A repository name, `team/app`: lowercase components, any depth. */
export function validateName(name: string): string {
  if (name.length === 0) throw new RegError('empty repository name', 'give a name such as team/app')
  if (name.length > 255) throw new RegError(`repository name ${quoted(name)} is longer than 255 characters`)
  for (const component of name.split('/')) {
    if (component === '') throw new RegError(`invalid repository name ${quoted(name)}: empty path component`, 'remove the doubled or trailing "/"')
    if (component === '.' || component === '..') throw new RegError(`invalid repository name ${quoted(name)}: "${component}" is not allowed`, 'name components may not be "." or ".."')
    if (!COMPONENT.test(component)) {
      const hint = component !== component.toLowerCase()
        ? 'repository names must be lowercase'
        : 'components are lowercase letters and digits, separated by ".", "_", "__" or "-"'
      throw new RegError(`invalid repository name ${quoted(name)}: component ${quoted(component)} is not allowed`, hint)
    }
  }
  return name
}

export function isTag(tag: string): boolean {
  return TAG.test(tag)
}

export function validateTag(tag: string, name?: string): string {
  if (!TAG.test(tag)) {
    throw new RegError(
      `invalid tag ${quoted(tag)}${name ? ` for ${quoted(name)}` : ''}`,
      'tags are 1 to 128 characters of letters, digits, "_", "." and "-", not starting with "." or "-"',
    )
  }
  return tag
}

/** Is the first component of a reference a registry host (`example.com`, `localhost:5000`)? The same rule Docker uses. */
function isRegistryHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost' || component !== component.toLowerCase()
}

/**
 * `example.com/team/app:1.0` → { name: 'team/app', tag: '1.0' }. The registry host is dropped
 * (reg serves under its own host); a digest suffix is ignored. Returns a missing tag as undefined.
 */
export function parseReference(reference: string): {name: string; tag?: string} {
  let rest = reference
  const at = rest.indexOf('@')
  if (at >= 0) rest = rest.slice(0, at)
  let tag: string | undefined
  const lastSlash = rest.lastIndexOf('/')
  const colon = rest.lastIndexOf(':')
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
  }
  const components = rest.split('/')
  if (components.length > 1 && isRegistryHost(components[0])) components.shift()
  // docker.io's implicit namespace stays: docker.io/library/alpine → library/alpine
  const name = components.join('/')
  validateName(name)
  if (tag !== undefined) validateTag(tag, name)
  return {name, tag}
}

/** Join `--prefix` and a name. */
export function withPrefix(prefix: string | undefined, name: string): string {
  if (!prefix) return name
  const trimmed = prefix.replace(/^\/+|\/+$/g, '')
  return validateName(trimmed ? `${trimmed}/${name}` : name)
}

export function formatImageName(image: ImageName): string {
  return `${image.name}:${image.tag}`
}
