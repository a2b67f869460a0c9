// reg deploy --backend cloudflare against nock'd R2 and Cloudflare API endpoints: what cannot be
// seen in wrangler dev. The Worker goes up only after every object, a refused token says which
// scopes it needs, 5xx answers are retried, bad flags and credential files are refused before
// any request (and never echo a password). Access control: what each Cloudflare backend refuses, and
// the Worker's policy at its edges (run in this process over a fake R2).
import assert from 'node:assert/strict'
import path from 'node:path'
import {writeFile} from 'node:fs/promises'
import {after, afterEach, before, describe, it} from 'node:test'
import nock from 'nock'
import {basicAuthSecret} from '../plugins/backend-cloudflare/cloudflare-backend.js'
import {workerAccess} from '../plugins/backend-cloudflare/index.js'
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
    // No deploy state yet (the S3 engine's .reg-state.json).
    .get(/\/\.reg-state\.json/).reply(404, '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>no</Message></Error>', {'Content-Type': 'application/xml'})
    .get(/.*/).reply(function () {
      order.push(`R2 GET ${this.req.path}`)
      // a listing of an empty bucket; any object (the S3 engine's deploy state) is not there
      if (!this.req.path.includes('list-type=2')) return [404, '<Error><Code>NoSuchKey</Code></Error>', {'Content-Type': 'application/xml'}]
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
    // The S3 engine's deploy state (the prune grace) is written last, beside the registry: never served.
    const state = 'R2 PUT /registry/.reg-state.json?x-id=PutObject'
    assert.equal(order.at(-1), state, order.join('\n'))
    const served = order.slice(0, -1)
    const firstApiCall = served.findIndex((line) => line.startsWith('API'))
    assert.ok(firstApiCall > 0 && served.slice(firstApiCall).every((line) => line.startsWith('API')), order.join('\n'))
    assert.ok(served.filter((line) => line.startsWith('R2 PUT')).every((line) => line.startsWith('R2 PUT /registry/v2/')), 'every key under the prefix')
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

describe('access control on the Cloudflare backends: what is refused, and the Worker\'s policy where the flags leave gaps', () => {
  let work: string
  let users: string
  const saved = {...process.env}

  before(async () => {
    work = await tempDir()
    users = path.join(work, 'users')
    await writeFile(users, 'alice:correct horse\n')
    process.env.CLOUDFLARE_API_TOKEN = 'tok'
    nock.disableNetConnect()
  })
  after(async () => {
    nock.enableNetConnect()
    process.env = saved
    await removeTempDirs()
  })

  it('cloudflare refuses --auth-file (bcrypt), pointing at --basic-auth; --private needs --basic-auth', async () => {
    const result = await runReg(['deploy', path.join(work, 'none'), '--backend', 'cloudflare', '--account-id', ACCOUNT, '--bucket', 'reg', '--auth-file', users, '--private', 'team/**'])
    assert.equal(result.code, 1)
    assert.ok(result.stderr.includes('--backend cloudflare cannot check the bcrypt hashes of --auth-file: bcrypt costs more CPU than a Worker may spend on a request'), result.stderr)
    assert.ok(result.stderr.includes('give the users as --basic-auth FILE (lines user:password; reg uploads only PBKDF2 hashes of the passwords, as a Worker secret), and the repositories that need them as --private GLOB (without it, the whole registry)'), result.stderr)
    await assert.rejects(BACKENDS.create('cloudflare', {'account-id': ACCOUNT, bucket: 'reg', private: ['team/**']}), (error: Error & {hint?: string}) => {
      assert.equal(error.message, '--private needs --basic-auth FILE on --backend cloudflare')
      assert.match(error.hint ?? '', /a file of user:password lines/)
      return true
    })
    await assert.rejects(BACKENDS.create('cloudflare', {'account-id': ACCOUNT, bucket: 'reg', 'basic-auth': users, private: ['Team/**']}), /--private "Team\/\*\*" is not a glob of repository names/)
  })

  it('cloudflare-pages refuses --auth-file, --private and --basic-auth, saying why and what can', async () => {
    for (const flags of [['--basic-auth', users], ['--private', 'team/**'], ['--auth-file', users]]) {
      const result = await runReg(['deploy', path.join(work, 'none'), '--backend', 'cloudflare-pages', '--project', 'p', '--account-id', ACCOUNT, ...flags])
      assert.equal(result.code, 1, flags.join(' '))
      assert.ok(result.stderr.includes('--backend cloudflare-pages cannot take --auth-file/--private/--basic-auth: Pages serves its files to whoever asks and checks no password'), result.stderr)
      assert.ok(result.stderr.includes('serve private repositories with --backend cloudflare (R2 behind reg\'s Worker: --basic-auth FILE --private GLOB, the users kept as a Worker secret), or with nginx, Apache or reg serve --read-auth'), result.stderr)
    }
  })

  /** The Worker script in this process, over a fake R2 holding team/app and pub/app: the policy's edges without wrangler. */
  async function workerAnswers(env: Record<string, unknown>): Promise<(url: string, credentials?: string) => Promise<Response>> {
    // the script as uploaded (plain JavaScript, no types): by URL
    const worker = (await import(new URL('../plugins/backend-cloudflare/worker.js', import.meta.url).href) as {default: unknown}).default as {fetch(request: Request, env: unknown, ctx: unknown): Promise<Response>}
    const stored = new Map<string, string>([
      ['v2/team/app/manifests/1', '{}'], ['v2/pub/app/manifests/1', '{}'], ['v2/_catalog', JSON.stringify({repositories: ['pub/app', 'team/app']})],
    ])
    const object = (key: string) => {
      const text = stored.get(key)
      return text === undefined ? null : {size: text.length, etag: 'e', httpMetadata: {contentType: 'application/json', cacheControl: 'public, max-age=60'}, customMetadata: {}, body: new Response(text).body, text: async () => text}
    }
    const bucket = {head: async (key: string) => object(key), get: async (key: string) => object(key)}
    const ctx = {waitUntil: () => undefined}
    return (url, credentials) => worker.fetch(new Request(`http://registry.test${url}`, {headers: credentials ? {Authorization: `Basic ${Buffer.from(credentials).toString('base64')}`} : {}}), {REGISTRY: bucket, ...env}, ctx)
  }

  it('the Worker: without --private every repository is private (the catalog lists none anonymously); without REG_ACCESS it fails closed; an overlong name is private', async () => {
    const secret = await basicAuthSecret(users)
    const whole = await workerAnswers({REG_BASIC_AUTH: secret, REG_ACCESS: workerAccess({'basic-auth': users})!.binding})
    assert.equal((await whole('/v2/pub/app/manifests/1')).status, 401)
    assert.equal((await whole('/v2/pub/app/manifests/1', 'alice:correct horse')).status, 200)
    assert.deepEqual(await (await whole('/v2/_catalog')).json(), {repositories: []})
    const closed = await workerAnswers({REG_BASIC_AUTH: secret})
    assert.equal((await closed('/v2/pub/app/manifests/1')).status, 401, 'no REG_ACCESS: every repository private')
    const team = await workerAnswers({REG_BASIC_AUTH: secret, REG_ACCESS: workerAccess({'basic-auth': users, private: ['team/**']})!.binding})
    assert.equal((await team('/v2/pub/app/manifests/1')).status, 200)
    assert.equal((await team('/v2/team/app/manifests/1')).status, 401)
    assert.equal((await team(`/v2/${'a/'.repeat(200)}x/manifests/1`)).status, 401, 'longer than any repository name: not matched, private')
    assert.deepEqual(await (await team('/v2/_catalog')).json(), {repositories: ['pub/app']})
  })
})
