// What s3rver cannot show: the request shapes of the R2 and Scaleway presets, and AWS's own error
// answers. nock stands in for those cloud endpoints only; everything else runs against s3rver.
import assert from 'node:assert/strict'
import path from 'node:path'
import {after, afterEach, before, describe, it} from 'node:test'
import {ListObjectsV2Command, type S3Client} from '@aws-sdk/client-s3'
import nock from 'nock'
import {partSizeFor} from '../plugins/backend-s3/s3-backend.js'
import {BACKENDS} from '../plugins/index.js'
import {s3Backend} from '../plugins/backend-s3/index.js'
import {scalewayBackend} from '../plugins/backend-scaleway/index.js'
import {deployTree} from '../src/publish/deploy.js'
import {freePort} from './static-hosts.js'
import {S3_BUCKET, S3_CREDENTIALS, startS3rver} from './s3rver.js'
import {EXAMPLE_LAYOUT, removeTempDirs, runReg, tempDir} from './support.js'

const EMPTY_LISTING = '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>'

function s3Error(code: string, message: string, extra = ''): string {
  return `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message>${extra}</Error>`
}

interface Recorded {
  method: string
  path: string
  headers: Record<string, string | string[] | undefined>
}

/** Answer a whole deploy for `origin`: an empty listing, then every PUT/COPY; record each request. */
function fakeBucket(origin: string): Recorded[] {
  const recorded: Recorded[] = []
  nock(origin).persist()
    // No deploy state yet (the bucket is new).
    .get(/\/\.reg-state\.json/).reply(404, s3Error('NoSuchKey', 'The specified key does not exist.'), {'Content-Type': 'application/xml'})
    .get(/.*/).reply(function () {
      recorded.push({method: 'GET', path: this.req.path, headers: this.req.headers})
      return [200, EMPTY_LISTING, {'Content-Type': 'application/xml'}]
    })
    .put(/.*/).reply(function () {
      recorded.push({method: 'PUT', path: this.req.path, headers: this.req.headers})
      const copy = this.req.headers['x-amz-copy-source']
      return copy ? [200, '<CopyObjectResult><ETag>"x"</ETag></CopyObjectResult>'] : [200, '', {ETag: '"x"'}]
    })
  return recorded
}

