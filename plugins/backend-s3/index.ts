import {Flags} from '@oclif/core'
import type {ObjectCannedACL, StorageClass} from '@aws-sdk/client-s3'
import {RegError} from '../../src/core/errors.js'
import type {BackendPlugin} from '../../src/publish/plugin.js'
import {S3Backend, type S3Settings} from './s3-backend.js'

const group = 'S3, R2, SCALEWAY'

function keyPrefix(value: unknown): string {
  const prefix = typeof value === 'string' ? value.replace(/^\/+/, '') : ''
  return prefix && !prefix.endsWith('/') ? `${prefix}/` : prefix
}

function common(flags: Record<string, unknown>, provider: string): Omit<S3Settings, 'region' | 'endpoint' | 'forcePathStyle' | 'acl'> {
  if (typeof flags.bucket !== 'string' || !flags.bucket) throw new RegError(`--backend ${provider} needs --bucket NAME`)
  return {
    provider,
    bucket: flags.bucket,
    keyPrefix: keyPrefix(flags['key-prefix']),
    storageClass: flags['storage-class'] as StorageClass | undefined,
    checksums: flags.checksums === 'when-supported' ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED',
    dedupe: flags.dedupe === 'none' || flags.dedupe === 'redirect' ? flags.dedupe : 'copy',
  }
}

/** `--backend s3`: AWS S3 or any S3-compatible endpoint. Credentials: the AWS default chain only. */
export const s3Backend: BackendPlugin = {
  name: 's3',
  summary: 'AWS S3 or any S3-compatible store (every URL an object; blobs copied server-side)',
  flags: {
    bucket: Flags.string({description: '[s3, r2, scaleway] bucket', helpGroup: group}),
    region: Flags.string({description: '[s3, scaleway] region (s3: AWS_REGION or us-east-1; scaleway: fr-par)', helpGroup: group}),
    endpoint: Flags.string({description: '[s3] endpoint URL of an S3-compatible store', helpGroup: group}),
    'key-prefix': Flags.string({description: '[s3, r2, scaleway] prefix of every key (the registry must still be served at /v2/)', helpGroup: group}),
    acl: Flags.string({description: '[s3, scaleway] canned ACL for every object (new AWS buckets refuse ACLs: use none and a bucket policy)', options: ['public-read', 'none'], default: 'none', helpGroup: group}),
    'force-path-style': Flags.boolean({description: '[s3] path-style requests (most S3-compatible servers)', helpGroup: group}),
    'storage-class': Flags.string({description: '[s3, scaleway] storage class, e.g. STANDARD, INTELLIGENT_TIERING', helpGroup: group}),
    dedupe: Flags.string({description: '[s3, r2, scaleway] one copy of each blob: server-side CopyObject per repository (copy), one shared object and website redirects (redirect: S3 website endpoints only), or upload again (none)', options: ['copy', 'redirect', 'none'], default: 'copy', helpGroup: group}),
    checksums: Flags.string({description: '[s3, r2, scaleway] SDK request/response checksums (when-supported breaks R2 and some S3-compatible servers)', options: ['when-required', 'when-supported'], default: 'when-required', helpGroup: group}),
    'account-id': Flags.string({description: '[r2] Cloudflare account ID (endpoint https://ID.r2.cloudflarestorage.com)', helpGroup: group}),
  },
  create(flags) {
    return new S3Backend({
      ...common(flags, 's3'),
      region: typeof flags.region === 'string' ? flags.region : process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      endpoint: typeof flags.endpoint === 'string' ? flags.endpoint : undefined,
      forcePathStyle: Boolean(flags['force-path-style']),
      acl: flags.acl === 'public-read' ? 'public-read' as ObjectCannedACL : undefined,
    })
  },
}

/** `--backend r2`: a preset of s3. R2 has no ACLs and no website redirects. */
export const r2Backend: BackendPlugin = {
  name: 'r2',
  summary: 'Cloudflare R2 (preset of s3: endpoint from --account-id, region auto, no ACLs)',
  flags: {},
  create(flags) {
    if (typeof flags['account-id'] !== 'string') throw new RegError('--backend r2 needs --account-id ID', 'find it in the Cloudflare dashboard, R2 overview')
    if (flags.dedupe === 'redirect') throw new RegError('R2 has no website redirects', 'use --dedupe copy (the default)')
    return new S3Backend({...common(flags, 'r2'), region: 'auto', endpoint: `https://${flags['account-id']}.r2.cloudflarestorage.com`, forcePathStyle: false, acl: undefined})
  },
}

/** `--backend scaleway`: a preset of s3 (endpoint https://s3.REGION.scw.cloud). */
export const scalewayBackend: BackendPlugin = {
  name: 'scaleway',
  summary: 'Scaleway Object Storage (preset of s3: endpoint from --region, default fr-par)',
  flags: {},
  create(flags) {
    const region = typeof flags.region === 'string' ? flags.region : 'fr-par'
    return new S3Backend({
      ...common(flags, 'scaleway'), region, endpoint: `https://s3.${region}.scw.cloud`, forcePathStyle: false,
      acl: flags.acl === 'public-read' ? 'public-read' as ObjectCannedACL : undefined,
    })
  },
}
