// The real clients: skopeo, containerd's ctr (against a containerd the test starts), podman.
import assert from 'node:assert/strict'
import {execFile, spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {requireTool, waitUntil} from './static-hosts.js'

export function run(command: string, args: string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, {timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024}, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr || error.message}`))
      else resolve(stdout)
    })
  })
}

/** `skopeo inspect` (which also reads tags/list): the digest of the tag. */
export async function skopeoInspectDigest(hostPort: string, ref: string): Promise<string> {
  return (JSON.parse(await run('skopeo', ['inspect', '--tls-verify=false', `docker://${hostPort}/${ref}`])) as {Digest: string}).Digest
}

/**
 * `skopeo copy --all` to a `dir:` (which keeps manifests byte for byte, where `oci:` would convert
 * Docker ones): the digest of the manifest copied, with every blob verified by skopeo on the way.
 */
export async function skopeoCopyDigest(hostPort: string, ref: string, dest: string): Promise<string> {
  await mkdir(dest, {recursive: true})
  await run('skopeo', ['copy', '-q', '--all', '--src-tls-verify=false', `docker://${hostPort}/${ref}`, `dir:${dest}`])
  return 'sha256:' + createHash('sha256').update(await readFile(path.join(dest, 'manifest.json'))).digest('hex')
}

export interface Containerd {
  pull(ref: string, options?: {platform?: string; allPlatforms?: boolean}): Promise<string>
  /** `ctr images push --plain-http`: pull `from` (all platforms), tag it `to`, push that, then forget both */
  push(from: string, to: string): Promise<void>
  stop(): Promise<void>
}

/** A containerd of our own (root, state, socket under `dir`), as root; the CRI plugin is off. */
export async function startContainerd(dir: string): Promise<Containerd> {
  const containerd = requireTool('containerd')
  requireTool('ctr')
  await mkdir(dir, {recursive: true})
  const config = path.join(dir, 'config.toml')
  await writeFile(config, 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
  const address = path.join(dir, 'containerd.sock')
  const child = spawn(containerd, ['--config', config, '--root', path.join(dir, 'root'), '--state', path.join(dir, 'state'), '--address', address], {stdio: 'ignore'})
  try {
    await waitUntil(`containerd answers on ${address}`, () => run('ctr', ['--address', address, 'version'], 5000).then(() => true, () => false), {
      attempts: 100, intervalMs: 100,
      exited: () => (child.exitCode === null && child.signalCode === null ? undefined : `exited (${child.exitCode ?? child.signalCode})`),
    })
  } catch (error) {
    child.kill('SIGKILL')
    throw error
  }
  const ctr = (...args: string[]) => run('ctr', ['--address', address, '--namespace', 'reg-test', ...args])
  return {
    async pull(ref, options = {}) {
      const flags = options.allPlatforms ? ['--all-platforms'] : options.platform ? ['--platform', options.platform] : []
      await ctr('images', 'pull', '--plain-http', ...flags, ref)
      const listing = await ctr('images', 'ls')
      const line = listing.split('\n').find((l) => l.split(/\s+/)[0] === ref)
      if (!line) throw new Error(`ctr images ls does not list ${ref}:\n${listing}`)
      const digest = line.split(/\s+/)[2]
      await ctr('images', 'rm', ref)
      return digest
    },
    async push(from, to) {
      await ctr('images', 'pull', '--plain-http', '--all-platforms', from)
      await ctr('images', 'tag', '--force', from, to)
      await ctr('images', 'push', '--plain-http', to)
      await ctr('images', 'rm', from, to)
    },
    async stop() {
      child.kill('SIGTERM')
      await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(undefined)))
    },
  }
}

/**
 * podman's global flags for state of its own under `dir`: images, run state and libpod's tmpdir
 * (its default, /run/libpod, would be shared by the test files running at once).
 */
export function podmanPrivateState(dir: string): string[] {
  return ['--root', path.join(dir, 'root'), '--runroot', path.join(dir, 'run'), '--tmpdir', path.join(dir, 'tmp'), '--storage-driver', 'vfs']
}

/** `podman pull` into private storage (vfs), then the digest podman recorded for the reference. */
export async function podmanPullDigest(storage: string, ref: string): Promise<string> {
  requireTool('podman')
  const podman = podmanPrivateState(storage)
  await run('podman', [...podman, 'pull', '-q', '--tls-verify=false', ref])
  const digest = (await run('podman', [...podman, 'image', 'inspect', '--format', '{{.Digest}}', ref])).trim()
  await run('podman', [...podman, 'rmi', '-f', ref])
  return digest
}

/** An image a host serves and the digest every client must get for it (test/fixtures.ts FixtureImage). */
export interface ExpectedImage {
  name: string
  tag: string
  digest: string
  multiArch: boolean
}

/**
 * The checks every host's test makes with each real client, image by image: the digest a client
 * gets equals the source's. skopeo inspects and copies (`--all`) into `copies`; ctr pulls, a
 * multi-arch index both for one platform and for all of them; podman pulls into its own `storage`.
 */
export const everyClientPulls = {
  async skopeo(hostPort: string, images: readonly ExpectedImage[], copies: string): Promise<void> {
    for (const image of images) {
      const ref = `${image.name}:${image.tag}`
      assert.equal(await skopeoInspectDigest(hostPort, ref), image.digest, `inspect ${ref}`)
      assert.equal(await skopeoCopyDigest(hostPort, ref, path.join(copies, image.name, image.tag)), image.digest, `copy ${ref}`)
    }
  },
  async ctr(containerd: Containerd, hostPort: string, images: readonly ExpectedImage[]): Promise<void> {
    for (const image of images) {
      const ref = `${hostPort}/${image.name}:${image.tag}`
      if (image.multiArch) {
        assert.equal(await containerd.pull(ref, {platform: 'linux/arm64'}), image.digest, `ctr --platform linux/arm64 ${ref}`)
        assert.equal(await containerd.pull(ref, {allPlatforms: true}), image.digest, `ctr --all-platforms ${ref}`)
      } else {
        assert.equal(await containerd.pull(ref), image.digest, `ctr ${ref}`)
      }
    }
  },
  async podman(hostPort: string, images: readonly ExpectedImage[], storage: string): Promise<void> {
    for (const image of images) {
      const ref = `${hostPort}/${image.name}:${image.tag}`
      assert.equal(await podmanPullDigest(storage, ref), image.digest, `podman ${ref}`)
    }
  },
}
