import {RegError} from '../core/errors.js'
import {RESERVED_SEGMENTS} from '../core/reference.js'
import type {TreeIndex} from './model.js'

/**
 * Refuse trees no host could serve: a repository whose path runs into another's `manifests/`,
 * `blobs/`, `tags/` or `referrers/` URLs. Tags equal but for case are distinct tags (the tag grammar
 * is case-sensitive): only a deploy to a host that cannot tell them apart refuses them (see
 * `refuseCaseCollisions` in src/publish/plan.ts).
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
  }
}
