// The core fixtures every host is pulled from: generated, deterministic, nothing downloaded.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import path from 'node:path'
import {gzipSync} from 'node:zlib'
import {layerTarOf, SHARED_BASE_FILES, writeTinyIndexLayout, writeTinyOciLayout} from '../scripts/tiny-image.js'
import {startRegistryServer} from '../src/server/registry-server.js'
import {run} from './clients.js'
import {runReg} from './support.js'

export interface FixtureImage {
  name: string
  tag: string
  /** the digest a client must get for the tag (the source's, or for docker-archive the one reg wrote) */
  digest: string
  multiArch: boolean
}

export interface CoreFixtures {
  tree: string
  images: FixtureImage[]
  /** digest of the base layer all platforms of the multi-arch image share */
  sharedBaseLayer: string
}

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex')

function skopeo(...args: string[]): string {
  return execFileSync('skopeo', args, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
}

function rawDigest(reference: string): string {
  return sha(Buffer.from(skopeo('inspect', '--raw', reference)))
}

/**
 * Single-arch OCI with two tags, Docker v2s2 `dir:`, a docker-archive made by skopeo, a
 * three-platform index sharing a base layer, a 5-level namespace: built into one tree.
 */
export async function buildCoreFixtures(work: string): Promise<CoreFixtures> {
  const single = path.join(work, 'src-single')
  const one = await writeTinyOciLayout(single, {'app.txt': 'single-arch 1.0\n'}, '1.0')
  const singleNext = path.join(work, 'src-single-next')
  const next = await writeTinyOciLayout(singleNext, {'app.txt': 'single-arch 1.1\n'}, '1.1')
  const multi = path.join(work, 'src-multi')
  const index = await writeTinyIndexLayout(multi, ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], 'multi')
  const dockerDir = path.join(work, 'src-docker-dir')
  skopeo('copy', '-q', '--format', 'v2s2', `oci:${single}:1.0`, `dir:${dockerDir}`)
  const dockerDirDigest = rawDigest(`dir:${dockerDir}`)
  const archive = path.join(work, 'src-archive.tar')
  skopeo('copy', '-q', `oci:${singleNext}:1.1`, `docker-archive:${archive}:example.com/team/archived:2.0`)

  const tree = path.join(work, 'tree')
  const built = await runReg(['build', '--json', '-o', tree,
    `oci:${single}=team/app`, `oci:${singleNext}=team/app`,
    `oci:${multi}=team/multi`,
    `dir:${dockerDir}=team/docker:v2s2`,
    `docker-archive:${archive}`,
    `oci:${single}:1.0=a/b/c/d/deep:1.0`,
  ])
  assert.equal(built.code, 0, built.stderr)
  const summary = JSON.parse(built.stdout) as {images: Array<{name: string; tag: string; digest: string}>}
  const archived = summary.images.find((i) => i.name === 'team/archived' && i.tag === '2.0')
  assert.ok(archived, 'the docker-archive image is named from its RepoTags')
  return {
    tree,
    images: [
      {name: 'team/app', tag: '1.0', digest: one.manifestDigest, multiArch: false},
      {name: 'team/app', tag: '1.1', digest: next.manifestDigest, multiArch: false},
      {name: 'team/multi', tag: 'multi', digest: index.indexDigest, multiArch: true},
      {name: 'team/docker', tag: 'v2s2', digest: dockerDirDigest, multiArch: false},
      {name: 'team/archived', tag: '2.0', digest: archived.digest, multiArch: false},
      {name: 'a/b/c/d/deep', tag: '1.0', digest: one.manifestDigest, multiArch: false},
    ],
    sharedBaseLayer: sha(gzipSync(await layerTarOf(SHARED_BASE_FILES), {level: 9})),
  }
}


/**
 * Push every core fixture to a registry (`--preserve-digests`: byte for byte), from a reg serve of
 * the fixture tree. Asynchronously: a token server in this process may have to answer skopeo.
 */
export async function pushCoreFixtures(fixtures: CoreFixtures, hostPort: string, creds?: string): Promise<void> {
  const source = await startRegistryServer(fixtures.tree, {port: 0})
  try {
    const from = source.url.replace('http://', '')
    for (const image of fixtures.images) {
      await run('skopeo', ['copy', '-q', '--all', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false', ...(creds ? ['--dest-creds', creds] : []),
        `docker://${from}/${image.name}:${image.tag}`, `docker://${hostPort}/${image.name}:${image.tag}`])
    }
  } finally {
    await source.close()
  }
}
