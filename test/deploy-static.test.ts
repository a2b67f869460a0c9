// nginx and apache backends against the real servers: every URL answers like `reg serve`,
// re-deploys are incremental, --prune removes what left. (Real clients: real-clients.test.ts.)
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {readdir, readFile, stat} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {startRegistryServer, type RunningServer} from '../src/server/registry-server.js'
import type {TreeIndex} from '../src/tree/model.js'
import {assertBlobRanges, assertConformsToServe, conformanceUrls} from './conformance.js'
import {freePort, makeServable, requireTool, type RunningHost, startApache, startNginx} from './static-hosts.js'
import {EXAMPLE_LAYOUT, removeTempDirs, runReg, tempDir, writeTinyIndexLayout, writeTinyOciLayout} from './support.js'
import {RegistryTree} from '../src/tree/registry-tree.js'

interface Case {
  backend: 'nginx' | 'apache'
  start(out: string, port: number): Promise<RunningHost>
  extraFlags(port: number): string[]
}

const CASES: Case[] = [
  {backend: 'nginx', start: startNginx, extraFlags: (port) => ['--listen', `127.0.0.1:${port}`, '--server-name', '127.0.0.1']},
  {backend: 'apache', start: startApache, extraFlags: () => []},
]

function skopeoDigest(hostPort: string, ref: string): string {
  const out = execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${hostPort}/${ref}`], {encoding: 'utf8'})
  return (JSON.parse(out) as {Digest: string}).Digest
}

for (const testCase of CASES) {
  describe(`reg deploy --backend ${testCase.backend} (real ${testCase.backend})`, () => {
    let work: string
    let tree: string
    let out: string
    let port: number
    let host: RunningHost | undefined
    let reference: RunningServer
    let index: TreeIndex

    const deploy = async (...extra: string[]) => {
      const result = await runReg(['deploy', tree, '--backend', testCase.backend, '--dest', out, '--json', ...testCase.extraFlags(port), ...extra])
      assert.equal(result.code, 0, result.stderr)
      return JSON.parse(result.stdout) as {result: {uploaded: number; copied: number; deleted: number}}
    }

    before(async () => {
      requireTool('skopeo')
      work = await tempDir()
      await makeServable(work)
      tree = path.join(work, 'tree')
      out = path.join(work, 'public')
      const second = path.join(work, 'second')
      await writeTinyOciLayout(second, {'second.txt': 'second\n'}, '2.0')
      const multiLayout = path.join(work, 'multi')
      await writeTinyIndexLayout(multiLayout, ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], 'multi')
      const built = await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, `oci:${EXAMPLE_LAYOUT}=team/app:1.0`, `oci:${second}=team/app`,
        `oci:${multiLayout}=team/multi`, `oci:${EXAMPLE_LAYOUT}=a/b/c/d/app:1.0`, '-o', tree])
      assert.equal(built.code, 0, built.stderr)
      index = (await RegistryTree.load(tree)).index
      reference = await startRegistryServer(tree, {port: 0})
      port = await freePort()
      await deploy()
      await makeServable(out)
      host = await testCase.start(out, port)
    })
    after(async () => {
      await host?.stop()
      await reference?.close()
      await removeTempDirs()
    })

    it('answers every URL like reg serve: status, headers, body, on GET and HEAD', async () => {
      await assertConformsToServe(host!.url, reference.url, conformanceUrls(index))
    })

    it('lists no directory and serves nothing outside the registry', async () => {
      for (const url of ['/v2/team/', '/v2/team/app/manifests/', '/v2/team/app/blobs/', '/_registry/', '/_registry/blobs/', '/_registry/manifests/']) {
        const res = await fetch(host!.url + url)
        assert.equal(res.status, 404, url)
        assert.ok(((await res.json()) as {errors: unknown[]}).errors.length === 1, url)
      }
      const stored = (await readdir(path.join(out, '_registry/blobs'))).filter((n) => n.startsWith('sha256:'))
      const res = await fetch(`${host!.url}/_registry/blobs/${stored[0]}`)
      assert.equal(res.status, 404, 'the store is reachable only through /v2/ URLs')
    })

    it('answers Range requests on blobs', async () => {
      const blob = index.objects.find((o) => o.class === 'blob' && o.size > 20)!
      await assertBlobRanges(host!.url, `/${blob.path}`, await readFile(path.join(tree, 'blobs/sha256', blob.digest.slice(7))))
    })

    it('stores each blob and manifest once', async () => {
      const blobDigests = new Set(index.objects.filter((o) => o.class === 'blob').map((o) => o.digest))
      const files = (await readdir(path.join(out, '_registry/blobs'))).filter((n) => n.startsWith('sha256:'))
      assert.deepEqual(files.sort(), [...blobDigests].sort())
      assert.equal((await stat(path.join(out, 'v2/team/app/blobs')).catch(() => undefined)), undefined, 'no per-repository copies')
    })

    it('re-deploys incrementally, and --prune removes what the tree no longer has', async () => {
      const again = await deploy()
      assert.equal(again.result.uploaded + again.result.copied, 0)
      const rebuilt = await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '--clean', '-o', tree])
      assert.equal(rebuilt.code, 0, rebuilt.stderr)
      const pruned = await deploy('--prune', '--prune-grace', '0')
      assert.ok(pruned.result.deleted > 0)
      // nginx.conf names its own pid file (OUT/nginx.pid): a reload finds the nginx that serves OUT.
      if (testCase.backend === 'nginx') execFileSync('nginx', ['-p', out, '-c', 'nginx.conf', '-s', 'reload'])
      // apache reads .htaccess per request: the new tags are live without a reload. nginx's old
      // workers close their keep-alive connections while reloading: a fresh connection each try.
      const statusOf = async (url: string) => (await fetch(url, {headers: {Connection: 'close'}}).catch(() => undefined))?.status
      let status: number | undefined
      for (let i = 0; i < 50 && status !== 404; i++) {
        status = await statusOf(`${host!.url}/v2/team/app/manifests/1.0`)
        if (status !== 404) await new Promise((resolve) => setTimeout(resolve, 100))
      }
      assert.equal(status, 404, 'a pruned tag is gone')
      const newIndex = (await RegistryTree.load(tree)).index
      assert.equal(skopeoDigest(host!.hostPort, 'examples/hello:1.0'), newIndex.repositories['examples/hello'].tags['1.0'])
      const blobs = (await readdir(path.join(out, '_registry/blobs'))).filter((n) => n.startsWith('sha256:'))
      assert.deepEqual(blobs.sort(), [...new Set(newIndex.objects.filter((o) => o.class === 'blob').map((o) => o.digest))].sort())
      if (testCase.backend === 'apache') await assert.rejects(stat(path.join(out, 'v2/team/app/manifests/.htaccess')), 'the routes of a removed repository are removed')
    })
  })
}
