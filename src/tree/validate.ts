import {RegError} from '../core/errors.js'
import {RESERVED_SEGMENTS} from '../core/reference.js'
import type {TreeIndex} from './model.js'

/**
 * Refuse trees some hosts would serve wrong: a repository whose path runs into another's
 * `manifests/`, `blobs/`, `tags/` or `referrers/` URLs, and tags equal but for case (case-insensitive
 * file systems and hosts would merge them).
 */
export function validateTreeNames(index: Pick<TreeIndex, 'repositories'>): void {
  const names = Object.keys(index.repositories).sort()
  const nameSet = new Set(names)
  for (const name of names) {
    const parts = name.split('/')
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/')
      if (nameSet.has(parent) && (RESERVED_SEGMENTS as readonly string[]).includes(parts[i])) {
        throw new RegError(
          `repository "${name}" collides with repository "${parent}": its path runs into ${parent}'s /${parts[i]}/ URLs`,
          `rename one of them (e.g. with =NAME:TAG or --prefix); a component "${parts[i]}" cannot follow an existing repository name`,
        )
      }
    }
    const seen = new Map<string, string>()
    for (const tag of Object.keys(index.repositories[name].tags)) {
      const folded = tag.toLowerCase()
      const other = seen.get(folded)
      if (other !== undefined) {
        throw new RegError(`repository "${name}" has tags "${other}" and "${tag}" that differ only in case`, 'case-insensitive hosts would serve one for the other; rename one of the tags')
      }
      seen.set(folded, tag)
    }
  }
}
