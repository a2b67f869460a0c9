// docker://HOST/NAME sources against the reference registry (distribution 2.8): anonymous, Basic
// (htpasswd) and Bearer token auth. Fixtures are pushed with skopeo, mirrored with reg build,
// served with reg serve and pulled with skopeo and ctr: digests identical.
import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {startRegistryServer} from '../src/server/registry-server.js'
import type {TreeIndex} from '../src/tree/model.js'
import {type Containerd, run, skopeoInspectDigest, startContainerd} from './clients.js'
import {type RunningRegistry, startDistribution, startTokenDistribution, type TokenServer, writeHtpasswd} from './distribution.js'
import {startCountingProxy} from './s3rver.js'
import {freePort} from './static-hosts.js'
import {removeTempDirs, runReg, tempDir, writeTinyIndexLayout, writeTinyOciLayout} from './support.js'

const USER = 'mirror'
const PASSWORD = 's3cret-pass'

interface Mode {
  name: string
  start(work: string): Promise<{registry: RunningRegistry; creds?: string; token?: TokenServer}>
}

const MODES: Mode[] = [
  {name: 'anonymous', start: async (work) => ({registry: await startDistribution(path.join(work, 'registry'), await freePort())})},
  {
    name: 'htpasswd Basic auth',
    start: async (work) => {
      const htpasswd = await writeHtpasswd(path.join(work, 'htpasswd'), USER, PASSWORD)
      return {registry: await startDistribution(path.join(work, 'registry'), await freePort(), {htpasswd}), creds: `${USER}:${PASSWORD}`}
    },
  },
  {
    name: 'Bearer token auth',
    start: async (work) => ({...(await startTokenDistribution(work, {[USER]: PASSWORD})), creds: `${USER}:${PASSWORD}`}),
  },
]

