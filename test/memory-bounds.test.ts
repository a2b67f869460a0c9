// Memory at scale (issue 15): what a tree of many tags costs to load and to deploy is its state,
// not its state plus the text of registry.json and a parsed copy of it, nor the nginx maps file
// held whole. Measured in a child process whose heap is capped (node --max-old-space-size): the
// cap is the bound under test, about twice what the work needs now and well under what it needed
// when the file was read whole (a heap over the cap ends the child: "heap out of memory").
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {createHash} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {once} from 'node:events'
import {RegError} from '../src/core/errors.js'
import {LocalFileTarget, LOCAL_STATE_FILE} from '../src/publish/local-files.js'
import {BlobStore} from '../src/tree/blob-store.js'
import {generateDocuments} from '../src/tree/objects.js'
import {readTreeIndex} from '../src/tree/registry-tree.js'
import {REPO_ROOT, removeTempDirs, tempDir} from './support.js'

const LIB = path.join(REPO_ROOT, 'lib')

/** Run an ES module script in a node whose heap is capped at `heapMb`; its stdout, or its failure. */
function runCapped(heapMb: number, script: string, args: string[]): Promise<{code: number; stdout: string; stderr: string}> {
  return new Promise((resolve) => {
    execFile(process.execPath, [`--max-old-space-size=${heapMb}`, '--input-type=module', '-e', script, '--', ...args], {maxBuffer: 1 << 20}, (error, stdout, stderr) => {
      resolve({code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr: stderr.slice(-2000)})
    })
  })
}

const digest = (seed: string) => `sha256:${createHash('sha256').update(seed).digest('hex')}`

/** A registry.json as reg writes it: `repositories` × `tags` tags over `manifests` images (a config and a layer each). */
async function writeRegistryJson(file: string, repositories: number, tags: number, manifests: number): Promise<void> {
  const out = createWriteStream(file)
  const write = async (text: string) => {
    if (!out.write(text)) await once(out, 'drain')
  }
  await write('{"schemaVersion":2,"generator":"reg","settings":{"tagMaxAge":60},\n"repositories":{')
  for (let r = 0; r < repositories; r++) {
    const record: Record<string, string> = {}
    for (let t = 0; t < tags; t++) record[`v${t}`] = digest(`m${(r * tags + t) % manifests}`)
    await write(`${r === 0 ? '\n' : ',\n'}"team/r${r}":${JSON.stringify({tags: record})}`)
  }
  await write('},\n"manifests":{')
  for (let m = 0; m < manifests; m++) {
    const record = {mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 400, kind: 'image', blobs: [digest(`c${m}`), digest(`l${m}`)]}
    await write(`${m === 0 ? '\n' : ',\n'}"${digest(`m${m}`)}":${JSON.stringify(record)}`)
  }
  await write('},\n"blobs":{')
  for (let m = 0; m < manifests; m++) {
    await write(`${m === 0 ? '\n' : ',\n'}"${digest(`c${m}`)}":{"size":100,"mediaType":"application/vnd.oci.image.config.v1+json"},\n"${digest(`l${m}`)}":{"size":1000,"mediaType":"application/vnd.oci.image.layer.v1.tar"}`)
  }
  await write('}}\n')
  out.end()
  await once(out, 'finish')
}

