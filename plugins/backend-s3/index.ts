import {Flags} from '@oclif/core'
import type {StorageClass} from '@aws-sdk/client-s3'
import {parseCorsOrigin} from '../../src/core/cors.js'
import {RegError} from '../../src/core/errors.js'
import type {Backend} from '../../src/publish/backend.js'
import {type BackendFlags, defineBackend} from '../plugin.js'
import type {S3Settings} from './s3-backend.js'

/** The shared flags every S3-family backend reads (s3 and its presets, r2 and scaleway). */
export const S3_FAMILY_FLAGS = ['bucket', 'key-prefix', 'storage-class', 'dedupe', 'checksums', 'cors', 'auth-file', 'private'] as const

/**
 * The bucket policy that makes a bucket a public registry where ACLs are refused. `s3:ListBucket`
 * too: without it, S3 answers 403 instead of 404 for a key that does not exist (it will not say
 * whether a key exists to whom may not list), and clients read 403 as "denied", not "not found":
 * the referrers tag lookup, containerd's fallback to the next host and `docker pull` of a missing
 * tag all break. It also lets anyone list the bucket's keys: keep nothing private in it.
 */
export function publicReadPolicy(bucket: string): object {
  return {
    Version: '2012-10-17',
    Statement: [
      {Sid: 'PublicRead', Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/*`},
      {Sid: 'PublicListSoMissingKeysAre404', Effect: 'Allow', Principal: '*', Action: 's3:ListBucket', Resource: `arn:aws:s3:::${bucket}`},
    ],
  }
}

/** A bucket answers every request it is allowed to: access control is refused, with what can do it instead. */
export function refuseAccessControl(provider: string, flags: {'auth-file'?: string; private?: string[]}): void {
  if (flags['auth-file'] === undefined && !flags.private?.length) return
  throw new RegError(
    `--backend ${provider} cannot enforce --auth-file/--private: a bucket serves each object to whoever may read it and checks no passwords, so private repositories would be public`,
    'put the Cloudflare Worker backend in front of the bucket (--backend cloudflare --basic-auth FILE --private GLOB: it checks users kept as a Worker secret), or deploy to nginx, Apache or reg serve --read-auth. CloudFront signed cookies or signed URLs are no alternative: docker, podman, skopeo and containerd send neither',
    'AUTH_UNSUPPORTED',
  )
}

function keyPrefix(value: string | undefined): string {
  const prefix = value ? value.replace(/^\/+/, '') : ''
  return prefix && !prefix.endsWith('/') ? `${prefix}/` : prefix
}

type Where = Pick<S3Settings, 'region' | 'endpoint' | 'forcePathStyle' | 'acl'>

/** An S3-family backend from the flags the family shares and where its provider is. Loads the AWS SDK. */
export async function createS3Backend(provider: string, flags: BackendFlags<object, (typeof S3_FAMILY_FLAGS)[number]>, where: Where): Promise<Backend> {
  refuseAccessControl(provider, flags)
  if (!flags.bucket) throw new RegError(`--backend ${provider} needs --bucket NAME`, `e.g. reg deploy ./dist --backend ${provider} --bucket my-registry (the bucket must exist)`)
  const cors = parseCorsOrigin(flags.cors)
  const {S3Backend} = await import('./s3-backend.js')
  return new S3Backend({
    provider,
    bucket: flags.bucket,
    keyPrefix: keyPrefix(flags['key-prefix']),
    storageClass: flags['storage-class'] as StorageClass | undefined,
    checksums: flags.checksums === 'when-supported' ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED',
    dedupe: flags.dedupe ?? 'copy',
    cors,
    ...where,
  })
}

/** `--endpoint` is a URL with its scheme: `127.0.0.1:9000` is not (and `localhost:9000` parses as scheme `localhost:`). */
export function checkEndpoint(endpoint: string): void {
  let url: URL | undefined
  try {
    url = new URL(endpoint)
  } catch {}
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:') {
    throw new RegError(`--endpoint ${JSON.stringify(endpoint)} is not an http:// or https:// URL`, 'write it as http://HOST:PORT (or https://HOST), e.g. --endpoint http://127.0.0.1:9000')
  }
}

/** `--backend s3`: AWS S3 or any S3-compatible endpoint. Credentials: the AWS default chain only. */
export const s3Backend = defineBackend({
  name: 's3',
  summary: 'AWS S3 or any S3-compatible store (every URL an object; blobs copied server-side)',
  flags: {
    endpoint: Flags.string({description: 'endpoint URL of an S3-compatible store', helpGroup: 'S3, R2, SCALEWAY'}),
    'force-path-style': Flags.boolean({description: 'path-style requests (most S3-compatible servers)', helpGroup: 'S3, R2, SCALEWAY'}),
  },
  uses: [...S3_FAMILY_FLAGS, 'region', 'acl'],
  async create(flags) {
    if (flags.endpoint !== undefined) checkEndpoint(flags.endpoint)
    return createS3Backend('s3', flags, {
      region: flags.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      endpoint: flags.endpoint,
      forcePathStyle: Boolean(flags['force-path-style']),
      acl: flags.acl === 'public-read' ? 'public-read' : undefined,
    })
  },
})
