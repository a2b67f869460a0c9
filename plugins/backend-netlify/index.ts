import {Flags} from '@oclif/core'
import {RegError} from '../../src/core/errors.js'
import type {BackendPlugin} from '../../src/publish/plugin.js'
import {NetlifyBackend} from './netlify-backend.js'

const group = 'NETLIFY'
const MIB = 1024 * 1024
/**
 * Netlify documents no per-file limit for API deploys; each file goes up in one request, and very
 * large uploads are where deploys are reported to fail. A conservative default, refused before any
 * upload; raise it with --max-file-size.
 */
export const NETLIFY_DEFAULT_MAX_FILE_MIB = 100

/** `--backend netlify`: a file-digest deploy through Netlify's API, routed by `_headers` and `_redirects`. */
export const netlifyBackend: BackendPlugin = {
  name: 'netlify',
  summary: 'Netlify site via its API (atomic file-digest deploy; _headers/_redirects rules; each content uploaded once)',
  flags: {
    site: Flags.string({description: '[netlify] site ID, or its name or domain', helpGroup: group}),
    auth: Flags.string({description: '[netlify] personal access token (default: NETLIFY_AUTH_TOKEN; prefer the environment)', helpGroup: group}),
    'api-url': Flags.string({description: '[netlify] API base URL (default: NETLIFY_API_URL or https://api.netlify.com/api/v1)', helpGroup: group}),
    draft: Flags.boolean({description: '[netlify] deploy as a draft (its own URL; the live site is unchanged)', helpGroup: group}),
    message: Flags.string({description: '[netlify] deploy message (its title in the Netlify UI)', helpGroup: group}),
    'max-file-size': Flags.integer({description: `[netlify] refuse files larger than this many MiB before uploading (default ${NETLIFY_DEFAULT_MAX_FILE_MIB})`, min: 1, helpGroup: group}),
  },
  create(flags) {
    if (typeof flags.site !== 'string' || !flags.site) throw new RegError('--backend netlify needs --site SITE', 'the site ID (Site configuration → Site details) or its name')
    const token = typeof flags.auth === 'string' ? flags.auth : process.env.NETLIFY_AUTH_TOKEN
    if (!token) throw new RegError('--backend netlify needs a token', 'export NETLIFY_AUTH_TOKEN=<personal access token> (Netlify → User settings → Applications)')
    return new NetlifyBackend({
      site: flags.site,
      token,
      apiUrl: typeof flags['api-url'] === 'string' ? flags['api-url'] : process.env.NETLIFY_API_URL ?? 'https://api.netlify.com/api/v1',
      draft: Boolean(flags.draft),
      message: typeof flags.message === 'string' ? flags.message : undefined,
      maxFileSize: (typeof flags['max-file-size'] === 'number' ? flags['max-file-size'] : NETLIFY_DEFAULT_MAX_FILE_MIB) * MIB,
      concurrency: typeof flags.concurrency === 'number' ? flags.concurrency : 8,
      retries: typeof flags.retries === 'number' ? flags.retries : 4,
    })
  },
}
