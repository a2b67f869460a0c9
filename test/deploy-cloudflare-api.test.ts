// reg deploy --backend cloudflare against nock'd R2 and Cloudflare API endpoints: what cannot be
// seen in wrangler dev. The Worker goes up only after every object, a refused token says which
// scopes it needs, 5xx answers are retried, bad flags and credential files are refused before
// any request (and never echo a password).
import assert from 'node:assert/strict'
import path from 'node:path'
import {writeFile} from 'node:fs/promises'
import {after, afterEach, before, describe, it} from 'node:test'
import nock from 'nock'
import {BACKENDS} from '../plugins/index.js'
import {deployTree} from '../src/publish/deploy.js'
import {EXAMPLE_LAYOUT, removeTempDirs, runReg, tempDir} from './support.js'

const ACCOUNT = 'acc0unt'
const SCRIPT = `/client/v4/accounts/${ACCOUNT}/workers/scripts/reg-reg`
const EMPTY_LISTING = '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>'

/** Every request in order: R2's (path-style off: ACCOUNT.r2… with the bucket as host) and the API's. */
function fakeCloudflare(scriptAnswers: Array<[number, unknown]>): string[] {
  const order: string[] = []
  nock(`https://reg.${ACCOUNT}.r2.cloudflarestorage.com`).persist()
    .get(/.*/).reply(function () {
      order.push(`R2 GET ${this.req.path}`)
      return [200, EMPTY_LISTING, {'Content-Type': 'application/xml'}]
    })
    .put(/.*/).reply(function () {
      order.push(`R2 PUT ${decodeURIComponent(this.req.path)}`)
      return this.req.headers['x-amz-copy-source'] ? [200, '<CopyObjectResult><ETag>"x"</ETag></CopyObjectResult>'] : [200, '', {ETag: '"x"'}]
    })
  const answers = [...scriptAnswers]
  nock('https://api.cloudflare.com').persist()
    .put(/.*/).reply(function (uri) {
      order.push(`API PUT ${uri}`)
      if (uri === SCRIPT) {
        const [status, body] = answers.shift() ?? [200, {success: true, result: {}}]
        return [status, body]
      }
      return [200, {success: true, result: []}]
    })
    .post(/.*/).reply(function (uri) {
      order.push(`API POST ${uri}`)
      return [200, {success: true, result: {}}]
    })
    .get(/.*/).reply(function (uri) {
      order.push(`API GET ${uri}`)
      return [200, {success: true, result: {subdomain: 'acme'}}]
    })
  return order
}

describe('reg deploy --backend cloudflare: the Cloudflare API', () => {
  let tree: string
  const saved = {...process.env}

  before(async () => {
    tree = path.join(await tempDir(), 'tree')
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}=team/app:1`, '-o', tree])).code, 0)
    Object.assign(process.env, {AWS_ACCESS_KEY_ID: 'r2-key', AWS_SECRET_ACCESS_KEY: 'r2-secret', CLOUDFLARE_API_TOKEN: 'tok'})
    delete process.env.AWS_PROFILE
    delete process.env.CLOUDFLARE_API_BASE_URL
    nock.disableNetConnect()
  })
  afterEach(() => nock.cleanAll())
  after(async () => {
    nock.enableNetConnect()
    process.env = saved
    await removeTempDirs()
  })

  it('the Worker goes up after every object; every key is under --key-prefix', async () => {
    const order = fakeCloudflare([])
    const report = await deployTree(tree, await BACKENDS.create('cloudflare', {'account-id': ACCOUNT, bucket: 'reg', 'key-prefix': 'registry'}))
    const firstApiCall = order.findIndex((line) => line.startsWith('API'))
    assert.ok(firstApiCall > 0 && order.slice(firstApiCall).every((line) => line.startsWith('API')), order.join('\n'))
    assert.ok(order.filter((line) => line.startsWith('R2 PUT')).every((line) => line.startsWith('R2 PUT /registry/v2/')), 'every key under the prefix')
    assert.equal(report.host?.url, 'https://reg-reg.acme.workers.dev')
  })

  it('a refused token: says which scopes it needs; routes are not touched', async () => {
    const order = fakeCloudflare([[403, {success: false, errors: [{code: 10000, message: 'Authentication error'}]}]])
    await assert.rejects(deployTree(tree, await BACKENDS.create('cloudflare', {'account-id': ACCOUNT, bucket: 'reg'}), {retries: 0}), (error: Error & {hint?: string}) => {
      assert.match(error.message, /Cloudflare refused the token when asked to upload the Worker \(403: Authentication error \(code 10000\)\)/)
      assert.match(error.hint ?? '', /Workers Scripts: Edit/)
      return true
    })
    assert.ok(!order.some((line) => line.endsWith('/routes')))
  })

  it('a 5xx answer is tried again', async () => {
    const order = fakeCloudflare([[503, {success: false, errors: [{code: 10013, message: 'try later'}]}]])
    await deployTree(tree, await BACKENDS.create('cloudflare', {'account-id': ACCOUNT, bucket: 'reg', retries: 2}))
    assert.equal(order.filter((line) => line === `API PUT ${SCRIPT}`).length, 2)
  })

  it('flags and files refused before any request, without echoing a password', async () => {
    const work = await tempDir()
    const users = path.join(work, 'users')
    await writeFile(users, 'good:pass\nno-colon-secret-word\n')
    const refuse = async (flags: Record<string, unknown>, pattern: RegExp) => {
      await assert.rejects(BACKENDS.create('cloudflare', {'account-id': ACCOUNT, bucket: 'reg', ...flags}), (error: Error & {hint?: string}) => {
        assert.match(error.message, pattern)
        assert.ok(!`${error.message} ${error.hint}`.includes('secret-word'))
        return true
      })
    }
    await refuse({'basic-auth': users}, /line 2 is not user:password/)
    await refuse({route: 'https://registry.example.com/*'}, /is not a route pattern/)
    await refuse({worker: 'Bad Name'}, /is not a Worker name/)
    await refuse({'account-id': undefined}, /needs --account-id/)
    await refuse({dedupe: 'redirect'}, /no website redirects/)
    delete process.env.CLOUDFLARE_API_TOKEN
    await refuse({}, /needs a Cloudflare API token/)
    process.env.CLOUDFLARE_API_TOKEN = 'tok'
  })
})
