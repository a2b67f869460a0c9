// Access control flags: hosts that cannot enforce them refuse them with the reason and the
// alternatives; the htpasswd is bcrypt only (refused by line, never shown); globs mean what they
// say; a config target carries `auth-file` (relative to the file) and `private` (a list).
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import fc from 'fast-check'
import {accessPolicy, privateOnlyDigests, privatePatternRegex} from '../src/config/access.js'
import {basicCredentials} from '../src/server/read-auth.js'
import type {RegistryObject} from '../src/tree/model.js'
import {writeHtpasswd} from './distribution.js'
import {requireTool} from './static-hosts.js'
import {EXAMPLE_LAYOUT, removeTempDirs, runReg, startServe, tempDir} from './support.js'

describe('access control: flags, refusals, htpasswd, globs', () => {
  let work: string
  let tree: string
  let htpasswd: string

  before(async () => {
    requireTool('htpasswd')
    work = await tempDir()
    tree = path.join(work, 'tree')
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}=team/app:1`, `oci:${EXAMPLE_LAYOUT}=pub/app:1`, '-o', tree])).code, 0)
    htpasswd = await writeHtpasswd(path.join(work, 'users.htpasswd'), 'alice', 'pw')
  })
  after(() => removeTempDirs())

  it('S3, R2 and Scaleway refuse --private and --auth-file: a bucket checks no passwords; the alternatives are named', async () => {
    for (const [backend, extra] of [['s3', ['--bucket', 'b']], ['r2', ['--bucket', 'b', '--account-id', 'x']], ['scaleway', ['--bucket', 'b']]] as const) {
      const result = await runReg(['deploy', tree, '--backend', backend, ...extra, '--auth-file', htpasswd, '--private', 'team/**'])
      assert.notEqual(result.code, 0)
      assert.ok(result.stderr.includes(`--backend ${backend} cannot enforce --auth-file/--private: a bucket serves each object to whoever may read it and checks no passwords, so private repositories would be public`), result.stderr)
      assert.ok(result.stderr.includes('put the Cloudflare Worker backend in front of the bucket (--backend cloudflare --basic-auth FILE --private GLOB: it checks users kept as a Worker secret), or deploy to nginx, Apache or reg serve --read-auth. CloudFront signed cookies or signed URLs are no alternative: docker, podman, skopeo and containerd send neither'), result.stderr)
    }
    const alone = await runReg(['deploy', tree, '--backend', 's3', '--bucket', 'b', '--private', 'team/**'])
    assert.match(alone.stderr, /--backend s3 cannot enforce --auth-file\/--private/)
  })

  it('Netlify refuses them: its Basic-Auth rule would put plain passwords into a file of the deploy', async () => {
    const result = await runReg(['deploy', tree, '--backend', 'netlify', '--site', 'x', '--auth-file', htpasswd], {env: {NETLIFY_AUTH_TOKEN: 'token'}})
    assert.notEqual(result.code, 0)
    assert.ok(result.stderr.includes('--backend netlify cannot take --auth-file/--private: Netlify\'s Basic-Auth rule needs plain user:password pairs written into _headers, a file of the deploy, and reg never puts credentials in deployed files'), result.stderr)
    assert.match(result.stderr, /nginx, Apache, reg serve --read-auth or the Cloudflare Worker backend/)
  })

  it('the dir backend has no server to enforce them: the flags do not apply', async () => {
    const result = await runReg(['deploy', tree, '--backend', 'dir', '--dest', path.join(work, 'dir-out'), '--auth-file', htpasswd])
    assert.notEqual(result.code, 0)
    assert.match(result.stderr, /--auth-file does not apply to --backend dir/)
  })

  it('--private without --auth-file is refused (nothing would check the credentials)', async () => {
    const result = await runReg(['deploy', tree, '--backend', 'nginx', '--dest', path.join(work, 'no-users'), '--private', 'team/**'])
    assert.notEqual(result.code, 0)
    assert.match(result.stderr, /--private needs --auth-file HTPASSWD/)
  })

  it('an htpasswd entry that is not bcrypt is refused by its line number, the hash never shown; nothing is deployed', async () => {
    const mixed = path.join(work, 'mixed.htpasswd')
    execFileSync('htpasswd', ['-Bbc', mixed, 'alice', 'pw'], {stdio: 'ignore'})
    execFileSync('htpasswd', ['-mb', mixed, 'bob', 'pw'], {stdio: 'ignore'}) // MD5 ($apr1$)
    const md5 = (await readFile(mixed, 'utf8')).split('\n')[1]!.split(':')[1]!
    for (const args of [['deploy', tree, '--backend', 'nginx', '--dest', path.join(work, 'md5-out'), '--auth-file', mixed], ['deploy', tree, '--backend', 'apache', '--dest', path.join(work, 'md5-out'), '--auth-file', mixed]]) {
      const result = await runReg(args)
      assert.notEqual(result.code, 0)
      assert.match(result.stderr, /mixed\.htpasswd, line 2: the entry for "bob" is not a bcrypt hash/)
      assert.ok(!result.stderr.includes(md5) && !result.stderr.includes('$apr1$'), 'the refused hash is never printed')
    }
    const plain = path.join(work, 'plain.htpasswd')
    await writeFile(plain, '# users\nalice:secret-in-clear\n')
    const result = await runReg(['deploy', tree, '--backend', 'nginx', '--dest', path.join(work, 'md5-out'), '--auth-file', plain])
    assert.match(result.stderr, /plain\.htpasswd, line 2: the entry for "alice" is not a bcrypt hash/)
    assert.ok(!result.stderr.includes('secret-in-clear'))
    await assert.rejects(readFile(path.join(work, 'md5-out', 'registry.conf')), /ENOENT/)
  })

  it('reg serve --read-auth refuses a non-bcrypt htpasswd at start, naming the line', async () => {
    const plain = path.join(work, 'serve-plain.htpasswd')
    await writeFile(plain, 'alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n')
    await assert.rejects(startServe(tree, ['--read-auth', plain]), (error: Error) => /serve-plain\.htpasswd, line 1: the entry for "alice" is not a bcrypt hash/.test(error.message) && !error.message.includes('W6ph5Mm5'))
  })

  it('globs: * stays within a name component, ** crosses them; bad globs are refused', async () => {
    const policy = accessPolicy(new Map(), ['team/*', 'ops/**', 'exact'])
    for (const name of ['team/app', 'ops/a', 'ops/a/b/c', 'exact', 'TEAM/app']) assert.equal(policy.isPrivate(name), true, name)
    for (const name of ['team/a/b', 'teams/app', 'team', 'ops', 'exactly', 'pub/exact']) assert.equal(policy.isPrivate(name), false, name)
    assert.equal(accessPolicy(new Map()).isPrivate('any/thing'), true, 'no --private: everything')
    for (const bad of ['Team/*', '/team', 'team/', 'a//b', 'team/[ab]', 'x y']) assert.throws(() => accessPolicy(new Map(), [bad]), /is not a glob of repository names/, bad)
    const refused = await runReg(['deploy', tree, '--backend', 'nginx', '--dest', path.join(work, 'glob-out'), '--auth-file', htpasswd, '--private', 'team/(.*)'])
    assert.match(refused.stderr, /--private "team\/\(\.\*\)" is not a glob of repository names/)
  })

  it('content only private repositories hold is private whatever the URL names; shared content is public', () => {
    const object = (repository: string, digest: string): RegistryObject => ({path: `v2/${repository}/blobs/${digest}`, class: 'blob', repository, digest, size: 1, headers: {}})
    const policy = accessPolicy(new Map(), ['team/**'])
    assert.deepEqual(privateOnlyDigests(policy, [object('team/a', 'sha256:1'), object('team/a', 'sha256:2'), object('pub/b', 'sha256:2')]), ['sha256:1'])
  })

  it('empty Basic credentials (containers/image after a Basic ping) are no credentials', () => {
    const request = (authorization: string) => ({headers: {authorization}}) as never
    assert.equal(basicCredentials(request(`Basic ${Buffer.from(':').toString('base64')}`)), undefined)
    assert.deepEqual(basicCredentials(request(`Basic ${Buffer.from('a:b:c').toString('base64')}`)), {user: 'a', password: 'b:c'})
  })

  it('a config target carries auth-file (relative to the config file) and private (a list)', async () => {
    const config = path.join(work, 'reg.config.json')
    await writeFile(config, JSON.stringify({targets: {web: {backend: 'nginx', dest: 'web-out', 'auth-file': 'users.htpasswd', private: ['team/**']}}}))
    const result = await runReg(['deploy', tree, '--config', config, '--target', 'web'])
    assert.equal(result.code, 0, result.stderr)
    const server = await readFile(path.join(work, 'web-out', 'registry.conf'), 'utf8')
    assert.ok(server.includes(`auth_basic_user_file "${path.join(work, 'web-out.reg-auth', 'htpasswd')}";`), server)
    assert.ok(server.includes('team/.*'), 'the glob became the rule')
    const wrongType = path.join(work, 'wrong.config.json')
    await writeFile(wrongType, JSON.stringify({targets: {web: {backend: 'nginx', dest: 'x', private: 'team/**'}}}))
    assert.match((await runReg(['deploy', tree, '--config', wrongType])).stderr, /targets\.web\.private: expected array/)
  })
})

describe('access control: generated Apache rules', () => {
  it('thousands of private-only digests stay within Apache\'s 8 KiB configuration lines', async () => {
    const {apacheAccess} = await import('../plugins/backend-apache/config.js')
    const digests = Array.from({length: 3000}, (_, i) => `sha256:${i.toString(16).padStart(64, '0')}`)
    const rules = apacheAccess(accessPolicy(new Map(), ['team/**']), '/srv/registry.reg-auth/htpasswd', digests)
    const longest = Math.max(...rules.split('\n').map((line) => line.length))
    assert.ok(longest < 8192, `longest line ${longest}`)
    for (const digest of digests) assert.ok(rules.includes(digest.slice(7)), digest)
    assert.equal(rules.split('<If ').length - 1, 1 + 30)
  })
})

describe('--private globs against names from HTTP clients', () => {
  it('match as their regular expressions (the ones nginx and Apache get) do, on any name', () => {
    const part = fc.stringMatching(/^[a-z0-9./_-]{0,6}$/)
    const glob = fc.array(fc.oneof(part, fc.constant('*'), fc.constant('**')), {minLength: 1, maxLength: 5}).map((parts) => parts.join('')).filter((p) => {
      try {
        privatePatternRegex(p)
        return true
      } catch {
        return false
      }
    })
    fc.assert(fc.property(glob, fc.stringMatching(/^[a-zA-Z0-9./_-]{0,24}$/), (pattern, name) => {
      const regex = new RegExp(`^(?:${privatePatternRegex(pattern)})$`, 'i')
      assert.equal(accessPolicy(new Map(), [pattern]).isPrivate(name), regex.test(name), `${pattern} ~ ${name}`)
    }), {numRuns: 2000, seed: Number(process.env.FUZZ_SEED ?? 42)})
  })

  it('a long crafted name costs one pass per glob token, not a backtracking search', () => {
    // Against the regular expression, this name took hours (every way of splitting it among four .*).
    const policy = accessPolicy(new Map(), ['a/**/b/**/c/**/d/**/e'])
    const name = `a/${'b/c/d/'.repeat(3000)}x`
    assert.equal(policy.isPrivate(name), false)
    assert.equal(policy.isPrivate(`${name}/e`), true)
    assert.equal(policy.isPrivate('A/x/B/x/C/x/D/x/E'), true, 'names match whatever their case, as the hosts match them')
  })
})

