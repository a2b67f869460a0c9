// reg serve --proxy against a hostile upstream (node:http on 127.0.0.1, test/hostile-upstream.ts):
// what an upstream sends is bounded (manifests, blobs, time), it cannot send the proxy to private
// or link-local addresses, a stored blob is never read as a manifest, and a graph walk visits each
// digest once.
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {open, readdir} from 'node:fs/promises'
import type http from 'node:http'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {after, describe, it} from 'node:test'
import {addressClass} from '../src/sources/registry/client.js'
import {ENDLESS, type HostileUpstream, pump, sha256, startHostileUpstream} from './hostile-upstream.js'
import {removeTempDirs, type ServeProcess, startServe, tempDir} from './support.js'

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
const CONFIG = Buffer.from(JSON.stringify({architecture: 'amd64', os: 'linux', rootfs: {type: 'layers', diff_ids: []}}))
const MiB = 1024 * 1024
/** what the kernel's socket buffers may hold beyond what the proxy read */
const SLACK = 16 * MiB

function imageManifest(layers: Buffer[]): Buffer {
  const blob = (bytes: Buffer, mediaType: string) => ({mediaType, digest: sha256(bytes), size: bytes.length})
  return Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: OCI_MANIFEST, config: blob(CONFIG, 'application/vnd.oci.image.config.v1+json'), layers: layers.map((l) => blob(l, 'application/vnd.oci.image.layer.v1.tar'))}))
}

function indexManifest(children: Array<{bytes: Buffer; mediaType: string}>): Buffer {
  return Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: OCI_INDEX, manifests: children.map((c) => ({mediaType: c.mediaType, digest: sha256(c.bytes), size: c.bytes.length}))}))
}

type Answer = {status: number; body: Buffer} | 'cut' | 'no answer'

/** A client's GET: its status and whole body, 'cut' when the connection broke, 'no answer' after a generous safety limit. */
async function get(url: string, method = 'GET'): Promise<Answer> {
  try {
    const res = await fetch(url, {method, signal: AbortSignal.timeout(30_000)})
    return {status: res.status, body: Buffer.from(await res.arrayBuffer())}
  } catch (error) {
    return (error as Error).name === 'TimeoutError' ? 'no answer' : 'cut'
  }
}

function errorMessage(answer: Answer): string {
  assert.ok(typeof answer === 'object', `the client got an answer (${String(answer)})`)
  return ((JSON.parse(answer.body.toString('utf8')) as {errors: Array<{message: string}>}).errors[0]).message
}

function counter(upstream: HostileUpstream, key: string): (bytes: number) => void {
  return (bytes) => upstream.sent.set(key, (upstream.sent.get(key) ?? 0) + bytes)
}

/** Temporary files of the store, once the downloads that failed have cleaned up (bounded wait). */
async function tempFilesLeft(tree: string): Promise<string[]> {
  let temps: string[] = []
  for (let i = 0; i < 50; i++) {
    temps = (await readdir(path.join(tree, 'blobs', 'sha256'))).filter((f) => f.startsWith('.tmp-'))
    if (temps.length === 0) break
    await sleep(100)
  }
  return temps
}

it('address classes: where a redirect or a token realm may lead', () => {
  const classes = Object.fromEntries(['127.0.0.2', '0.0.0.0', '::1', '10.0.0.1', '172.16.5.4', '192.168.1.1', 'fd00::2', '169.254.169.254', 'fe80::1', '::ffff:169.254.169.254', '::ffff:10.1.1.1', '224.0.0.1', '8.8.8.8', '2001:4860::8888', '172.32.0.1'].map((a) => [a, addressClass(a)]))
  assert.deepEqual(classes, {
    '127.0.0.2': 'loopback', '0.0.0.0': 'loopback', '::1': 'loopback',
    '10.0.0.1': 'private', '172.16.5.4': 'private', '192.168.1.1': 'private', 'fd00::2': 'private', '::ffff:10.1.1.1': 'private',
    '169.254.169.254': 'link-local', 'fe80::1': 'link-local', '::ffff:169.254.169.254': 'link-local',
    '224.0.0.1': 'reserved', '8.8.8.8': 'public', '2001:4860::8888': 'public', '172.32.0.1': 'public',
  })
})

