// The semantic reference: a static host must answer like `reg serve` over the same tree.
import assert from 'node:assert/strict'
import type {TreeIndex} from '../src/tree/model.js'

const COMPARED_HEADERS = ['content-type', 'docker-content-digest', 'cache-control', 'docker-distribution-api-version', 'content-length']

async function snapshot(base: string, url: string, init: RequestInit) {
  const res = await fetch(base + url, {redirect: 'manual', ...init})
  const body = Buffer.from(await res.arrayBuffer())
  return {status: res.status, headers: Object.fromEntries(COMPARED_HEADERS.map((h) => [h, res.headers.get(h)])), body}
}

/** Every URL a client may ask of this tree, and a few it must not get. */
export function conformanceUrls(index: TreeIndex): string[] {
  const zero = 'sha256:' + '0'.repeat(64)
  const [name] = Object.keys(index.repositories)
  return [
    ...index.objects.map((o) => `/${o.path}`),
    '/v2', `/v2/${name}/manifests/nope`, `/v2/${name}/manifests/${zero}`, `/v2/${name}/blobs/${zero}`,
    `/v2/nope/manifests/1`, `/v2/nope/tags/list`, `/v2/${name}/`, `/v2/${name}/manifests/`, '/v2/_catalog/x',
    '/registry.json', '/index.json', '/oci-layout', '/.reg-state.json', '/nginx.conf', '/registry.conf', '/.htaccess',
    `/v2/${name}/manifests/.htaccess`, '/_registry/errors/name-unknown.json', '/v2/index.json', '/',
  ]
}

/**
 * Compare a host with `reg serve` on GET and HEAD for every URL: status, the registry headers,
 * Content-Length and body. A redirect only needs the same status and target path.
 */
export async function assertConformsToServe(host: string, reference: string, urls: string[]): Promise<void> {
  for (const url of urls) {
    for (const method of ['GET', 'HEAD']) {
      const [got, want] = await Promise.all([snapshot(host, url, {method}), snapshot(reference, url, {method})])
      assert.equal(got.status, want.status, `${method} ${url}: status`)
      if (want.status === 301) continue
      assert.deepEqual(got.headers, want.headers, `${method} ${url}: headers`)
      assert.deepEqual(got.body, want.body, `${method} ${url}: body`)
    }
  }
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const url = urls[0]
    const [got, want] = await Promise.all([snapshot(host, url, {method}), snapshot(reference, url, {method})])
    assert.equal(got.status, 405, `${method} ${url}`)
    assert.deepEqual(JSON.parse(got.body.toString()), JSON.parse(want.body.toString()), `${method} ${url}: body`)
  }
}

/** Range requests on a blob: the same bytes as the file. */
export async function assertBlobRanges(host: string, blobUrl: string, whole: Buffer): Promise<void> {
  const res = await fetch(host + blobUrl, {headers: {Range: 'bytes=5-14'}})
  assert.equal(res.status, 206)
  assert.equal(res.headers.get('content-range'), `bytes 5-14/${whole.length}`)
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), whole.subarray(5, 15))
}