for (const mode of MODES) {
  describe(`reg build docker:// (${mode.name})`, () => {
    let work: string
    let registry: RunningRegistry
    let creds: string | undefined
    let token: TokenServer | undefined
    let single: {manifestDigest: string}
    let multi: {indexDigest: string; images: Array<{manifestDigest: string}>}
    let containerd: Containerd

    before(async () => {
      work = await tempDir()
      ;({registry, creds, token} = await mode.start(work))
      single = await writeTinyOciLayout(path.join(work, 'single'), {'a.txt': `single ${mode.name}\n`}, '1.0')
      multi = await writeTinyIndexLayout(path.join(work, 'multi'), ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], 'multi')
      const destCreds = creds ? ['--dest-creds', creds] : []
      // Asynchronously: the token server runs in this process and must answer skopeo.
      await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', ...destCreds, `oci:${path.join(work, 'single')}:1.0`, `docker://${registry.hostPort}/team/app:1.0`])
      await run('skopeo', ['copy', '-q', '--all', '--dest-tls-verify=false', ...destCreds, `oci:${path.join(work, 'multi')}:multi`, `docker://${registry.hostPort}/team/multi:3`])
      containerd = await startContainerd(path.join(work, 'containerd'))
    })
    after(async () => {
      await containerd?.stop()
      await registry?.stop()
      await removeTempDirs()
    })

    const build = (args: string[], env: NodeJS.ProcessEnv = {}) => runReg(['build', '--plain-http', '--json', ...args, ...(creds && !env.REG_USERNAME && !args.includes('--creds') ? ['--creds', creds] : [])], {env})

    it('mirrors tags byte for byte, a multi-arch index with all its platforms; real clients pull the mirror', async () => {
      const tree = path.join(work, 'tree')
      const result = await build([`docker://${registry.hostPort}/team/app:1.0`, `docker://${registry.hostPort}/team/multi:3`, '-o', tree])
      assert.equal(result.code, 0, result.stderr)
      const index = JSON.parse(await readFile(path.join(tree, 'registry.json'), 'utf8')) as TreeIndex
      assert.equal(index.repositories['team/app'].tags['1.0'], single.manifestDigest)
      assert.equal(index.repositories['team/multi'].tags['3'], multi.indexDigest)
      assert.deepEqual(index.manifests[multi.indexDigest].children.sort(), multi.images.map((i) => i.manifestDigest).sort())
      if (token) assert.ok(token.requests.some((s) => s === 'repository:team/app:pull'), `token scopes: ${token.requests.join(', ')}`)
      const server = await startRegistryServer(tree, {port: 0})
      try {
        const hostPort = server.url.replace('http://', '')
        assert.equal(await skopeoInspectDigest(hostPort, 'team/multi:3'), multi.indexDigest)
        assert.equal(await containerd.pull(`${hostPort}/team/multi:3`, {allPlatforms: true}), multi.indexDigest)
        assert.equal(await containerd.pull(`${hostPort}/team/app:1.0`), single.manifestDigest)
      } finally {
        await server.close()
      }
    })

    it('a second mirror run of the 3-platform image asks for its tag only, and no blob', async () => {
      const tree = path.join(work, 'tree')
      const proxy = await startCountingProxy(`http://${registry.hostPort}`, await freePort())
      try {
        const again = await build([`docker://${proxy.endpoint.replace('http://', '')}/team/multi:3=team/multi:3`, '-o', tree])
        assert.equal(again.code, 0, again.stderr)
        const summary = JSON.parse(again.stdout) as {bytesCopied: number; blobsAlreadyPresent: number}
        assert.equal(summary.bytesCopied, 0)
        assert.equal(summary.blobsAlreadyPresent, 7, '3 configs, 3 platform layers and the shared base')
        const paths = proxy.requests.map((r) => `${r.method} ${r.url}`)
        assert.ok(!paths.some((p) => p.includes('/blobs/')), paths.join(', '))
        // (with auth, the first try is answered 401 and repeated with credentials)
        assert.deepEqual([...new Set(paths.filter((p) => p.includes('/manifests/')))], ['GET /v2/team/multi/manifests/3'])
        assert.ok(proxy.requests.length <= 2, paths.join(', '))
        console.log(`# second mirror of a 3-platform image (${mode.name}): ${proxy.requests.length} registry requests, ${proxy.requests.reduce((n, r) => n + r.bodyBytes, 0)} request bytes, 0 blob bytes`)
      } finally {
        await proxy.stop()
      }
    })

    it('--platform keeps one platform and the tag points at its manifest; globs expand over the catalog', async () => {
      const tree = path.join(work, 'arm64')
      const result = await build([`docker://${registry.hostPort}/team/*`, '--platform', 'linux/arm64', '-o', tree])
      assert.equal(result.code, 0, result.stderr)
      const index = JSON.parse(await readFile(path.join(tree, 'registry.json'), 'utf8')) as TreeIndex
      const arm64 = multi.images[1].manifestDigest
      assert.equal(index.repositories['team/multi'].tags['3'], arm64)
      assert.equal(index.manifests[multi.indexDigest], undefined, 'the index itself is not kept')
      assert.deepEqual(Object.keys(index.repositories).sort(), ['team/app', 'team/multi'])
    })

    it('errors name the problem: unknown manifest, and for private registries the credentials used', async () => {
      const missing = await build([`docker://${registry.hostPort}/team/app:nope`, '-o', path.join(work, 'x')])
      assert.notEqual(missing.code, 0)
      assert.match(missing.stderr, /answered 404 \(MANIFEST_UNKNOWN/)
      if (creds) {
        const wrong = await build([`docker://${registry.hostPort}/team/app:1.0`, '--creds', 'mirror:wrong', '-o', path.join(work, 'y')])
        assert.notEqual(wrong.code, 0)
        assert.match(wrong.stderr, /credentials from --creds/)
        const fromEnv = await build([`docker://${registry.hostPort}/team/app:1.0`, '-o', path.join(work, 'z')], {REG_USERNAME: USER, REG_PASSWORD: PASSWORD})
        assert.equal(fromEnv.code, 0, fromEnv.stderr)
      }
    })
  })
}