describe('reg serve --proxy against a hostile upstream', () => {
  const stops: Array<() => Promise<void>> = []
  after(async () => {
    for (const stop of stops.reverse()) await stop()
    await removeTempDirs()
  })

  async function proxy(env: NodeJS.ProcessEnv = {}): Promise<{upstream: HostileUpstream; server: ServeProcess; tree: string}> {
    const upstream = await startHostileUpstream()
    stops.push(() => upstream.stop())
    const tree = path.join(await tempDir(), 'tree')
    const server = await startServe(tree, ['--proxy', `evil=${upstream.url}`], env)
    stops.push(() => server.stop())
    return {upstream, server, tree}
  }

  it('an endless manifest is cut at the manifest bound: the client gets a 502, the proxy stays small', async (t) => {
    const {upstream, server} = await proxy()
    const where = '/v2/endless/manifests/latest'
    upstream.on('GET', where, (req, res) => {
      res.writeHead(200, {'Content-Type': OCI_MANIFEST})
      if (req.method === 'HEAD') return void res.end()
      return pump(res, ENDLESS, counter(upstream, where), Buffer.from('{"schemaVersion":2,"padding":"'), 0x61)
    })
    const before = (await server.memory()).peak
    const answer = await get(`${server.url}/v2/evil/endless/manifests/latest`)
    assert.ok(typeof answer === 'object' && answer.status === 502, `502 (${typeof answer === 'object' ? answer.status : answer})`)
    const grown = (await server.memory()).peak - before
    t.diagnostic(`peak RSS grew by ${grown} bytes; the upstream got ${upstream.sent.get(where)} bytes onto the wire`)
    assert.ok(grown < 100 * MiB, `the proxy grew by ${grown} bytes`)
    assert.ok(upstream.sent.get(where)! < 4 * MiB + SLACK, `the proxy took ${upstream.sent.get(where)} bytes of it`)
    assert.match(errorMessage(answer), /larger than 4194304 bytes/)
  })

  it('a blob no manifest describes, sent without a Content-Length, is refused before a byte is stored', async (t) => {
    const {upstream, server, tree} = await proxy()
    const digest = sha256(Buffer.from('never sent whole'))
    const where = `/v2/endless/blobs/${digest}`
    upstream.on('GET', where, (req, res) => {
      res.writeHead(200, {'Content-Type': 'application/octet-stream'})
      if (req.method === 'HEAD') return void res.end()
      return pump(res, ENDLESS, counter(upstream, where))
    })
    const answer = await get(`${server.url}/v2/evil/endless/blobs/${digest}`)
    assert.ok(typeof answer === 'object' && answer.status === 502, `502 (${typeof answer === 'object' ? answer.status : answer})`)
    t.diagnostic(`the upstream got ${upstream.sent.get(where) ?? 0} bytes onto the wire`)
    assert.ok((upstream.sent.get(where) ?? 0) < SLACK, `the proxy took ${upstream.sent.get(where)} bytes of it`)
    assert.match(errorMessage(answer), /did not say how long it is/)
    assert.deepEqual(await tempFilesLeft(tree), [])
  })

  it('a blob longer than its descriptor is stopped at its size (chunked) or refused (a Content-Length that differs)', async (t) => {
    const {upstream, server, tree} = await proxy()
    const chunked = randomBytes(MiB)
    const lying = randomBytes(MiB)
    const manifest = imageManifest([chunked, lying])
    upstream.manifest('long', sha256(manifest), manifest, OCI_MANIFEST)
    upstream.blob('long', CONFIG)
    const chunkedAt = `/v2/long/blobs/${sha256(chunked)}`
    upstream.on('GET', chunkedAt, (req, res) => {
      res.writeHead(200, {'Content-Type': 'application/octet-stream'})
      if (req.method === 'HEAD') return void res.end()
      return pump(res, ENDLESS, counter(upstream, chunkedAt), chunked)
    })
    const lyingAt = `/v2/long/blobs/${sha256(lying)}`
    upstream.on('GET', lyingAt, (req, res) => {
      res.writeHead(200, {'Content-Type': 'application/octet-stream', 'Content-Length': lying.length + 64 * MiB})
      if (req.method === 'HEAD') return void res.end()
      return pump(res, lying.length + 64 * MiB, counter(upstream, lyingAt), lying)
    })
    // By digest: the proxy learns the sizes from the manifest (and publishes nothing in the background).
    const got = await get(`${server.url}/v2/evil/long/manifests/${sha256(manifest)}`)
    assert.ok(typeof got === 'object' && got.status === 200 && got.body.equals(manifest))
    for (const [layer, at] of [[chunked, chunkedAt], [lying, lyingAt]] as const) {
      const answer = await get(`${server.url}/v2/evil/long/blobs/${sha256(layer)}`)
      t.diagnostic(`${at}: the upstream got ${upstream.sent.get(at)} bytes onto the wire (blob: ${layer.length})`)
      assert.ok(answer === 'cut' || (typeof answer === 'object' && answer.status !== 200), `${at}: the client never gets it whole (${typeof answer === 'object' ? answer.status : answer})`)
      assert.ok(upstream.sent.get(at)! < layer.length + SLACK, `${at}: the proxy took ${upstream.sent.get(at)} bytes of a ${layer.length}-byte blob`)
    }
    assert.match(errorMessage(await get(`${server.url}/v2/evil/long/blobs/${sha256(lying)}`)), /sends 68157440 bytes, its descriptor says 1048576/)
    assert.deepEqual(await tempFilesLeft(tree), [])
  })

  it('a redirect from a loopback upstream to a private or link-local address is refused before connecting', async () => {
    const {upstream, server} = await proxy()
    for (const [n, location] of ['http://10.0.0.1:9/blob', 'http://169.254.169.254/latest/meta-data/'].entries()) {
      const digest = sha256(Buffer.from(`redirected ${n}`))
      upstream.on('GET', `/v2/redirect/blobs/${digest}`, (_req, res) => void res.writeHead(307, {Location: location, 'Content-Length': 0}).end())
      const answer = await get(`${server.url}/v2/evil/redirect/blobs/${digest}`)
      assert.ok(typeof answer === 'object' && answer.status === 502, `${location}: 502 (${typeof answer === 'object' ? answer.status : answer})`)
      assert.match(errorMessage(answer), /refused a redirect to (10\.0\.0\.1:9: 10\.0\.0\.1 is a private|169\.254\.169\.254: 169\.254\.169\.254 is a link-local) address/)
    }
  })

  it('a token realm at 169.254.169.254 is refused', async () => {
    const {upstream, server} = await proxy()
    upstream.on('GET', '/v2/realm/manifests/latest', (_req, res) => {
      res.writeHead(401, {'WWW-Authenticate': 'Bearer realm="http://169.254.169.254/latest/api/token",service="evil"', 'Content-Length': 0}).end()
    })
    const answer = await get(`${server.url}/v2/evil/realm/manifests/latest`)
    assert.ok(typeof answer === 'object' && answer.status === 502, `502 (${typeof answer === 'object' ? answer.status : answer})`)
    assert.match(errorMessage(answer), /refused the token realm to 169\.254\.169\.254: 169\.254\.169\.254 is a link-local address/)
  })

  it('a tags list that is not one is a 502 with a JSON error', async () => {
    const {upstream, server} = await proxy()
    const answers: Record<string, string> = {junk: '<html>not json</html>', numbers: '{"name":"numbers","tags":[1,2]}'}
    for (const [repository, body] of Object.entries(answers)) {
      upstream.on('GET', `/v2/${repository}/tags/list`, (_req, res) => void res.writeHead(200, {'Content-Type': 'text/html', 'Content-Length': body.length}).end(body))
      const answer = await get(`${server.url}/v2/evil/${repository}/tags/list`)
      assert.ok(typeof answer === 'object' && answer.status === 502, `${repository}: 502 (${typeof answer === 'object' ? answer.status : answer})`)
      assert.match(errorMessage(answer), /the tags list of (junk: the answer is not JSON|numbers: "tags" is not a list of names)/)
    }
  })

  it('an upstream that sends headers and then nothing, or trickles, is given up on (REG_UPSTREAM_TIMEOUT=1)', async () => {
    const {upstream, server} = await proxy({REG_UPSTREAM_TIMEOUT: '1'})
    const hanging = new Set<http.ServerResponse>()
    upstream.on('HEAD', '/v2/loris/manifests/latest', (_req, res) => void res.writeHead(200, {'Content-Type': OCI_MANIFEST, 'Content-Length': 1000}).end())
    upstream.on('GET', '/v2/loris/manifests/latest', (_req, res) => {
      res.writeHead(200, {'Content-Type': OCI_MANIFEST, 'Content-Length': 1000})
      res.flushHeaders()
      hanging.add(res)
    })
    const stalled = sha256(Buffer.from('stalled'))
    upstream.on('GET', `/v2/loris/blobs/${stalled}`, (_req, res) => {
      res.writeHead(200, {'Content-Type': 'application/octet-stream', 'Content-Length': MiB})
      res.flushHeaders()
      hanging.add(res)
    })
    const trickled = sha256(Buffer.from('trickled'))
    upstream.on('GET', `/v2/loris/blobs/${trickled}`, async (_req, res) => {
      res.writeHead(200, {'Content-Type': 'application/octet-stream', 'Content-Length': MiB})
      // 64 bytes every 100 ms, until the proxy goes away (at most a minute)
      for (let i = 0; i < 600 && !res.destroyed && !res.writableEnded; i++) {
        res.write(Buffer.alloc(64))
        await sleep(100)
      }
    })
    const manifest = await get(`${server.url}/v2/evil/loris/manifests/latest`)
    assert.ok(typeof manifest === 'object' && manifest.status === 502, `manifest: 502 (${typeof manifest === 'object' ? manifest.status : manifest})`)
    assert.match(errorMessage(manifest), /got no whole answer within 1 s/)
    for (const digest of [stalled, trickled]) {
      const blob = await get(`${server.url}/v2/evil/loris/blobs/${digest}`)
      assert.ok(blob === 'cut' || (typeof blob === 'object' && blob.status === 502), `blob ${digest}: the proxy gave up (${typeof blob === 'object' ? blob.status : blob})`)
    }
    for (const res of hanging) res.destroy()
  })

  it('an index listing one child 40 times, 4 levels deep, is walked once per digest and to its end', async (t) => {
    const {upstream, server} = await proxy()
    const leaf = imageManifest([Buffer.from('leaf layer')])
    const tailLayer = Buffer.from('tail layer')
    const tail = imageManifest([tailLayer])
    let level = indexManifest([{bytes: leaf, mediaType: OCI_MANIFEST}])
    const manifests = [leaf, tail, level]
    for (let depth = 0; depth < 3; depth++) {
      level = indexManifest(Array.from({length: 40}, () => ({bytes: level, mediaType: OCI_INDEX})))
      manifests.push(level)
    }
    // The tail image comes after the repeated child: a walk that repeats the child never reaches it.
    const top = indexManifest([...Array.from({length: 40}, () => ({bytes: level, mediaType: OCI_INDEX})), {bytes: tail, mediaType: OCI_MANIFEST}])
    upstream.manifest('deep', 'v1', top, OCI_INDEX)
    for (const bytes of manifests) upstream.manifest('deep', sha256(bytes), bytes, bytes === leaf || bytes === tail ? OCI_MANIFEST : OCI_INDEX)
    for (const blob of [CONFIG, Buffer.from('leaf layer'), tailLayer]) upstream.blob('deep', blob)
    const answer = await get(`${server.url}/v2/evil/deep/manifests/v1`)
    assert.ok(typeof answer === 'object' && answer.status === 200 && answer.body.equals(top))
    // The walk runs in the background after the answer, some fetches in parallel: wait (bounded) for it
    // to reach the tail image's layer and to have asked for as many digests as the graph holds.
    const tailAt = `/v2/deep/blobs/${sha256(tailLayer)}`
    const digestGets = () => upstream.requests.filter((r) => r.method === 'GET' && /\/(manifests|blobs)\/sha256:/.test(r.url)).map((r) => r.url)
    for (let i = 0; i < 300 && !(upstream.requests.some((r) => r.method === 'GET' && r.url === tailAt) && digestGets().length >= manifests.length + 3); i++) await sleep(100)
    const gets = digestGets()
    t.diagnostic(`upstream GETs by digest: ${gets.length}`)
    assert.ok(upstream.requests.some((r) => r.method === 'GET' && r.url === tailAt), 'the walk reached the last child of the top index')
    assert.equal(gets.length, new Set(gets).size, `each digest fetched once: ${gets.join(', ')}`)
    assert.equal(gets.length, manifests.length + 3, 'every manifest and blob of the graph, once')
  })

  it('a manifest request for the digest of a big stored blob is answered without reading the blob', async (t) => {
    const {server, tree} = await proxy()
    // 256 MiB of zeros (a sparse file: no disk used), stored as a blob under its digest.
    const size = 256 * MiB
    const hash = createHash('sha256')
    const zeros = Buffer.alloc(MiB)
    for (let i = 0; i < size / MiB; i++) hash.update(zeros)
    const digest = `sha256:${hash.digest('hex')}`
    const file = await open(path.join(tree, 'blobs', 'sha256', digest.slice(7)), 'wx')
    await file.truncate(size)
    await file.close()
    const before = (await server.memory()).peak
    const answer = await get(`${server.url}/v2/evil/big/manifests/${digest}`)
    const grown = (await server.memory()).peak - before
    t.diagnostic(`peak RSS grew by ${grown} bytes`)
    assert.ok(typeof answer === 'object' && answer.status === 404, `404 (${typeof answer === 'object' ? answer.status : answer})`)
    assert.ok(grown < 100 * MiB, `the proxy grew by ${grown} bytes`)
  })
})
