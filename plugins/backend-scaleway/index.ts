import {createS3Backend, S3_FAMILY_FLAGS} from '../backend-s3/index.js'
import {defineBackend} from '../plugin.js'

/** `--backend scaleway`: a preset of s3 (endpoint https://s3.REGION.scw.cloud). */
export const scalewayBackend = defineBackend({
  name: 'scaleway',
  summary: 'Scaleway Object Storage (preset of s3: endpoint from --region, default fr-par)',
  flags: {},
  uses: [...S3_FAMILY_FLAGS, 'region', 'acl'],
  async create(flags) {
    const region = flags.region ?? 'fr-par'
    return createS3Backend('scaleway', flags, {
      region, endpoint: `https://s3.${region}.scw.cloud`, forcePathStyle: false, acl: flags.acl === 'public-read' ? 'public-read' : undefined,
    })
  },
})