describe('memory at scale', () => {
  /** a tree of 200,000 tags in 200 repositories: its registry.json (17 MB) and the documents it implies, no images */
  let dir: string
  before(async () => {
    dir = await tempDir()
    await writeRegistryJson(path.join(dir, 'registry.json'), 200, 1000, 2000)
    const store = new BlobStore(dir)
    await store.init()
    for (const doc of generateDocuments((await readTreeIndex(dir))!)) await store.writeBytes(doc.bytes)
  })
  after(removeTempDirs)

  it('a registry.json of 200,000 tags (17 MB) is read and checked in a 36 MB heap: never whole, as text or parsed', async () => {
    const script = `
      const {readTreeIndex} = await import(${JSON.stringify(path.join(LIB, 'src/tree/registry-tree.js'))})
      const state = await readTreeIndex(process.argv[1])
      let tags = 0
      for (const name in state.repositories) tags += Object.keys(state.repositories[name].tags).length
      console.log(tags, Object.keys(state.manifests).length, Object.keys(state.blobs).length)`
    const result = await runCapped(36, script, [dir])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout.trim(), '200000 2000 4000')
  })

  it("reg ls's listing of 200,000 tags is made in a 96 MB heap: from the checked state, no objects derived (800,000 here)", async () => {
    const script = `
      const {listTree} = await import(${JSON.stringify(path.join(LIB, 'src/tree/listing.js'))})
      const listing = await listTree(process.argv[1])
      console.log(listing.repositories, listing.images.length, listing.images[0].repository + ':' + listing.images[0].tag, listing.images[0].size)`
    const result = await runCapped(96, script, [dir])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout.trim(), '200 200000 team/r0:v0 1500')
  })

  it('the nginx configuration of 100,000 tags is written in a 60 MB heap: the maps file is never one string', async () => {
    const dest = await tempDir()
    const script = `
      const {mkdir} = await import('node:fs/promises')
      const {nginxBackend} = await import(${JSON.stringify(path.join(LIB, 'plugins/backend-nginx/index.js'))})
      const backend = await nginxBackend.create({dest: process.argv[1]})
      const headers = Object.freeze({'Content-Type': 'application/vnd.oci.image.manifest.v1+json'})
      const digests = Array.from({length: 2000}, (_, i) => 'sha256:' + i.toString(16).padStart(64, '0'))
      const names = Array.from({length: 1000}, (_, i) => 'team/r' + i)
      const routed = []
      for (let i = 0; i < 100000; i++) routed.push({path: 'v2/' + names[i % 1000] + '/manifests/v' + i, class: 'tag-manifest', repository: names[i % 1000], digest: digests[i % 2000], size: 400, headers})
      await mkdir(process.argv[1], {recursive: true})
      await backend.writeHostConfig({index: {settings: {tagMaxAge: 60}, objects: routed}}, routed)
      console.log('ok')`
    const result = await runCapped(60, script, [dest])
    assert.equal(result.code, 0, result.stderr)
    const maps = await readFile(path.join(dest, 'registry-maps.conf'), 'utf8')
    const entries = maps.split('\n').filter((line) => line.startsWith('    "/v2/team/r'))
    assert.equal(entries.length, 100_000)
    assert.equal(entries[0], `    "/v2/team/r0/manifests/v0" "/v2/team/r0/manifests/v0 /_registry/manifests/sha256:${'0'.repeat(64)}.oci-manifest";`)
  })

  it('the local deploy state, read in pieces, is what JSON.parse read: written back the same, refused where it was refused', async () => {
    const sha = `sha256:${'a'.repeat(64)}`
    const cases: Array<[string, string | typeof RegError]> = [
      [JSON.stringify({objects: {'v2/b': sha, 'v2/a': sha}, unreferenced: {'v2/c': '2026-01-01T00:00:00.000Z'}}), `{"objects":{"v2/a":"${sha}","v2/b":"${sha}"},"unreferenced":{"v2/c":"2026-01-01T00:00:00.000Z"}}`],
      // duplicate keys: the last one wins; a key named __proto__ is a key like any other
      [`{"objects":{"v2/a":"x","__proto__":"p","v2/a":"${sha}"},"objects":{"v2/a":"y"}}`, '{"objects":{"v2/a":"y"}}'],
      [`{"objects":{"v2/a":"${sha}","__proto__":"p"}}`, `{"objects":{"__proto__":"p","v2/a":"${sha}"}}`],
      ['{"objects":null,"unreferenced":{"v2/x":"not a time"}}', '{"objects":{}}'],
      ['5', '{"objects":{}}'],
      ['[]', '{"objects":{}}'],
      ['null', RegError],
      ['{"objects":{"v2/a":"x",}}', RegError],
      ['{"objects":{"v2/a":"x"}', RegError],
    ]
    for (const [saved, expected] of cases) {
      const root = await tempDir()
      await writeFile(path.join(root, LOCAL_STATE_FILE), saved)
      const target = new LocalFileTarget(root, ['v2'])
      if (expected === RegError) {
        await assert.rejects(target.describe(), RegError, saved)
        continue
      }
      await target.describe()
      await target.saveState()
      assert.equal(await readFile(path.join(root, LOCAL_STATE_FILE), 'utf8'), expected, saved)
    }
  })
})
