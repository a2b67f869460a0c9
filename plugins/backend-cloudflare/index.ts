import {Flags} from '@oclif/core'
import {accessPolicy, AUTH_REALM} from '../../src/config/access.js'
import {parseCorsOrigin} from '../../src/core/cors.js'
import {RegError} from '../../src/core/errors.js'
import {checkEndpoint, createS3Backend, S3_FAMILY_FLAGS} from '../backend-s3/index.js'
import type {S3Backend} from '../backend-s3/s3-backend.js'
import {defineBackend} from '../plugin.js'
import {apiToken, cloudflareApiUrl} from './cloudflare-api.js'

/** A Worker's name: lowercase letters, digits, `-` and `_`, at most 63 (Cloudflare's rule). */
const WORKER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/

/**
 * Access control in the Worker: `--basic-auth FILE` gives the users, `--private GLOB` the
 * repositories that need one (without it: all). An htpasswd (`--auth-file`) holds bcrypt hashes,
 * which cost more CPU than a Worker may spend on a request: refused, pointing at --basic-auth.
 * The REG_ACCESS binding: the realm and the private names as one regular expression, both from
 * src/config/access.ts (the Worker imports nothing).
 */
export function workerAccess(flags: {'auth-file'?: string; private?: string[]; 'basic-auth'?: string}): {binding: string; privatePatterns: readonly string[]} | undefined {
  if (flags['auth-file'] !== undefined) {
    throw new RegError(
      '--backend cloudflare cannot check the bcrypt hashes of --auth-file: bcrypt costs more CPU than a Worker may spend on a request',
      'give the users as --basic-auth FILE (lines user:password; reg uploads only PBKDF2 hashes of the passwords, as a Worker secret), and the repositories that need them as --private GLOB (without it, the whole registry)',
      'AUTH_UNSUPPORTED',
    )
  }
  if (flags['basic-auth'] === undefined) {
    if (flags.private?.length) throw new RegError('--private needs --basic-auth FILE on --backend cloudflare', 'the users who may read the private repositories: a file of user:password lines (reg uploads only PBKDF2 hashes of the passwords, as a Worker secret)')
    return undefined
  }
  // The policy's users are the Worker secret's; here only its names matter.
  const policy = accessPolicy(new Map(), flags.private)
  return {binding: JSON.stringify({realm: AUTH_REALM, privateNames: policy.namePattern}), privatePatterns: policy.privatePatterns}
}

/** `--backend cloudflare`: R2 through the S3 engine, served by a Worker that reg uploads and binds to the bucket. */
export const cloudflareBackend = defineBackend({
  name: 'cloudflare',
  summary: 'Cloudflare R2 behind a Worker reg generates (every header, JSON errors, Range, edge cache, optional Basic auth)',
  flags: {
    worker: Flags.string({description: 'name of the Worker to upload (default reg-<bucket>)'}),
    route: Flags.string({description: 'route of the Worker, e.g. registry.example.com/* (a zone of the account); without it: NAME.SUBDOMAIN.workers.dev'}),
    'r2-endpoint': Flags.string({description: 'S3 endpoint of the bucket (default https://ID.r2.cloudflarestorage.com; EU jurisdiction: https://ID.eu.r2.cloudflarestorage.com)'}),
  },
  uses: [...S3_FAMILY_FLAGS, 'account-id', 'api-token', 'basic-auth'],
  paths: ['basic-auth'],
  secrets: ['api-token'],
  async create(flags) {
    const accountId = flags['account-id']
    if (!accountId) throw new RegError('--backend cloudflare needs --account-id ID', 'find it in the Cloudflare dashboard: Workers & Pages, or R2 overview (Account ID)')
    if (!flags.bucket) throw new RegError('--backend cloudflare needs --bucket NAME', 'create the R2 bucket first: dashboard → R2 → Create bucket, or `wrangler r2 bucket create NAME`')
    if (flags.dedupe === 'redirect') throw new RegError('R2 has no website redirects', 'use --dedupe copy (the default)')
    const worker = flags.worker ?? `reg-${flags.bucket}`
    if (!WORKER_NAME.test(worker)) throw new RegError(`--worker ${JSON.stringify(worker)} is not a Worker name`, 'lowercase letters, digits, "-" and "_", at most 63 characters')
    const route = flags.route
    if (route !== undefined && (!/^[^\s/:]+\/\S*$/.test(route))) throw new RegError(`--route ${JSON.stringify(route)} is not a route pattern`, 'write HOST/*, e.g. --route registry.example.com/* (no scheme)')
    if (flags['r2-endpoint'] !== undefined) checkEndpoint(flags['r2-endpoint'])
    const cors = parseCorsOrigin(flags.cors)
    const access = workerAccess(flags)
    const token = apiToken(flags['api-token'], 'cloudflare')
    const [{CloudflareBackend, basicAuthSecret, WORKER_COMPATIBILITY_DATE}, {CloudflareApi}] = await Promise.all([import('./cloudflare-backend.js'), import('./cloudflare-api.js')])
    const basicAuth = flags['basic-auth'] === undefined ? undefined : await basicAuthSecret(flags['basic-auth'])
    // The S3 engine, as the r2 preset uses it; an endpoint of one's own is path-style (any host works).
    // The bucket stays private, read by the Worker only: the Worker sends the CORS headers, not R2's bucket configuration.
    // Access control is the Worker's (checked above), not the bucket's.
    const objects = await createS3Backend('r2', {...flags, cors: 'off', 'auth-file': undefined, private: undefined}, {
      region: 'auto', endpoint: flags['r2-endpoint'] ?? `https://${accountId}.r2.cloudflarestorage.com`, forcePathStyle: flags['r2-endpoint'] !== undefined, acl: undefined,
    }) as S3Backend
    const api = new CloudflareApi({token, apiUrl: cloudflareApiUrl(), retries: flags.retries ?? 4, backend: 'cloudflare'})
    return new CloudflareBackend(objects, api, {
      accountId, bucket: flags.bucket, worker, routes: route === undefined ? [] : [route], keyPrefix: objects.keyPrefix, basicAuth, access: access?.binding, privatePatterns: access?.privatePatterns, cors, compatibilityDate: WORKER_COMPATIBILITY_DATE,
    })
  },
})
