// How big the nginx and apache configurations (and Netlify's _headers/_redirects) are for a tree of 2,000 tags over 200 repositories,
// and how long nginx takes to load it (`nginx -t`, measured against an empty configuration in the
// same run). Run: node --import tsx bench/static-config.ts
import {execFileSync} from 'node:child_process'
import {readFile, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {performance} from 'node:perf_hooks'
import {writeTinyOciLayout} from '../scripts/tiny-image.js'
import {headerFileConfig} from '../src/publish/header-file-host.js'
import {RegistryTree} from '../src/tree/registry-tree.js'
import {freePort, makeServable, startApache, startNginx} from '../test/static-hosts.js'
import {removeTempDirs, runReg, tempDir} from '../test/support.js'

const REPOSITORIES = Number(process.env.BENCH_REPOSITORIES ?? 200)
const TAGS_PER_REPOSITORY = Number(process.env.BENCH_TAGS ?? 10)

function timeNginxTest(prefix: string, conf: string, runs = 5): number {
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const start = performance.now()
    execFileSync('nginx', ['-t', '-q', '-p', prefix, '-c', conf, '-g', `pid ${prefix}/bench.pid;`, '-e', `${prefix}/bench.log`], {stdio: 'pipe'})
    times.push(performance.now() - start)
  }
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)]
}

const work = await tempDir('reg-bench-config-')
await makeServable(work)
const layout = path.join(work, 'layout')
await writeTinyOciLayout(layout, {'a.txt': 'bench\n'}, 'x')
// One layout whose index names 2,000 images: 200 repositories × 10 tags, 10 distinct manifests.
const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as {manifests: Array<{annotations: Record<string, string>}>}
const entry = index.manifests[0]
index.manifests = []
for (let r = 0; r < REPOSITORIES; r++) {
  for (let t = 0; t < TAGS_PER_REPOSITORY; t++) index.manifests.push({...entry, annotations: {'org.opencontainers.image.ref.name': `example.com/team-${r}/service-${r % 7}:1.${t}.0`}})
}
await writeFile(path.join(layout, 'index.json'), JSON.stringify(index))
const tree = path.join(work, 'tree')
const build = await runReg(['build', `oci:${layout}`, '-o', tree])
if (build.code !== 0) throw new Error(build.stderr)

const rows: string[][] = []
const nginxPort = await freePort()
const nginxOut = path.join(work, 'nginx')
const nginxDeploy = await runReg(['deploy', tree, '--backend', 'nginx', '--dest', nginxOut, '--listen', `127.0.0.1:${nginxPort}`])
if (nginxDeploy.code !== 0) throw new Error(nginxDeploy.stderr)
await makeServable(nginxOut)
const empty = path.join(work, 'empty')
execFileSync('mkdir', ['-p', empty])
await writeFile(path.join(empty, 'nginx.conf'), 'events {}\nhttp { server { listen 127.0.0.1:1; } }\n')
const baseline = timeNginxTest(empty, 'nginx.conf')
const loaded = timeNginxTest(nginxOut, 'nginx.conf')
for (const file of ['registry-maps.conf', 'registry.conf', 'nginx.conf']) rows.push([`nginx ${file}`, `${(await stat(path.join(nginxOut, file))).size} bytes`])
rows.push(['nginx -t, generated config (median of 5)', `${loaded.toFixed(1)} ms`], ['nginx -t, empty config (baseline)', `${baseline.toFixed(1)} ms`], ['ratio', `${(loaded / baseline).toFixed(2)}x`])
const nginx = await startNginx(nginxOut, nginxPort)
const lastTag = `/v2/team-${REPOSITORIES - 1}/service-${(REPOSITORIES - 1) % 7}/manifests/1.${TAGS_PER_REPOSITORY - 1}.0`
rows.push(['nginx serves the last tag', String((await fetch(nginx.url + lastTag)).status)])
await nginx.stop()

const apachePort = await freePort()
const apacheOut = path.join(work, 'apache')
const apacheDeploy = await runReg(['deploy', tree, '--backend', 'apache', '--dest', apacheOut])
if (apacheDeploy.code !== 0) throw new Error(apacheDeploy.stderr)
await makeServable(apacheOut)
const htaccess = execFileSync('sh', ['-c', `find '${apacheOut}' -name .htaccess -printf '%s\\n'`], {encoding: 'utf8'}).trim().split('\n').map(Number)
rows.push(['apache .htaccess files', `${htaccess.length} files, ${htaccess.reduce((a, b) => a + b, 0)} bytes, largest ${Math.max(...htaccess)} bytes`])
const apache = await startApache(apacheOut, apachePort)
rows.push(['apache serves the last tag', String((await fetch(apache.url + lastTag)).status)])
await apache.stop()

// Netlify (and Cloudflare Pages): the rule files a deploy would upload for the same tree.
const {index: treeIndex} = await RegistryTree.load(tree)
for (const file of headerFileConfig(treeIndex).filter((f) => f.path === '_headers' || f.path === '_redirects')) {
  rows.push([`netlify ${file.path}`, `${Buffer.byteLength(file.content)} bytes, ${file.content.split('\n').filter((l) => l.startsWith('/')).length} rules`])
}

console.log(`tree: ${REPOSITORIES} repositories × ${TAGS_PER_REPOSITORY} tags = ${REPOSITORIES * TAGS_PER_REPOSITORY} tags`)
for (const [what, value] of rows) console.log(`${what.padEnd(44)} ${value}`)
await removeTempDirs()