describe('S3 presets and cloud errors', () => {
  let tree: string
  const saved = {...process.env}

  before(async () => {
    tree = path.join(await tempDir(), 'tree')
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, `oci:${EXAMPLE_LAYOUT}=team/app:1`, '-o', tree])).code, 0)
    Object.assign(process.env, {AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret'})
    delete process.env.AWS_PROFILE
    nock.disableNetConnect()
  })
  afterEach(() => nock.cleanAll())
  after(async () => {
    nock.enableNetConnect()
    process.env = saved
    await removeTempDirs()
  })

  it('r2 signs for region auto at ACCOUNT.r2.cloudflarestorage.com, sends no ACL and no streaming checksums', async () => {
    const recorded = fakeBucket('https://reg.acc0unt.r2.cloudflarestorage.com')
    // --acl is not r2's, but reg deploy hands every flag to the backend: it must still send none.
    const backend = await BACKENDS.create('r2', {'account-id': 'acc0unt', bucket: 'reg', acl: 'public-read'})
    const report = await deployTree(tree, backend)
    assert.ok(report.result!.uploaded > 0 && report.result!.copied > 0)
    // The objects; the bucket's CORS configuration is a request whose checksum S3 requires.
    const puts = recorded.filter((r) => r.method === 'PUT' && !/[?&]cors/.test(r.path))
    assert.ok(puts.length > 0)
    assert.equal(recorded.filter((r) => r.method === 'PUT' && /[?&]cors/.test(r.path)).length, 1, 'the bucket CORS configuration, set once')
    for (const put of puts) {
      assert.match(String(put.headers.authorization), /\/auto\/s3\/aws4_request/)
      assert.equal(put.headers['x-amz-acl'], undefined, 'R2 has no ACLs')
      assert.equal(put.headers['content-encoding'], undefined, 'no aws-chunked framing')
      assert.ok(!Object.keys(put.headers).some((h) => h.startsWith('x-amz-checksum-')), 'checksums only when required')
      assert.ok(put.headers['cache-control'])
    }
    assert.ok(puts.some((p) => p.headers['x-amz-copy-source'] && p.headers['x-amz-metadata-directive'] === 'REPLACE'), 'blobs of the second repository are copied server-side')
  })

  it('scaleway signs for its region at s3.REGION.scw.cloud', async () => {
    const recorded = fakeBucket('https://reg.s3.nl-ams.scw.cloud')
    await deployTree(tree, await scalewayBackend.create({bucket: 'reg', region: 'nl-ams'}))
    assert.ok(recorded.some((r) => r.method === 'PUT'))
    for (const r of recorded) assert.match(String(r.headers.authorization), /\/nl-ams\/s3\/aws4_request/)
  })

  it('a 50 GB layer stays under Scaleway\'s 1,000 parts', () => {
    const size = 50 * 1000 ** 3
    assert.ok(Math.ceil(size / partSizeFor(size)) < 1000)
    assert.ok(partSizeFor(1) >= 5 * 1024 * 1024, 'never below the S3 minimum part size')
  })

  it('AccessControlListNotSupported: says to use --acl none and prints the bucket policy', async () => {
    nock('https://reg.s3.eu-west-1.amazonaws.com').persist()
      .get(/\/\.reg-state\.json/).reply(404, s3Error('NoSuchKey', 'The specified key does not exist.'))
      .get(/.*/).reply(200, EMPTY_LISTING)
      .put(/.*/).reply(400, s3Error('AccessControlListNotSupported', 'The bucket does not allow ACLs'))
    await assert.rejects(deployTree(tree, await s3Backend.create({bucket: 'reg', region: 'eu-west-1', acl: 'public-read'}), {retries: 0}), (error: Error & {hint?: string}) => {
      assert.match(error.message, /refuses ACLs/)
      assert.match(error.hint ?? '', /--acl none/)
      assert.match(error.hint ?? '', /"Action": "s3:GetObject"/)
      assert.match(error.hint ?? '', /arn:aws:s3:::reg\/\*/)
      return true
    })
  })

  it('SlowDown with Retry-After: one request per try (no SDK retries under reg\'s), and the delay S3 asked for', async () => {
    let requests = 0
    nock('https://reg.s3.us-east-1.amazonaws.com').persist().get(/.*/).reply(() => {
      requests++
      return [503, s3Error('SlowDown', 'Please reduce your request rate.'), {'Retry-After': '0'}]
    })
    const backend = await s3Backend.create({bucket: 'reg', region: 'us-east-1'})
    await assert.rejects(deployTree(tree, backend, {retries: 1}), /Please reduce your request rate/)
    assert.equal(requests, 2, 'the listing and its one retry: the SDK does not retry on its own')
    const error = await (backend as unknown as {client: S3Client}).client.send(new ListObjectsV2Command({Bucket: 'reg'})).catch((e: unknown) => e)
    assert.deepEqual(backend.retryVerdict?.(error), {retry: true, afterMs: 0})
  })

  it('AccessDenied: names the credential source', async () => {
    nock('https://reg.s3.us-east-1.amazonaws.com').get(/.*/).reply(403, s3Error('AccessDenied', 'Access Denied'))
    await assert.rejects(deployTree(tree, await s3Backend.create({bucket: 'reg', region: 'us-east-1'})), /access denied with credentials from the environment \(AWS_ACCESS_KEY_ID\)/)
  })

  it('a bucket in another region: says which', async () => {
    nock('https://reg.s3.us-east-1.amazonaws.com').get(/.*/).reply(301, s3Error('PermanentRedirect', 'The bucket is in this region: eu-central-1.', '<Endpoint>reg.s3.eu-central-1.amazonaws.com</Endpoint><Bucket>reg</Bucket>'), {'x-amz-bucket-region': 'eu-central-1'})
    await assert.rejects(deployTree(tree, await s3Backend.create({bucket: 'reg', region: 'us-east-1'})), (error: Error & {hint?: string}) => {
      assert.match(error.message, /another region \(eu-central-1\)/)
      assert.match(error.hint ?? '', /--region eu-central-1/)
      return true
    })
  })
})

describe('S3 errors from a real server', () => {
  after(removeTempDirs)

  it('a missing bucket and an unreachable endpoint get clear errors', async () => {
    const work = await tempDir()
    const tree = path.join(work, 'tree')
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '-o', tree])).code, 0)
    const s3 = await startS3rver(path.join(work, 's3rver'), await freePort())
    try {
      const missing = await runReg(['deploy', tree, '--backend', 's3', '--bucket', 'no-such-bucket', '--endpoint', s3.endpoint, '--force-path-style'], {env: S3_CREDENTIALS})
      assert.notEqual(missing.code, 0)
      assert.match(missing.stderr, /bucket no-such-bucket does not exist/)
    } finally {
      await s3.stop()
    }
    const closed = await freePort()
    const unreachable = await runReg(['deploy', tree, '--backend', 's3', '--bucket', S3_BUCKET, '--endpoint', `http://127.0.0.1:${closed}`, '--force-path-style'], {env: S3_CREDENTIALS})
    assert.notEqual(unreachable.code, 0)
    assert.match(unreachable.stderr, new RegExp(`http://127.0.0.1:${closed} is unreachable \\(ECONNREFUSED\\)`))
  })
})
