import {Flags} from '@oclif/core'
import {parseCorsOrigin} from '../../src/core/cors.js'
import {RegError} from '../../src/core/errors.js'
import {defineBackend} from '../plugin.js'

const MIB = 1024 * 1024
/**
 * Netlify documents no per-file limit for API deploys; each file goes up in one request, and very
 * large uploads are where deploys are reported to fail. A conservative default, refused before any
 * upload; raise it with --max-file-size.
 */
export const NETLIFY_DEFAULT_MAX_FILE_MIB = 100

/**
 * Netlify's own Basic auth (a `Basic-Auth` rule in `_headers`) takes plain `user:password` pairs,
 * written into a file of the deploy: Netlify keeps every deploy's files, and anyone who can read the
 * site's deploys could read the passwords. reg never puts credentials in deployed files, and an
 * htpasswd holds bcrypt hashes Netlify cannot check: access control is refused here.
 */
function refuseNetlifyAccessControl(flags: {'auth-file'?: string; private?: string[]}): void {
  if (flags['auth-file'] === undefined && !flags.private?.length) return
  throw new RegError(
    '--backend netlify cannot take --auth-file/--private: Netlify\'s Basic-Auth rule needs plain user:password pairs written into _headers, a file of the deploy, and reg never puts credentials in deployed files',
    'Netlify keeps every deploy\'s files (anyone who can read the site\'s deploys could read them), and cannot check the bcrypt hashes of an htpasswd. Serve private repositories with nginx, Apache, reg serve --read-auth or the Cloudflare Worker backend (users kept as a Worker secret)',
    'AUTH_UNSUPPORTED',
  )
}

/** `--backend netlify`: a file-digest deploy through Netlify's API, routed by `_headers` and `_redirects`. */
export const netlifyBackend = defineBackend({
  name: 'netlify',
  summary: 'Netlify site via its API (atomic file-digest deploy; _headers/_redirects rules; each content uploaded once)',
  flags: {
    site: Flags.string({description: 'site ID, or its name or domain'}),
    auth: Flags.string({description: 'personal access token (default: NETLIFY_AUTH_TOKEN; prefer the environment)'}),
    'api-url': Flags.string({description: 'API base URL (default: NETLIFY_API_URL or https://api.netlify.com/api/v1)'}),
    draft: Flags.boolean({description: 'deploy as a draft (its own URL; the live site is unchanged)'}),
    message: Flags.string({description: 'deploy message (its title in the Netlify UI)'}),
    'max-file-size': Flags.integer({description: `refuse files larger than this many MiB before uploading (default ${NETLIFY_DEFAULT_MAX_FILE_MIB})`, min: 1}),
  },
  uses: ['cors', 'auth-file', 'private'],
  secrets: ['auth'],
  async create(flags) {
    refuseNetlifyAccessControl(flags)
    const cors = parseCorsOrigin(flags.cors)
    if (!flags.site) throw new RegError('--backend netlify needs --site SITE', 'the site ID (Site configuration → Site details) or its name')
    const token = flags.auth ?? process.env.NETLIFY_AUTH_TOKEN
    if (!token) throw new RegError('--backend netlify needs a token', 'export NETLIFY_AUTH_TOKEN=<personal access token> (Netlify → User settings → Applications)')
    const {NetlifyBackend} = await import('./netlify-backend.js')
    return new NetlifyBackend({
      site: flags.site,
      token,
      apiUrl: flags['api-url'] ?? process.env.NETLIFY_API_URL ?? 'https://api.netlify.com/api/v1',
      draft: Boolean(flags.draft),
      message: flags.message,
      maxFileSize: (flags['max-file-size'] ?? NETLIFY_DEFAULT_MAX_FILE_MIB) * MIB,
      concurrency: flags.concurrency ?? 8,
      retries: flags.retries ?? 4,
      cors,
    })
  },
})
