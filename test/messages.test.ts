// What a new user sees when something is wrong: the exit code, what went wrong and what to type,
// each asserted by its exact text.
import assert from 'node:assert/strict'
import {mkdir, writeFile} from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import {before, describe, it} from 'node:test'
import {daemonNameMatches} from '../src/sources/daemon/daemon-source.js'
import {globToRegExp} from '../src/sources/registry/registry-source.js'
import {freePort} from './static-hosts.js'
import {EXAMPLE_LAYOUT, type RunResult, runReg, tempDir} from './support.js'

/** The error lines reg prints (after any warnings), exactly. */
function assertError(result: RunResult, code: number, message: string, hint?: string): void {
  const expected = `reg: error: ${message}\n${hint === undefined ? '' : `  hint: ${hint}\n`}`
  assert.ok(result.stderr.endsWith(expected), `stderr ends with:\n${expected}\nbut is:\n${result.stderr}`)
  assert.equal(result.code, code)
}

/** No AWS credentials anywhere the default chain looks (environment, files, instance metadata). */
function withoutAwsCredentials(home: string): NodeJS.ProcessEnv {
  return {
    AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined,
    AWS_WEB_IDENTITY_TOKEN_FILE: undefined, AWS_ROLE_ARN: undefined, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined,
    AWS_CONTAINER_CREDENTIALS_FULL_URI: undefined, AWS_EC2_METADATA_DISABLED: 'true', HOME: home,
    AWS_CONFIG_FILE: path.join(home, 'no-config'), AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'no-credentials'),
  }
}

