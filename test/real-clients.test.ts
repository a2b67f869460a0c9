// Real clients pull every core fixture from every host (reg serve, nginx, apache, s3rver) with the digests
// of the source: skopeo inspect and copy, containerd's ctr (single platform, --platform, all
// platforms) and podman.
import assert from 'node:assert/strict'
import {readdir, stat} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {startRegistryServer} from '../src/server/registry-server.js'
import {type Containerd, everyClientPulls, startContainerd} from './clients.js'
import {buildCoreFixtures, type CoreFixtures} from './fixtures.js'
import {S3_BUCKET, S3_CREDENTIALS, startS3rver} from './s3rver.js'
import {freePort, makeServable, requireTool, type RunningHost, startApache, startNginx} from './static-hosts.js'
import {removeTempDirs, runReg, tempDir} from './support.js'
import {RegistryTree} from '../src/tree/registry-tree.js'

interface Host {
  name: string
  start(fixtures: CoreFixtures, work: string): Promise<RunningHost>
}

async function deployed(backend: 'nginx' | 'apache', fixtures: CoreFixtures, work: string, start: (out: string, port: number) => Promise<RunningHost>): Promise<RunningHost> {
  const port = await freePort()
  const out = path.join(work, `${backend}-public`)
  const result = await runReg(['deploy', fixtures.tree, '--backend', backend, '--dest', out, ...(backend === 'nginx' ? ['--listen', `127.0.0.1:${port}`] : [])])
  assert.equal(result.code, 0, result.stderr)
  await makeServable(out)
  return start(out, port)
}

const HOSTS: Host[] = [
  {
    name: 'reg serve',
    start: async (fixtures) => {
      const server = await startRegistryServer(fixtures.tree, {port: 0})
      return {url: server.url, hostPort: server.url.replace('http://', ''), stop: () => server.close()}
    },
  },
  {name: 'nginx', start: (fixtures, work) => deployed('nginx', fixtures, work, startNginx)},
  {name: 'apache', start: (fixtures, work) => deployed('apache', fixtures, work, startApache)},
  {
    // s3rver itself serves the pulls, at the host root: LOCALHOST:PORT (see test/s3rver.ts).
    name: 's3rver',
    start: async (fixtures, work) => {
      const s3 = await startS3rver(path.join(work, 's3rver'), await freePort())
      const result = await runReg(['deploy', fixtures.tree, '--backend', 's3', '--bucket', S3_BUCKET, '--endpoint', s3.endpoint, '--force-path-style'], {env: S3_CREDENTIALS})
      assert.equal(result.code, 0, result.stderr)
      return {url: s3.url, hostPort: s3.hostPort, stop: s3.stop}
    },
  },
]

describe('real clients', () => {
  let work: string
  let fixtures: CoreFixtures
  let containerd: Containerd

  before(async () => {
    for (const tool of ['skopeo', 'ctr', 'containerd', 'podman']) requireTool(tool)
    work = await tempDir()
    await makeServable(work)
    fixtures = await buildCoreFixtures(work)
    containerd = await startContainerd(path.join(work, 'containerd'))
  })
  after(async () => {
    await containerd?.stop()
    await removeTempDirs()
  })

  it('the tree stores the shared base layer once, and bytes on disk equal the unique bytes', async () => {
    const dir = path.join(fixtures.tree, 'blobs/sha256')
    const names = await readdir(dir)
    assert.equal(names.filter((n) => `sha256:${n}` === fixtures.sharedBaseLayer).length, 1, 'the base layer is in the store')
    const index = (await RegistryTree.load(fixtures.tree)).index
    const users = index.objects.filter((o) => o.digest === fixtures.sharedBaseLayer)
    assert.ok(users.length >= 1)
    const inodes = new Map<number, number>()
    for (const name of names) {
      const info = await stat(path.join(dir, name))
      inodes.set(info.ino, info.size)
    }
    const unique = new Map(index.objects.map((o) => [o.digest, o.size]))
    assert.equal([...inodes.values()].reduce((a, b) => a + b, 0), [...unique.values()].reduce((a, b) => a + b, 0))
  })

  for (const host of HOSTS) {
    describe(`from ${host.name}`, () => {
      let running: RunningHost
      before(async () => {
        running = await host.start(fixtures, work)
      })
      after(async () => running?.stop())

      it('skopeo inspect and skopeo copy --all get the source digests', async () => {
        await everyClientPulls.skopeo(running.hostPort, fixtures.images, path.join(work, 'copies', host.name.replace(' ', '-')))
      })

      it('ctr pulls every image; the multi-arch index with --platform linux/arm64 and --all-platforms', async () => {
        await everyClientPulls.ctr(containerd, running.hostPort, fixtures.images)
      })

      it('podman pulls every image', async () => {
        await everyClientPulls.podman(running.hostPort, fixtures.images, path.join(work, 'podman', host.name.replace(' ', '-')))
      })
    })
  }
})
