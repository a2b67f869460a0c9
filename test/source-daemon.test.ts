// docker-daemon: sources against a real engine API: Podman's Docker-compatible service, started
// by the test with its own storage. Images are loaded into podman, built with a glob, served with
// reg serve and inspected with skopeo: the config (the image ID) is the engine's, byte for byte.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {startRegistryServer, type RunningServer} from '../src/server/registry-server.js'
import {podmanPrivateState, run} from './clients.js'
import {requireTool, waitUntil} from './static-hosts.js'
import {removeTempDirs, runReg, tempDir, writeTinyOciLayout} from './support.js'

describe('reg build docker-daemon: (podman system service)', () => {
  let work: string
  let socket: string
  let service: ReturnType<typeof spawn>
  let podman: string[]
  let source: RunningServer
  const images: Record<string, {configDigest: string}> = {}

  before(async () => {
    requireTool('podman')
    work = await tempDir()
    podman = podmanPrivateState(work)
    socket = path.join(work, 'podman.sock')
    const started = spawn('podman', [...podman, 'system', 'service', '--time=0', `unix://${socket}`], {stdio: 'ignore'})
    service = started
    await waitUntil(`podman system service answers on ${socket}`, () => run('podman', ['--url', `unix://${socket}`, 'version'], 5000).then(() => true, () => false), {
      attempts: 100, intervalMs: 100,
      exited: () => (started.exitCode === null && started.signalCode === null ? undefined : `exited (${started.exitCode ?? started.signalCode})`),
    })
    // Load two images into podman: pull them from a reg serve of fixtures, then name them.
    const tree = path.join(work, 'src-tree')
    for (const [name, text] of [['app', 'daemon app\n'], ['tool', 'daemon tool\n']]) {
      const layout = path.join(work, name)
      const image = await writeTinyOciLayout(layout, {'file.txt': text}, '1.0')
      images[name] = image
      const built = await runReg(['build', `oci:${layout}=src/${name}:1.0`, '-o', tree])
      assert.equal(built.code, 0, built.stderr)
    }
    source = await startRegistryServer(tree, {port: 0})
    const hostPort = source.url.replace('http://', '')
    for (const name of ['app', 'tool']) {
      await run('podman', [...podman, 'pull', '-q', '--tls-verify=false', `${hostPort}/src/${name}:1.0`])
      await run('podman', [...podman, 'tag', `${hostPort}/src/${name}:1.0`, `example.com/team/${name}:1.0`, `example.com/team/${name}:v1.2`])
    }
    await run('podman', [...podman, 'tag', `${hostPort}/src/app:1.0`, 'other.example.org/elsewhere:1.0'])
  })
  after(async () => {
    service?.kill('SIGTERM')
    await source?.close()
    await removeTempDirs()
  })

  const build = (args: string[], env: NodeJS.ProcessEnv = {DOCKER_HOST: `unix://${socket}`}) => runReg(['build', '--json', ...args], {env})

  it('builds every image a glob selects, names without the registry host, configs unchanged', async () => {
    const tree = path.join(work, 'tree')
    const result = await build(['docker-daemon:example.com/team/*:1.0', '-o', tree])
    assert.equal(result.code, 0, result.stderr)
    const summary = JSON.parse(result.stdout) as {images: Array<{name: string; tag: string; digest: string}>}
    assert.deepEqual(summary.images.map((i) => `${i.name}:${i.tag}`).sort(), ['team/app:1.0', 'team/tool:1.0'])
    const server = await startRegistryServer(tree, {port: 0})
    try {
      for (const name of ['app', 'tool']) {
        const raw = JSON.parse(await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${server.url.replace('http://', '')}/team/${name}:1.0`])) as {config: {digest: string}}
        assert.equal(raw.config.digest, images[name].configDigest, `team/${name}: the config is the engine's image ID`)
      }
    } finally {
      await server.close()
    }
  })

  it('** spans path components and tag globs select tags', async () => {
    const result = await build(['docker-daemon:example.com/**:v1.*', '-o', path.join(work, 'tree2')])
    assert.equal(result.code, 0, result.stderr)
    const summary = JSON.parse(result.stdout) as {images: Array<{name: string; tag: string}>}
    assert.deepEqual(summary.images.map((i) => `${i.name}:${i.tag}`).sort(), ['team/app:v1.2', 'team/tool:v1.2'])
  })

  it('says which socket it tried when no engine answers, and when nothing matches', async () => {
    const missing = path.join(work, 'nowhere.sock')
    const down = await build(['docker-daemon:example.com/*', '-o', path.join(work, 'tree3')], {DOCKER_HOST: `unix://${missing}`})
    assert.notEqual(down.code, 0)
    assert.match(down.stderr, new RegExp(`cannot reach the container engine at unix://${missing}`))
    const none = await build(['docker-daemon:nothing.example/*', '-o', path.join(work, 'tree3')])
    assert.notEqual(none.code, 0)
    assert.match(none.stderr, /no image in the engine .* matches nothing\.example\/\*/)
  })
})