describe('messages that say what to do', () => {
  let work: string
  let tree: string

  before(async () => {
    work = await tempDir()
    tree = path.join(work, 'tree')
    const built = await runReg(['build', `oci:${EXAMPLE_LAYOUT}=examples/hello:1`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
  })

  it('Netlify API unreachable: where, what, how often it was tried', async () => {
    const port = await freePort()
    const apiUrl = `http://127.0.0.1:${port}/api/v1`
    const result = await runReg(['deploy', tree, '--backend', 'netlify', '--site', 'my-site', '--api-url', apiUrl, '--retries', '1'], {env: {NETLIFY_AUTH_TOKEN: 'token'}})
    assertError(result, 1, `cannot reach the Netlify API at ${apiUrl} to read the site (ECONNREFUSED; tried 2 times)`,
      'check the network and try again; --api-url (or NETLIFY_API_URL) says where the API is, --retries how often to try')
  })

  it('Netlify API failing with 503: reading the site is retried under the retry policy', async () => {
    let requests = 0
    const server = http.createServer((req, res) => {
      requests++
      res.writeHead(503, {'content-type': 'application/json'}).end(JSON.stringify({code: 503, message: 'unavailable'}))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const apiUrl = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/api/v1`
      const result = await runReg(['deploy', tree, '--backend', 'netlify', '--site', 'my-site', '--api-url', apiUrl, '--retries', '2'], {env: {NETLIFY_AUTH_TOKEN: 'token'}})
      assertError(result, 1, 'Netlify answered 503 when asked to read the site: unavailable', 'tried 3 times; try again later (--retries sets how often)')
      assert.equal(requests, 3)
    } finally {
      server.close()
    }
  })

  const credentialHints: Record<string, {flags: string[]; hint: string}> = {
    s3: {
      flags: ['--bucket', 'b', '--endpoint', 'http://127.0.0.1:1'],
      hint: 'export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE=NAME for a profile of ~/.aws/config (aws sso login for SSO); in GitHub Actions, add the step aws-actions/configure-aws-credentials with role-to-assume (OIDC) and `permissions: id-token: write`',
    },
    r2: {
      flags: ['--bucket', 'b', '--account-id', '0123456789abcdef'],
      hint: 'export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to the Access Key ID and Secret Access Key of an R2 API token (Cloudflare dashboard → R2 → Manage API tokens); in GitHub Actions, pass them from secrets in env:',
    },
    scaleway: {
      flags: ['--bucket', 'b'],
      hint: 'export AWS_ACCESS_KEY_ID=$SCW_ACCESS_KEY and AWS_SECRET_ACCESS_KEY=$SCW_SECRET_KEY (a Scaleway API key: Console → IAM → API keys); in GitHub Actions, pass them from secrets in env:',
    },
  }
  for (const [backend, {flags, hint}] of Object.entries(credentialHints)) {
    it(`--backend ${backend} without credentials: none found, and the variables to set`, async () => {
      const result = await runReg(['deploy', tree, '--backend', backend, ...flags, '--retries', '0'], {env: withoutAwsCredentials(work)})
      assertError(result, 1, `${backend} bucket b: no credentials found (the AWS default credential chain found none)`, hint)
    })
  }

  it('--endpoint without a scheme: the flag and the form it takes', async () => {
    const result = await runReg(['deploy', tree, '--backend', 's3', '--bucket', 'b', '--endpoint', '127.0.0.1:1'])
    assertError(result, 1, '--endpoint "127.0.0.1:1" is not an http:// or https:// URL', 'write it as http://HOST:PORT (or https://HOST), e.g. --endpoint http://127.0.0.1:9000')
  })

  it('--backend s3 without --bucket: an example of the command', async () => {
    const result = await runReg(['deploy', tree, '--backend', 's3'])
    assertError(result, 1, '--backend s3 needs --bucket NAME', 'e.g. reg deploy ./dist --backend s3 --bucket my-registry (the bucket must exist)')
  })

  it('--listen notaport is refused before anything is written', async () => {
    const dest = path.join(work, 'nginx')
    const result = await runReg(['deploy', tree, '--backend', 'nginx', '--dest', dest, '--listen', 'notaport'])
    assertError(result, 1, '--listen "notaport" is not a port or ADDRESS:PORT', 'e.g. --listen 8080, --listen 127.0.0.1:8080, --listen [::]:8080 or --listen unix:/run/registry.sock')
    for (const accepted of ['8080', '127.0.0.1:8080', '[::]:8080', '*:80']) {
      const ok = await runReg(['deploy', tree, '--backend', 'nginx', '--dest', path.join(work, `nginx-${accepted.replace(/\W/g, '')}`), '--listen', accepted])
      assert.equal(ok.code, 0, `--listen ${accepted}: ${ok.stderr}`)
    }
    const injected = await runReg(['deploy', tree, '--backend', 'nginx', '--dest', dest, '--listen', '80; include /etc/passwd'])
    assert.equal(injected.code, 1)
  })

  it('flags of another backend are refused: they do not apply', async () => {
    const one = await runReg(['deploy', tree, '--backend', 'dir', '--dest', path.join(work, 'dir'), '--bucket', 'b'])
    assertError(one, 1, '--bucket does not apply to --backend dir', '--backend dir reads --dest; drop --bucket, or choose the backend it belongs to')
    const two = await runReg(['deploy', tree, '--backend', 's3', '--bucket', 'b', '--site', 's', '--listen', '80'])
    assertError(two, 1, '--site, --listen do not apply to --backend s3',
      '--backend s3 reads --endpoint, --force-path-style, --bucket, --key-prefix, --storage-class, --dedupe, --checksums, --cors, --auth-file, --private, --region, --acl; drop --site, --listen, or choose the backend they belong to')

    // The backend may come from a config target instead of --backend: the same refusal.
    await writeFile(path.join(work, 'reg.config.json'), JSON.stringify({targets: {local: {backend: 'dir', dest: 'public'}}}))
    const three = await runReg(['deploy', tree, '--config', path.join(work, 'reg.config.json'), '--target', 'local', '--bucket', 'b'])
    assertError(three, 1, '--bucket does not apply to --backend dir', '--backend dir reads --dest; drop --bucket, or choose the backend it belongs to')
  })

  it('port in use: -p, and PORT for npm start', async () => {
    const busy = net.createServer()
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
    try {
      const port = (busy.address() as net.AddressInfo).port
      const result = await runReg(['serve', tree, '-p', String(port)])
      assertError(result, 1, `port ${port} on 127.0.0.1 is in use by another program`, `pick another port: reg serve ${tree} -p 5001 (for npm start: PORT=5001 npm start)`)
    } finally {
      busy.close()
    }
  })

  it('a bare local path as a source: the transport that reads it', async () => {
    const layout = path.relative(process.cwd(), EXAMPLE_LAYOUT)
    const bare = await runReg(['build', layout, '-o', path.join(work, 'out')])
    assertError(bare, 1, `source "${layout}": no transport given`, `${layout} is an OCI layout: write oci:${layout}`)
    const tar = path.join(work, 'image.tar')
    await writeFile(tar, '')
    assertError(await runReg(['build', tar, '-o', path.join(work, 'out')]), 1, `source "${tar}": no transport given`,
      `${tar} is a file: write docker-archive:${tar} for a \`docker save\` tar, or oci-archive:${tar} for an OCI layout in a tar`)
    const skopeoDir = path.join(work, 'skopeo-dir')
    await mkdir(skopeoDir)
    await writeFile(path.join(skopeoDir, 'manifest.json'), '{}')
    assertError(await runReg(['build', skopeoDir, '-o', path.join(work, 'out')]), 1, `source "${skopeoDir}": no transport given`,
      `${skopeoDir} looks like a skopeo dir: write dir:${skopeoDir}=NAME:TAG`)
  })

  it('an unknown transport: the hint spells docker://', async () => {
    const result = await runReg(['build', 'ftp://example.com/x', '-o', path.join(work, 'out')])
    assertError(result, 1, 'source "ftp://example.com/x": unknown transport "ftp"', 'write SOURCE as TRANSPORT:LOCATION with one of oci:, oci-archive:, docker-archive:, dir:, docker://, docker-daemon:')
  })

})

describe('docker-daemon: patterns', () => {
  it('match the name without its registry host, as it is published', () => {
    const pattern = globToRegExp('examples/*')
    assert.equal(daemonNameMatches(pattern, '127.0.0.1:5000/examples/hello'), true)
    assert.equal(daemonNameMatches(pattern, 'registry.example.com/examples/hello'), true)
    assert.equal(daemonNameMatches(pattern, 'localhost/examples/hello'), true)
    assert.equal(daemonNameMatches(pattern, 'examples/hello'), true)
    assert.equal(daemonNameMatches(pattern, '127.0.0.1:5000/other/hello'), false)
    assert.equal(daemonNameMatches(globToRegExp('127.0.0.1:5000/examples/*'), '127.0.0.1:5000/examples/hello'), true)
    assert.equal(daemonNameMatches(globToRegExp('alpine'), 'docker.io/library/alpine'), true)
  })
})
