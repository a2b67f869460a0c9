import {RegError} from '../../src/core/errors.js'
import {createS3Backend, S3_FAMILY_FLAGS} from '../backend-s3/index.js'
import {defineBackend} from '../plugin.js'

/** `--backend r2`: a preset of s3. R2 has no ACLs and no website redirects. */
export const r2Backend = defineBackend({
  name: 'r2',
  summary: 'Cloudflare R2 (preset of s3: endpoint from --account-id, region auto, no ACLs)',
  flags: {},
  uses: [...S3_FAMILY_FLAGS, 'account-id'],
  async create(flags) {
    if (!flags['account-id']) throw new RegError('--backend r2 needs --account-id ID', 'find it in the Cloudflare dashboard, R2 overview')
    if (flags.dedupe === 'redirect') throw new RegError('R2 has no website redirects', 'use --dedupe copy (the default)')
    return createS3Backend('r2', flags, {region: 'auto', endpoint: `https://${flags['account-id']}.r2.cloudflarestorage.com`, forcePathStyle: false, acl: undefined})
  },
})
