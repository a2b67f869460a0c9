import {Flags} from '@oclif/core'

/**
 * Flags that several backends read, each declared once here. A backend names the ones it uses
 * (`uses`); help and the config schema tell which backends those are. A flag only one backend reads
 * is that backend's own.
 */
/** `--cors`, of `reg deploy` (hosts that can send CORS headers) and `reg serve`: one definition. */
export const CORS_FLAG = Flags.string({description: 'which web origin may read the registry from a browser: "*" (default: the registry is anonymous), one origin https://HOST[:PORT], or off', helpGroup: 'CORS'})

export const SHARED_FLAGS = {
  dest: Flags.string({description: 'directory to write the files to serve into', helpGroup: 'FILE BACKENDS'}),
  bucket: Flags.string({description: 'bucket', helpGroup: 'S3, R2, SCALEWAY'}),
  region: Flags.string({description: 'region (s3: AWS_REGION or us-east-1; scaleway: fr-par)', helpGroup: 'S3, R2, SCALEWAY'}),
  'key-prefix': Flags.string({description: 'prefix of every key (the registry must still be served at /v2/)', helpGroup: 'S3, R2, SCALEWAY'}),
  acl: Flags.option({description: 'canned ACL for every object (new AWS buckets refuse ACLs: use none and a bucket policy)', options: ['public-read', 'none'] as const, default: 'none' as const, helpGroup: 'S3, R2, SCALEWAY'})(),
  'storage-class': Flags.string({description: 'storage class, e.g. STANDARD, INTELLIGENT_TIERING', helpGroup: 'S3, R2, SCALEWAY'}),
  dedupe: Flags.option({description: 'one copy of each blob: server-side CopyObject per repository (copy), one shared object and website redirects (redirect: S3 website endpoints only), or upload again (none)', options: ['copy', 'redirect', 'none'] as const, default: 'copy' as const, helpGroup: 'S3, R2, SCALEWAY'})(),
  'account-id': Flags.string({description: 'Cloudflare account ID (dashboard → Workers & Pages or R2 overview)', helpGroup: 'CLOUDFLARE'}),
  'api-token': Flags.string({description: 'Cloudflare API token (default: CLOUDFLARE_API_TOKEN; prefer the environment)', helpGroup: 'CLOUDFLARE'}),
  cors: CORS_FLAG,
  checksums: Flags.option({description: 'SDK request/response checksums (when-supported breaks R2 and some S3-compatible servers)', options: ['when-required', 'when-supported'] as const, default: 'when-required' as const, helpGroup: 'S3, R2, SCALEWAY'})(),
  'auth-file': Flags.string({description: 'htpasswd file of the users who may read private repositories (bcrypt only: htpasswd -B); the host gets a copy outside the served files. Enforced by nginx and apache; the S3 family, netlify and the cloudflare backends refuse it, saying why (cloudflare: use --basic-auth)', helpGroup: 'ACCESS CONTROL'}),
  'basic-auth': Flags.string({description: 'file of user:password lines: the users who may read the private repositories (--private, else all of them), checked by the cloudflare Worker (reg uploads PBKDF2 hashes of the passwords as a Worker secret: bcrypt costs more CPU than a Worker may spend); cloudflare-pages refuses it, saying why', helpGroup: 'ACCESS CONTROL'}),
  private: Flags.string({description: 'repositories that need credentials, a glob of names (team/**, *: any characters but /, **: any); repeatable; without it, with --auth-file, the whole registry', multiple: true, helpGroup: 'ACCESS CONTROL'}),
}
