// The catalog page's files as generated from a tree's state: bounded in size at 100,000 tags,
// stable where the state did not change (what an incremental deploy relies on), escaped, and with
// what the referrers say.
import assert from 'node:assert/strict'
import {readdir, stat, unlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, describe, it} from 'node:test'
import {sha256} from '../src/core/digest.js'
import {escapeHtml, pageDocuments} from '../src/page/documents.js'
import {summarizeConfig} from '../src/page/config-summary.js'
import {dict, type ManifestRecord, type TreeState} from '../src/tree/model.js'
import {parseTreeIndex} from '../src/tree/registry-tree.js'
import {deriveTree, RegistryTree} from '../src/tree/registry-tree.js'
import {EXAMPLE_LAYOUT, removeTempDirs, runReg, tempDir} from './support.js'

const hex = (n: number, salt: string) => (salt + n.toString(16)).padStart(64, '0').slice(-64)
const digest = (n: number, salt: string) => `sha256:${hex(n, salt)}`

/** A state of `repositories` repositories with `tags` tags spread over them (tag i created at second i), the first holding `crowded` more. */
function syntheticState(repositories: number, tagsPerRepository: number, crowded = 0): TreeState {
  const state: TreeState = {schemaVersion: 2, generator: 'reg', settings: {tagMaxAge: 60, page: true}, repositories: dict(), manifests: dict(), blobs: dict()}
  const config = digest(1, 'c')
  const layer = digest(1, 'b')
  state.blobs[config] = {size: 300, mediaType: 'application/vnd.oci.image.config.v1+json'}
  state.blobs[layer] = {size: 123_456, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip'}
  let n = 0
  for (let r = 0; r < repositories; r++) {
    const name = `ns${r % 10}/repo${r}`
    const tags = dict<string>()
    for (let t = 0; t < tagsPerRepository + (r === 0 ? crowded : 0); t++) {
      const manifest = digest(++n, 'a')
      const record: ManifestRecord = {mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 500, kind: 'image', children: [], blobs: [config, layer],
        platform: {os: 'linux', architecture: 'amd64'}, config: {created: new Date(Date.UTC(2026, 0, 1) + n * 1000).toISOString().replace('.000', '')}}
      state.manifests[manifest] = record
      tags[`v${t}`] = manifest
    }
    state.repositories[name] = {tags}
  }
  return state
}

describe('catalog page files', () => {
  it('at 100,000 tags in one repository and 2,000 repositories, no file is larger than 300 KiB', (t) => {
    const state = syntheticState(2000, 1, 100_000)
    const documents = pageDocuments(state)
    const largest = Math.max(...documents.map((d) => d.bytes.length))
    const total = documents.reduce((sum, d) => sum + d.bytes.length, 0)
    assert.ok(largest <= 300 * 1024, `largest page file: ${largest} bytes`)
    const crowded = documents.filter((d) => d.repository === 'ns0/repo0')
    const chunks = crowded.filter((d) => d.class === 'page-data')
    // every tag is in exactly one piece, oldest first
    const listed = chunks.flatMap((d) => (JSON.parse(d.bytes.toString()) as {tags: Array<{tag: string}>}).tags.map((t) => t.tag))
    assert.equal(listed.length, 100_001)
    assert.equal(new Set(listed).size, 100_001)
    assert.deepEqual(listed.slice(0, 2), ['v0', 'v1'])
    assert.equal(listed.at(-1), 'v100000')
    // the repository's page shows the newest 25, newest first
    const html = crowded.find((d) => d.class === 'page')!.bytes.toString()
    assert.equal(html.match(/<li data-tag=/g)?.length, 25)
    assert.ok(html.indexOf('data-tag="v100000"') < html.indexOf('data-tag="v99999"'))
    // the root page lists the first 100 repositories; all of them are in its data pieces
    const root = documents.find((d) => d.path === 'index.html')!.bytes.toString()
    assert.equal(root.match(/<li data-name=/g)?.length, 100)
    assert.equal(root.match(/<option value="ns\d+">/g)?.length, 10)
    const names = documents.filter((d) => d.path.startsWith('r/-/repositories-')).flatMap((d) => (JSON.parse(d.bytes.toString()) as {repositories: Array<{name: string}>}).repositories.map((r) => r.name))
    assert.equal(names.length, 2000)
    t.diagnostic(`100,001 tags + 2,000 repositories: ${documents.length} page files, ${total} bytes, the largest ${largest} bytes`)
  })

  it('a new tag changes the root page, its repository page and the last piece of its data only', () => {
    const before = syntheticState(3, 1200)
    const after = syntheticState(3, 1200)
    after.manifests[digest(999_999, 'a')] = {...after.manifests[Object.values(after.repositories['ns1/repo1'].tags)[0]], config: {created: '2027-01-01T00:00:00Z'}}
    after.repositories['ns1/repo1'].tags.newest = digest(999_999, 'a')
    const bytesOf = (state: TreeState) => new Map(pageDocuments(state).map((d) => [d.path, d.bytes.toString()]))
    const [a, b] = [bytesOf(before), bytesOf(after)]
    const changed = [...b].filter(([path, bytes]) => a.get(path) !== bytes).map(([path]) => path).sort()
    assert.deepEqual(changed, ['index.html', 'r/-/repositories-0.json', 'r/ns1/repo1/-/index.html', 'r/ns1/repo1/-/tags-2.json'])
  })

  it('escapes what others chose; a stored summary keeps only what a build keeps', () => {
    assert.equal(escapeHtml(`<a href="x" onclick='y'>&</a>`), '&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;')
    const state = syntheticState(1, 1)
    const image = Object.values(state.manifests)[0]
    image.config = summarizeConfig({created: 'not a time', config: {Labels: {
      'org.opencontainers.image.description': '</script><script>alert(1)</script>',
      'org.opencontainers.image.source': 'x'.repeat(10_000),
      'com.example.other': 'dropped',
    }}})
    assert.deepEqual(Object.keys(image.config.labels!), ['org.opencontainers.image.description', 'org.opencontainers.image.source'])
    assert.equal(image.config.labels!['org.opencontainers.image.source'].length, 500)
    assert.equal(image.config.created, undefined)
    const html = pageDocuments(state).filter((d) => d.class === 'page').map((d) => d.bytes.toString()).join('\n')
    assert.ok(!html.includes('</script><script>alert(1)'))
    assert.ok(html.includes('&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;'))
    // registry.json tampered with: a summary holding more than a build writes is cut to the same rules
    const text = JSON.stringify({...state, manifests: Object.fromEntries(Object.entries(state.manifests).map(([d, r]) => [d, {...r, config: {created: '2026-01-01T00:00:00Z', labels: {'com.example.huge': 'y'.repeat(100_000), 'org.opencontainers.image.title': 7}}}]))})
    const parsed = parseTreeIndex(text, 'registry.json')
    assert.deepEqual(Object.values(parsed.manifests)[0].config, {created: '2026-01-01T00:00:00Z'})
    assert.throws(() => parseTreeIndex(JSON.stringify({...state, settings: {tagMaxAge: 60, page: true, publicUrl: 'javascript:alert(1)'}}), 'registry.json'), /publicUrl/)
  })

  it('shows signatures and SBOMs the referrers name, and pull commands for --public-url', () => {
    const state = syntheticState(1, 1)
    state.settings.publicUrl = 'https://registry.example.com:8443/ignored/path'
    const [name] = Object.keys(state.repositories)
    const subject = Object.values(state.repositories[name].tags)[0]
    const referrer = (n: number, artifactType: string): string => {
      state.manifests[digest(n, 'f')] = {mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 400, kind: 'image', children: [], blobs: [], subject, artifactType}
      return digest(n, 'f')
    }
    state.repositories[name].untagged = [referrer(1, 'application/vnd.dev.sigstore.bundle.v0.3+json'), referrer(2, 'application/spdx+json'), referrer(3, 'application/vnd.cncf.notary.signature')].sort()
    const {index, documents} = deriveTree(state)
    const html = documents.find((d) => d.path === `r/${name}/-/index.html`)!.bytes.toString()
    // one badge per kind, named by the first artifact type (in digest order) of that kind
    assert.deepEqual([...html.matchAll(/<span class="badge" title="([^"]+)">([^<]+)</g)].map((m) => `${m[2]} ${m[1]}`).sort(),
      ['SBOM application/spdx+json', 'signature application/vnd.dev.sigstore.bundle.v0.3+json'])
    assert.ok(html.includes(`docker pull <span class="host">registry.example.com:8443</span>/${name}:v0`))
    assert.ok(html.includes('data-host="registry.example.com:8443"'))
    // the page's objects: outside /v2/, their class's headers
    const pageObjects = index.objects.filter((o) => o.class.startsWith('page'))
    assert.ok(pageObjects.every((o) => !o.path.startsWith('v2/') && !o.path.startsWith('_registry/')))
    assert.ok(pageObjects.every((o) => o.headers['Cache-Control'] === (o.class === 'page-asset' ? 'public, max-age=31536000, immutable' : 'public, max-age=60')))
    // without the setting, no page
    assert.deepEqual(pageDocuments({...state, settings: {tagMaxAge: 60}}), [])
  })

  after(() => removeTempDirs())

  it('a tree whose page another version of reg wrote gets this version\'s files when loaded; a page file of the wrong size is damage', async () => {
    const tree = path.join(await tempDir('reg-page-load-'), 'tree')
    const built = await runReg(['build', '--page', '-o', tree, `oci:${EXAMPLE_LAYOUT}`])
    assert.equal(built.code, 0, built.stderr)
    const {documents} = deriveTree((await RegistryTree.load(tree)).index)
    const pageFiles = documents.filter((d) => d.class.startsWith('page')).map((d) => path.join(tree, 'blobs/sha256', sha256(d.bytes).slice(7)))
    for (const file of pageFiles) await unlink(file)
    const before = (await readdir(path.join(tree, 'blobs/sha256'))).length
    await RegistryTree.load(tree)
    for (const file of pageFiles) assert.ok((await stat(file)).isFile())
    assert.equal((await readdir(path.join(tree, 'blobs/sha256'))).length, before + pageFiles.length)
    await writeFile(pageFiles[0], 'short')
    await assert.rejects(RegistryTree.load(tree), /is damaged: the store has no/)
  })

  it('page and publicUrl from the config file; the flags win; the setting stays with the tree; a bad URL is refused', async () => {
    const dir = await tempDir('reg-page-config-')
    await writeFile(path.join(dir, 'reg.config.json'), JSON.stringify({out: './tree', page: true, publicUrl: 'https://registry.example.com', sources: [`oci:${EXAMPLE_LAYOUT}`]}))
    const config = ['--config', path.join(dir, 'reg.config.json')]
    assert.equal((await runReg(['build', ...config])).code, 0)
    const settings = async () => (await RegistryTree.load(path.join(dir, 'tree'))).index.settings
    assert.deepEqual(await settings(), {tagMaxAge: 60, page: true, publicUrl: 'https://registry.example.com'})
    assert.equal((await runReg(['build', ...config, '--no-page', '--public-url', 'http://127.0.0.1:5000'])).code, 0)
    assert.deepEqual(await settings(), {tagMaxAge: 60, publicUrl: 'http://127.0.0.1:5000'})
    // without the config file, the tree's own setting holds
    assert.equal((await runReg(['build', '--page', '-o', path.join(dir, 'tree'), `oci:${EXAMPLE_LAYOUT}`])).code, 0)
    assert.equal((await runReg(['build', '-o', path.join(dir, 'tree'), `oci:${EXAMPLE_LAYOUT}`])).code, 0)
    assert.equal((await settings()).page, true)
    const refused = await runReg(['build', '-o', path.join(dir, 'tree'), '--public-url', 'ftp://x', `oci:${EXAMPLE_LAYOUT}`])
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /--public-url "ftp:\/\/x" is not an http:\/\/ or https:\/\/ URL/)
  })
})
