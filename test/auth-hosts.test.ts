// Access control on real servers with real clients: nginx and Apache as `reg deploy --auth-file
// --private` configured them, and `reg serve --read-auth --private`. A private namespace needs a user
// of the htpasswd (skopeo --creds, podman login, ctr --user), a public one pulls anonymously although
// the /v2/ ping answers 401, a wrong password is refused, and the htpasswd is never served.
import assert from 'node:assert/strict'
import {readdir, readFile, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {type Containerd, podmanPrivateState, run, startContainerd} from './clients.js'
import {writeHtpasswd} from './distribution.js'
import {freePort, makeServable, requireTool, type RunningHost, startApache, startNginx} from './static-hosts.js'
import {removeTempDirs, runReg, startServe, tempDir, type TinyImage, writeTinyOciLayout} from './support.js'

const USER = 'alice'
const PASSWORD = 'correct horse'
const CHALLENGE = 'Basic realm="reg"'

/** The Apache modules and override Basic auth in .htaccess needs, beside the ones the registry's rules need. */
function apacheSiteWithAuth(out: string): string {
  const modules = '/usr/lib/apache2/modules'
  return `LoadModule authn_core_module ${modules}/mod_authn_core.so
LoadModule authn_file_module ${modules}/mod_authn_file.so
LoadModule auth_basic_module ${modules}/mod_auth_basic.so
LoadModule authz_user_module ${modules}/mod_authz_user.so
DocumentRoot ${out}
<Directory ${out}>
    AllowOverride FileInfo AuthConfig
    Require all granted
</Directory>`
}

/** Every file under `dir`, relative to it. */
async function filesUnder(dir: string, prefix = ''): Promise<string[]> {
  const found: string[] = []
  for (const entry of await readdir(path.join(dir, prefix), {withFileTypes: true})) {
    const relative = path.join(prefix, entry.name)
    if (entry.isDirectory()) found.push(...await filesUnder(dir, relative))
    else found.push(relative)
  }
  return found
}

const status = async (url: string, credentials?: string): Promise<number> =>
  (await fetch(url, {headers: credentials ? {Authorization: `Basic ${Buffer.from(credentials).toString('base64')}`} : {}})).status

describe('access control with real servers and clients (--auth-file/--read-auth, --private)', () => {
  let work: string
  let tree: string
  let htpasswd: string
  let privateImage: TinyImage
  let publicImage: TinyImage
  let containerd: Containerd
  let ctrAddress: string

  before(async () => {
    for (const tool of ['skopeo', 'podman', 'ctr', 'nginx', 'apache2', 'htpasswd']) requireTool(tool)
    work = await tempDir()
    privateImage = await writeTinyOciLayout(path.join(work, 'private-layout'), {'secret.txt': 'private layer\n'}, '1')
    publicImage = await writeTinyOciLayout(path.join(work, 'public-layout'), {'hello.txt': 'public layer\n'}, '1')
    tree = path.join(work, 'tree')
    const built = await runReg(['build', `oci:${path.join(work, 'private-layout')}:1=team/app:1`, `oci:${path.join(work, 'public-layout')}:1=pub/app:1`, '-o', tree, '--page'])
    assert.equal(built.code, 0, built.stderr)
    htpasswd = await writeHtpasswd(path.join(work, 'users.htpasswd'), USER, PASSWORD)
    containerd = await startContainerd(path.join(work, 'containerd'))
    ctrAddress = path.join(work, 'containerd', 'containerd.sock')
  })
  after(async () => {
    await containerd?.stop()
    await removeTempDirs()
  })

  const ctrPull = async (ref: string, user?: string): Promise<void> => {
    const base = ['--address', ctrAddress, '--namespace', 'reg-auth-test']
    await run('ctr', [...base, 'images', 'pull', '--plain-http', ...(user ? ['--user', user] : []), ref])
    await run('ctr', [...base, 'images', 'rm', ref])
  }

  /** What every host must do, the same way: `host` serves the tree with team/** private. */
  async function checkHost(name: string, host: RunningHost | {url: string; hostPort: string}): Promise<void> {
    const {url, hostPort} = host
    const good = `${USER}:${PASSWORD}`
    const wrong = `${USER}:not the password`

    // The ping challenges whenever anything is private.
    const ping = await fetch(`${url}/v2/`)
    assert.equal(ping.status, 401, `${name}: anonymous /v2/`)
    assert.equal(ping.headers.get('www-authenticate'), CHALLENGE, `${name}: the ping's challenge`)
    assert.equal(await status(`${url}/v2/`, good), 200, `${name}: /v2/ with a user`)
    assert.equal(await status(`${url}/v2/`, wrong), 401, `${name}: /v2/ with a wrong password`)

    // Private URLs (any spelling of the name), and private-only content under a public name.
    const privateManifest = `${url}/v2/team/app/manifests/1`
    assert.equal(await status(privateManifest), 401, `${name}: anonymous private manifest`)
    assert.equal(await status(privateManifest, wrong), 401, `${name}: private manifest, wrong password`)
    assert.equal(await status(privateManifest, good), 200, `${name}: private manifest with a user`)
    assert.equal(await status(`${url}/v2/team/app/tags/list`), 401, `${name}: anonymous private tags list`)
    // Spellings that decode or normalize to the private name (fetch keeps percent-escapes as sent).
    for (const spelling of ['%74eam/app', 'pub/%2e%2e/team/app', 'team/%61pp']) {
      assert.notEqual(await status(`${url}/v2/${spelling}/manifests/1`), 200, `${name}: anonymous /v2/${spelling}/manifests/1`)
      assert.notEqual(await status(`${url}/v2/${spelling}/tags/list`), 200, `${name}: anonymous /v2/${spelling}/tags/list`)
    }
    const manifest = JSON.parse(await (await fetch(privateManifest, {headers: {Authorization: `Basic ${Buffer.from(good).toString('base64')}`}})).text()) as {layers: Array<{digest: string}>}
    const privateLayer = manifest.layers[0]!.digest
    for (const via of ['team/app', 'TEAM/app', 'pub/app', 'nobody/here']) {
      assert.notEqual(await status(`${url}/v2/${via}/blobs/${privateLayer}`), 200, `${name}: the private layer, anonymously, under ${via}`)
    }
    assert.equal(await status(`${url}/v2/pub/app/manifests/${privateImage.manifestDigest}`) === 200, false, `${name}: the private manifest by digest under a public name`)
    assert.equal(await status(`${url}/v2/pub/app/manifests/1`), 200, `${name}: public manifest, anonymously`)

    // The catalog page lists every repository: like the catalog, it needs a user whenever anything is private.
    for (const page of ['/', '/index.html', '/r/team/app/-/index.html', '/r/pub/app/-/index.html']) {
      assert.equal(await status(`${url}${page}`), 401, `${name}: anonymous ${page}`)
      assert.equal(await status(`${url}${page}`, good), 200, `${name}: ${page} with a user`)
    }

    // skopeo
    const inspect = async (ref: string, creds?: string) => (JSON.parse(await run('skopeo', ['inspect', '--tls-verify=false', ...(creds ? ['--creds', creds] : []), `docker://${hostPort}/${ref}`])) as {Digest: string}).Digest
    assert.equal(await inspect('pub/app:1'), publicImage.manifestDigest, `${name}: skopeo, public, anonymous (after a 401 ping)`)
    assert.equal(await inspect('team/app:1', good), privateImage.manifestDigest, `${name}: skopeo --creds, private`)
    await assert.rejects(inspect('team/app:1'), /unauthorized|authentication required/i, `${name}: skopeo, private, anonymous`)
    await assert.rejects(inspect('team/app:1', wrong), /unauthorized|authentication required|invalid username\/password/i, `${name}: skopeo, private, wrong password`)
    const copied = path.join(work, `${name}-skopeo-copy`)
    await run('skopeo', ['copy', '-q', '--src-tls-verify=false', '--src-creds', good, `docker://${hostPort}/team/app:1`, `dir:${copied}`])
    assert.ok((await stat(path.join(copied, 'manifest.json'))).isFile(), `${name}: skopeo copy --src-creds, private`)

    // podman: login into an authfile of its own, pull; anonymous with an empty authfile
    const podman = podmanPrivateState(path.join(work, `${name}-podman`))
    const authfile = path.join(work, `${name}-auth.json`)
    const anonymous = path.join(work, `${name}-anonymous.json`)
    await writeFile(anonymous, '{"auths":{}}\n')
    await assert.rejects(run('podman', [...podman, 'login', '--tls-verify=false', '--authfile', authfile, '-u', USER, '-p', 'not the password', hostPort]), /invalid username\/password|unauthorized/i, `${name}: podman login, wrong password`)
    await run('podman', [...podman, 'login', '--tls-verify=false', '--authfile', authfile, '-u', USER, '-p', PASSWORD, hostPort])
    const podmanPull = async (ref: string, file: string) => {
      await run('podman', [...podman, 'pull', '-q', '--tls-verify=false', '--authfile', file, `${hostPort}/${ref}`])
      const digest = (await run('podman', [...podman, 'image', 'inspect', '--format', '{{.Digest}}', `${hostPort}/${ref}`])).trim()
      await run('podman', [...podman, 'rmi', '-f', `${hostPort}/${ref}`])
      return digest
    }
    assert.equal(await podmanPull('team/app:1', authfile), privateImage.manifestDigest, `${name}: podman login + pull, private`)
    assert.equal(await podmanPull('pub/app:1', anonymous), publicImage.manifestDigest, `${name}: podman, public, anonymous`)
    await assert.rejects(podmanPull('team/app:1', anonymous), /unauthorized|authentication required/i, `${name}: podman, private, anonymous`)

    // containerd
    await ctrPull(`${hostPort}/pub/app:1`)
    await ctrPull(`${hostPort}/team/app:1`, good)
    await assert.rejects(ctrPull(`${hostPort}/team/app:1`), /401|unauthorized/i, `${name}: ctr, private, anonymous`)
    await assert.rejects(ctrPull(`${hostPort}/team/app:1`, wrong), /401|unauthorized/i, `${name}: ctr --user, wrong password`)
  }

  /** The htpasswd of a file host: beside the served directory, never under it, and no URL answers it. */
  async function checkHtpasswdHidden(name: string, out: string, url: string): Promise<void> {
    const copy = `${out}.reg-auth/htpasswd`
    const users = await readFile(copy, 'utf8')
    assert.match(users, /^alice:\$2y\$/, `${name}: the copy holds the bcrypt entry`)
    for (const file of await filesUnder(out)) {
      assert.ok(!(await readFile(path.join(out, file), 'utf8')).includes(users.trim().split(':')[1]!), `${name}: ${file} under the served root holds the hash`)
    }
    const base = path.basename(out)
    for (const probe of ['/htpasswd', '/.htpasswd', `/${base}.reg-auth/htpasswd`, `/../${base}.reg-auth/htpasswd`, '/%2e%2e/' + `${base}.reg-auth/htpasswd`,
      '/_registry/htpasswd', '/v2/htpasswd', '/v2/../htpasswd', '/registry.conf', '/.htaccess', '/.reg-deploy-state.json', '/nginx.conf']) {
      for (const credentials of [undefined, `${USER}:${PASSWORD}`]) {
        const response = await fetch(`${url}${probe}`, {headers: credentials ? {Authorization: `Basic ${Buffer.from(credentials).toString('base64')}`} : {}})
        const body = await response.text()
        assert.ok([401, 403, 404, 400].includes(response.status), `${name}: GET ${probe} answered ${response.status}`)
        assert.ok(!body.includes('$2y$'), `${name}: GET ${probe} holds a hash`)
      }
    }
  }

  it('nginx: auth_basic for team/**, the ping and the catalog; pub/ anonymous', async () => {
    const out = path.join(work, 'nginx-out')
    const port = await freePort()
    const deployed = await runReg(['deploy', tree, '--backend', 'nginx', '--dest', out, '--listen', `127.0.0.1:${port}`, '--server-name', '127.0.0.1', '--auth-file', htpasswd, '--private', 'team/**'])
    assert.equal(deployed.code, 0, deployed.stderr)
    await makeServable(out)
    const host = await startNginx(out, port)
    try {
      await checkHost('nginx', host)
      // One file cannot answer two audiences: the catalog needs a user whenever anything is private.
      assert.equal(await status(`${host.url}/v2/_catalog`), 401)
      assert.deepEqual(JSON.parse(await (await fetch(`${host.url}/v2/_catalog`, {headers: {Authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`}})).text()), {repositories: ['pub/app', 'team/app']})
      await checkHtpasswdHidden('nginx', out, host.url)
    } finally {
      await host.stop()
    }
  })

  it('Apache: .htaccess AuthType Basic for team/**, the ping and the catalog; pub/ anonymous', async () => {
    const out = path.join(work, 'apache-out')
    const deployed = await runReg(['deploy', tree, '--backend', 'apache', '--dest', out, '--auth-file', htpasswd, '--private', 'team/**'])
    assert.equal(deployed.code, 0, deployed.stderr)
    await makeServable(out)
    const host = await startApache(out, await freePort(), apacheSiteWithAuth(out))
    try {
      await checkHost('apache', host)
      assert.equal(await status(`${host.url}/v2/_catalog`), 401)
      await checkHtpasswdHidden('apache', out, host.url)
    } finally {
      await host.stop()
    }
  })

  it('Apache without AllowOverride AuthConfig refuses every request (500), it never serves private repositories openly', async () => {
    const out = path.join(work, 'apache-out')
    const host = await startApache(out, await freePort())
    try {
      assert.equal(await status(`${host.url}/v2/team/app/manifests/1`), 500)
      assert.equal(await status(`${host.url}/v2/pub/app/manifests/1`), 500)
    } finally {
      await host.stop()
    }
  })

  it('reg serve --read-auth --private: the same, and the catalog lists the public repositories to anonymous clients', async () => {
    const server = await startServe(tree, ['--read-auth', htpasswd, '--private', 'team/**'])
    try {
      await checkHost('serve', server)
      assert.deepEqual(await (await fetch(`${server.url}/v2/_catalog`)).json(), {repositories: ['pub/app']})
      assert.deepEqual(await (await fetch(`${server.url}/v2/_catalog`, {headers: {Authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`}})).json(), {repositories: ['pub/app', 'team/app']})
      assert.equal(await status(`${server.url}/v2/_catalog`, `${USER}:wrong`), 401)
    } finally {
      await server.stop()
    }
  })

  it('reg serve --read-auth without --private: every repository needs a user', async () => {
    const server = await startServe(tree, ['--read-auth', htpasswd])
    try {
      assert.equal(await status(`${server.url}/v2/pub/app/manifests/1`), 401)
      assert.equal(await status(`${server.url}/v2/pub/app/manifests/1`, `${USER}:${PASSWORD}`), 200)
      assert.deepEqual(await (await fetch(`${server.url}/v2/_catalog`)).json(), {repositories: []})
    } finally {
      await server.stop()
    }
  })
})
