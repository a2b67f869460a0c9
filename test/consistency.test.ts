// One vocabulary across commands: `reg build` and `reg ls` count the same bytes under the same name,
// an image is named by `repository` in every JSON output, counts are singular or plural as they
// should be, and every number of a deploy says what it counts (objects on the host, redirects,
// files a host asked for). `--dry-run` lists its steps. Messages are checked by their exact text.
import assert from 'node:assert/strict'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {quantity} from '../src/ui/format.js'
import {startFakeNetlify} from './netlify-api.js'
import {S3_BUCKET, S3_CREDENTIALS, startS3rver} from './s3rver.js'
import {freePort} from './static-hosts.js'
import {EXAMPLE_LAYOUT, removeTempDirs, runReg, tempDir} from './support.js'

const CONFIG = 'sha256:2bc006bdb9217dcc4d341ac7f1ad57ea2b8a8cdccdd7e0abd40b4c6c80564eb6'
const LAYER = 'sha256:3e49b23055dfc2fc6c2011a012652a1773564af4b2cf5ced3e24543ab163ea5d'
const MANIFEST = 'sha256:40deeac056c0dcf1e18852ed7b81e98aa0f2a60e61c222923b9f600c5c431f6c'

interface ImageJson {repository: string; name?: string; tag: string; digest: string}
interface StepJson {phase: string; action: string; key: string; size?: number; from?: string; to?: string}

/** The pull line's note when the registry's URL is unknown (no --public-url). */
const PULL_HINT = '   (HOST: where the registry is served; --public-url https://HOST prints it here)'

