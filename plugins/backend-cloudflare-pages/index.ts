import {Flags} from '@oclif/core'
import {parseCorsOrigin} from '../../src/core/cors.js'
import {RegError} from '../../src/core/errors.js'
import {apiToken, cloudflareApiUrl} from '../backend-cloudflare/cloudflare-api.js'
import {defineBackend} from '../plugin.js'

/**
 * Pages serves the uploaded files to whoever asks: checking a password would take a Pages Function,
 * which reg does not deploy, and reg never puts credentials in deployed files. Access control is
 * refused, with what can do it.
 */
function refusePagesAccessControl(flags: {'auth-file'?: string; private?: string[]; 'basic-auth'?: string}): void {
  if (flags['auth-file'] === undefined && !flags.private?.length && flags['basic-auth'] === undefined) return
  throw new RegError(
    '--backend cloudflare-pages cannot take --auth-file/--private/--basic-auth: Pages serves its files to whoever asks and checks no password',
    'serve private repositories with --backend cloudflare (R2 behind reg\'s Worker: --basic-auth FILE --private GLOB, the users kept as a Worker secret), or with nginx, Apache or reg serve --read-auth',
    'AUTH_UNSUPPORTED',
  )
}

/** `--backend cloudflare-pages`: a direct upload to a Pages project, routed by `_headers` and `_redirects` within Pages' limits. */
export const cloudflarePagesBackend = defineBackend({
  name: 'cloudflare-pages',
  summary: 'Cloudflare Pages project by direct upload (small registries: 20,000 files of at most 25 MiB, 100 header rules)',
  flags: {
    project: Flags.string({description: 'name of the Pages project (create it first)'}),
  },
  uses: ['account-id', 'api-token', 'cors', 'auth-file', 'private', 'basic-auth'],
  secrets: ['api-token'],
  async create(flags) {
    refusePagesAccessControl(flags)
    if (!flags.project) throw new RegError('--backend cloudflare-pages needs --project NAME', 'create the project first: dashboard → Workers & Pages → Create → Pages → Upload assets, or `wrangler pages project create NAME`')
    const accountId = flags['account-id'] ?? process.env.CLOUDFLARE_ACCOUNT_ID
    if (!accountId) throw new RegError('--backend cloudflare-pages needs --account-id ID (or CLOUDFLARE_ACCOUNT_ID)', 'find it in the Cloudflare dashboard: Workers & Pages (Account ID)')
    const cors = parseCorsOrigin(flags.cors)
    const token = apiToken(flags['api-token'], 'cloudflare-pages')
    const [{PagesBackend}, {CloudflareApi}] = await Promise.all([import('./pages-backend.js'), import('../backend-cloudflare/cloudflare-api.js')])
    const api = new CloudflareApi({token, apiUrl: cloudflareApiUrl(), retries: flags.retries ?? 4, backend: 'cloudflare-pages'})
    return new PagesBackend(api, {accountId, project: flags.project, concurrency: flags.concurrency ?? 3, cors})
  },
})