describe('one vocabulary: reg build, reg ls, reg deploy', () => {
  let work: string
  /** examples/hello, once */
  let tree: string
  /** examples/hello under two names: one blob serves two repositories */
  let shared: string

  before(async () => {
    work = await tempDir()
    tree = path.join(work, 'dist')
    shared = path.join(work, 'shared')
    const built = await runReg(['build', `oci:${EXAMPLE_LAYOUT}=team/one:1`, `oci:${EXAMPLE_LAYOUT}=team/two:1`, '-o', shared])
    assert.equal(built.code, 0, built.stderr)
  })
  after(removeTempDirs)

  it('counts are singular for one: 1 object, 2 objects, 1 repository, 0 repositories', () => {
    assert.equal(quantity(1, 'object'), '1 object')
    assert.equal(quantity(2, 'object'), '2 objects')
    assert.equal(quantity(0, 'object'), '0 objects')
    assert.equal(quantity(1, 'repository', 'repositories'), '1 repository')
    assert.equal(quantity(0, 'repository', 'repositories'), '0 repositories')
  })

  it('reg build and reg ls report the same bytes under the same name, in the singular for one', async () => {
    const built = await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '-o', tree])
    assert.equal(built.code, 0, built.stderr)
    assert.equal(built.stdout.trim().split('\n').at(-1), `${tree}: 1 repository, 1 tag, 2 blobs; 751 B in blobs and manifests (0 B saved by storing each blob once); 350 B copied from the sources, 0 blobs already in the tree`)
    const listed = await runReg(['ls', tree])
    assert.equal(listed.code, 0, listed.stderr)
    assert.equal(listed.stdout, `examples/hello:1.0\t${MANIFEST}\tlinux/amd64\t751 B\n1 repository, 1 tag; 751 B in blobs and manifests\n`)
    const again = await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '-o', tree])
    assert.equal(again.stdout.trim().split('\n').at(-1), `${tree}: 1 repository, 1 tag, 2 blobs; 751 B in blobs and manifests (0 B saved by storing each blob once); 0 B copied from the sources, 2 blobs already in the tree`)
  })

  it('--json: build and ls name an image by repository and count bytesStored alike', async () => {
    const built = JSON.parse((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '-o', tree, '--json'])).stdout) as {images: ImageJson[]; bytesStored: number}
    const listed = JSON.parse((await runReg(['ls', tree, '--json'])).stdout) as {images: ImageJson[]; bytesStored: number}
    assert.deepEqual(built.images.map(({repository, tag, digest}) => ({repository, tag, digest})), listed.images.map(({repository, tag, digest}) => ({repository, tag, digest})))
    assert.deepEqual(Object.keys(built.images[0] ?? {}), ['repository', 'tag', 'digest', 'mediaType', 'platforms', 'source', 'name'])
    assert.equal(built.images[0]?.name, 'examples/hello', 'name: the old key, kept for the consumers written before (README)')
    assert.equal(built.bytesStored, 751)
    assert.equal(listed.bytesStored, 751)
  })

  it('reg deploy: each phase and the summary say what they count', async () => {
    const dest = path.join(work, 'public')
    const result = await runReg(['deploy', shared, '--backend', 'dir', '--dest', dest])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout, [
      'blobs: upload 2 objects (350 B), copy 2 objects server-side (350 B)',
      'manifests: upload 1 object (401 B), copy 1 object server-side (401 B)',
      'tags: upload 4 objects (106 B), copy 2 objects server-side (802 B)',
      `dir ${dest}: did upload 7 objects (857 B), copy 5 objects server-side (1.5 KiB), delete 0 objects; 0 objects unchanged`,
      `pull: docker pull HOST/team/one:1${PULL_HINT}`,
      '',
    ].join('\n'))
    const again = await runReg(['deploy', shared, '--backend', 'dir', '--dest', dest])
    assert.equal(again.stdout, `dir ${dest}: did upload 0 objects (0 B), copy 0 objects server-side (0 B), delete 0 objects; 12 objects unchanged\npull: docker pull HOST/team/one:1${PULL_HINT}\n`)
  })

  it('reg deploy --dry-run lists every step (phase, action, key, size); with --json each key, action and size', async () => {
    const dest = path.join(work, 'dry')
    const human = await runReg(['deploy', tree, '--backend', 'dir', '--dest', dest, '--dry-run'])
    assert.equal(human.code, 0, human.stderr)
    const repo = 'v2/examples/hello'
    assert.equal(human.stdout, [
      `blobs\tupload\t${repo}/blobs/${CONFIG}\t215 B`,
      `blobs\tupload\t${repo}/blobs/${LAYER}\t135 B`,
      `manifests\tupload\t${repo}/manifests/${MANIFEST}\t401 B`,
      'tags\tupload\tv2/index.json\t2 B',
      `tags\tcopy\t${repo}/manifests/1.0\t401 B  (from ${repo}/manifests/${MANIFEST})`,
      `tags\tupload\t${repo}/tags/list\t40 B`,
      'tags\tupload\tv2/_catalog\t35 B',
      `dir ${dest}: would upload 6 objects (828 B), copy 1 object server-side (401 B), delete 0 objects; 0 objects unchanged`,
      `pull: docker pull HOST/examples/hello:1.0${PULL_HINT}`,
      '',
    ].join('\n'))
    const json = await runReg(['deploy', tree, '--backend', 'dir', '--dest', dest, '--dry-run', '--json'])
    const report = JSON.parse(json.stdout) as {steps: StepJson[]; plan: {uploads: number; copies: number}}
    assert.deepEqual(report.steps, [
      {phase: 'blobs', action: 'upload', key: `${repo}/blobs/${CONFIG}`, size: 215},
      {phase: 'blobs', action: 'upload', key: `${repo}/blobs/${LAYER}`, size: 135},
      {phase: 'manifests', action: 'upload', key: `${repo}/manifests/${MANIFEST}`, size: 401},
      {phase: 'tags', action: 'upload', key: 'v2/index.json', size: 2},
      {phase: 'tags', action: 'copy', key: `${repo}/manifests/1.0`, size: 401, from: `${repo}/manifests/${MANIFEST}`},
      {phase: 'tags', action: 'upload', key: `${repo}/tags/list`, size: 40},
      {phase: 'tags', action: 'upload', key: 'v2/_catalog', size: 35},
    ])
    assert.deepEqual([report.plan.uploads, report.plan.copies], [6, 1])

    // A host with a configuration and a prune: the configure step has no size, deletions have theirs.
    const nginx = path.join(work, 'nginx')
    assert.equal((await runReg(['deploy', shared, '--backend', 'nginx', '--dest', nginx])).code, 0)
    const pruned = await runReg(['deploy', tree, '--backend', 'nginx', '--dest', nginx, '--dry-run', '--prune'])
    assert.equal(pruned.code, 0, pruned.stderr)
    const lines = pruned.stdout.trim().split('\n')
    assert.ok(lines.includes('configure\tconfigure\thost configuration\t-'), pruned.stdout)
    assert.ok(lines.includes('prune\tdelete\tv2/team/one/tags/list\t32 B'), pruned.stdout)
    assert.equal(lines.at(-2), `nginx ${nginx}: would upload 2 objects (75 B), copy 0 objects server-side (0 B), delete 2 objects (64 B); 4 objects unchanged`)
  })

  it('S3 redirect mode counts its redirects as redirects, not as server-side copies', async () => {
    const s3 = await startS3rver(path.join(work, 's3'), await freePort(), {website: true})
    try {
      const deploy = (dedupe: string) => runReg(['deploy', shared, '--backend', 's3', '--bucket', S3_BUCKET, '--endpoint', s3.endpoint, '--force-path-style', '--dedupe', dedupe, '--key-prefix', `${dedupe}/`], {env: S3_CREDENTIALS})
      const redirect = await deploy('redirect')
      assert.equal(redirect.code, 0, redirect.stderr)
      const where = `s3 s3://${S3_BUCKET}/`
      assert.equal(redirect.stdout, [
        'blobs: upload 2 objects (350 B), write 4 redirects to shared copies',
        'manifests: upload 1 object (401 B), copy 1 object server-side (401 B)',
        'tags: upload 4 objects (106 B), copy 2 objects server-side (802 B)',
        'configure: write the host configuration',
        `${where}redirect/ at ${s3.endpoint}: did upload 7 objects (857 B), copy 3 objects server-side (1.2 KiB), write 4 redirects to shared copies, delete 0 objects; 0 objects unchanged`,
        `pull: docker pull HOST/team/one:1${PULL_HINT}`,
        '',
      ].join('\n'))
      const copy = await deploy('copy')
      assert.equal(copy.code, 0, copy.stderr)
      assert.equal(copy.stdout.trim().split('\n').at(-2), `${where}copy/ at ${s3.endpoint}: did upload 7 objects (857 B), copy 5 objects server-side (1.5 KiB), delete 0 objects; 0 objects unchanged`)
    } finally {
      await s3.stop()
    }
  })

  it('Netlify: the objects put into the deploy and the files Netlify asked for are two counts, each named', async () => {
    const fake = await startFakeNetlify()
    try {
      const deploy = () => runReg(['deploy', shared, '--backend', 'netlify', '--site', fake.siteName, '--api-url', fake.apiUrl], {env: {NETLIFY_AUTH_TOKEN: fake.token}})
      const first = await deploy()
      assert.equal(first.code, 0, first.stderr)
      const lines = first.stdout.trim().split('\n')
      // Each phase says its puts go into the deploy: Netlify asks for the contents it lacks at the end.
      assert.ok(lines.includes('blobs: put 2 objects into the deploy (350 B)'), first.stdout)
      assert.deepEqual(lines.slice(-4), [
        `netlify site ${fake.siteName}: did put 7 objects into the new deploy (857 B), copy 3 objects server-side (1.2 KiB), delete 0 objects; 0 objects unchanged`,
        'netlify: uploaded 13 files (3.3 KiB), the contents the host did not have yet (host configuration included); it had the rest',
        `Netlify deploy ${fake.published?.id} is live: https://${fake.siteName}.netlify.app`,
        `pull: docker pull ${fake.siteName}.netlify.app/team/one:1`,
      ])
      const again = await deploy()
      assert.equal(again.stdout.trim().split('\n').at(-3), 'netlify: uploaded 0 files (0 B), the contents the host did not have yet (host configuration included); it had the rest')
    } finally {
      await fake.stop()
    }
  })
})
