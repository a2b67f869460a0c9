// How `reg serve` answers what goes wrong: every refusal is a spec error from one place; the
// server's own failures are a 500 that tells the client nothing of the server (the log has it).
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {writeFile, readFile} from 'node:fs/promises'
import path from 'node:path'
import {after, describe, it} from 'node:test'
import {HttpError, httpErrorOf} from '../src/core/api-errors.js'
import {DigestMismatchError} from '../src/core/digest.js'
import {RegError} from '../src/core/errors.js'
import {TooLargeError} from '../src/core/limits.js'
import {startRegistryServer} from '../src/server/registry-server.js'
import {routeOf} from '../src/server/routes.js'
import {TreeWriter} from '../src/server/tree-writer.js'
import {removeTempDirs, tempDir} from './support.js'

const DIGEST = 'sha256:' + 'a'.repeat(64)
const CONFIG = '{}'
const CONFIG_DIGEST = 'sha256:' + createHash('sha256').update(CONFIG).digest('hex')

type ErrorBody = {errors: Array<{code: string; message: string}>}

describe('reg serve: errors', () => {
  after(() => removeTempDirs())

  it('answers a corrupt registry.json with 500 "internal error", the detail in the log only', async () => {
    const dir = path.join(await tempDir(), 'tree')
    await new TreeWriter(dir).ensureTree()
    const logged: string[] = []
    for (const push of [false, true]) {
      const server = await startRegistryServer(dir, {port: 0, push, log: (line) => logged.push(line)})
      const index = path.join(dir, 'registry.json')
      const good = await readFile(index)
      try {
        // with --push, a manifest whose config is stored: only the index stands between it and a tag
        if (push) assert.equal((await fetch(`${server.url}/v2/team/app/blobs/uploads/?digest=${CONFIG_DIGEST}`, {method: 'POST', body: CONFIG})).status, 201)
        await writeFile(index, '{"this is not": a tree index')
        const requests: Array<[string, string, string?]> = [['GET', '/v2/'], ['GET', '/v2/_catalog'], ['GET', '/v2/team/app/manifests/1'], ['GET', `/v2/team/app/referrers/${DIGEST}`]]
        if (push) requests.push(['PUT', '/v2/team/app/manifests/1', JSON.stringify({schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: {mediaType: 'application/vnd.oci.image.config.v1+json', digest: CONFIG_DIGEST, size: 2}, layers: []})])
        for (const [method, url, body] of requests) {
          const res = await fetch(server.url + url, {method, body, headers: body ? {'Content-Type': 'application/vnd.oci.image.manifest.v1+json'} : {}})
          const text = await res.text()
          assert.equal(res.status, 500, `${method} ${url}: ${text}`)
          assert.equal(res.headers.get('cache-control'), 'no-store')
          assert.deepEqual((JSON.parse(text) as ErrorBody).errors.map((e) => [e.code, e.message]), [['UNKNOWN', 'internal error']], `${method} ${url}`)
          assert.ok(!text.includes(dir) && !text.includes('registry.json'), `${method} ${url} tells the client nothing of the server: ${text}`)
        }
        const head = await fetch(server.url + '/v2/', {method: 'HEAD'})
        assert.equal(head.status, 500)
        assert.equal((await head.arrayBuffer()).byteLength, 0, 'HEAD: no body')
        assert.ok(logged.length >= requests.length + 1, `every failure is logged: ${logged.length}`)
        assert.ok(logged.every((line) => line.includes(index) && line.includes('corrupt')), logged.join('\n'))
        // repaired: served again, without a restart
        await writeFile(index, good)
        assert.equal((await fetch(server.url + '/v2/')).status, 200)
      } finally {
        await writeFile(index, good)
        await server.close()
      }
      logged.length = 0
    }
  })

  it('answers a name reg cannot hold with 400 NAME_INVALID, and an unknown method with 405 and the methods that are', async () => {
    const dir = path.join(await tempDir(), 'tree')
    await new TreeWriter(dir).ensureTree()
    const server = await startRegistryServer(dir, {port: 0, push: true, log: () => assert.fail('nothing here is the server\'s failure')})
    try {
      const bad = await fetch(`${server.url}/v2/Team/App/blobs/uploads/`, {method: 'POST'})
      assert.equal(bad.status, 400)
      assert.equal(((await bad.json()) as ErrorBody).errors[0].code, 'NAME_INVALID')
      const patch = await fetch(`${server.url}/v2/team/app/manifests/1`, {method: 'PATCH', body: '{}'})
      assert.equal(patch.status, 405)
      assert.equal(patch.headers.get('allow'), 'GET, HEAD, PUT, DELETE')
      assert.equal(((await patch.json()) as ErrorBody).errors[0].code, 'UNSUPPORTED')
      const session = await fetch(`${server.url}/v2/team/app/blobs/uploads/not-an-upload`, {method: 'PATCH', body: 'x'})
      assert.equal(session.status, 404)
      assert.equal(((await session.json()) as ErrorBody).errors[0].code, 'BLOB_UPLOAD_UNKNOWN')
    } finally {
      await server.close()
    }
  })

  it('maps the core\'s errors to the spec\'s codes in one table; other errors are the server\'s own', () => {
    const cases: Array<[unknown, [number, string] | undefined]> = [
      [new DigestMismatchError({digest: DIGEST, label: 'upload x'}, 'sha256:' + 'b'.repeat(64), 3), [400, 'DIGEST_INVALID']],
      [new RegError('listed with size 1, stored 2', undefined, 'SIZE_INVALID'), [400, 'SIZE_INVALID']],
      [new RegError('graph too large', undefined, 'GRAPH_TOO_LARGE'), [400, 'MANIFEST_INVALID']],
      [new TooLargeError('a manifest', 10), [413, 'MANIFEST_INVALID']],
      [new HttpError(409, 'DENIED', 'listed by an index'), [409, 'DENIED']],
      [new RegError('/srv/tree/registry.json is corrupt'), undefined],
      [new Error('EACCES'), undefined],
      ['a string', undefined],
    ]
    for (const [error, expected] of cases) {
      const answer = httpErrorOf(error)
      assert.deepEqual(answer && [answer.status, answer.code], expected, String(error))
    }
  })

  it('routes by URL class first', () => {
    const cases: Array<[string, string, string?, string?]> = [
      ['v2', 'api-version'],
      ['v2/', 'api-root'],
      ['v2/_catalog', 'catalog'],
      ['v2/team/app/tags/list', 'tags-list', 'team/app'],
      ['v2/team/app/manifests/1.0', 'manifest', 'team/app', '1.0'],
      [`v2/team/app/manifests/${DIGEST}`, 'manifest', 'team/app', DIGEST],
      [`v2/team/app/blobs/${DIGEST}`, 'blob', 'team/app', DIGEST],
      ['v2/team/app/blobs/uploads/', 'upload', 'team/app'],
      ['v2/team/app/blobs/uploads/0b5c6f1e-0000-4000-8000-000000000000', 'upload-session', 'team/app', '0b5c6f1e-0000-4000-8000-000000000000'],
      [`v2/team/app/referrers/${DIGEST}`, 'referrers', 'team/app', DIGEST],
      ['v2/team/app/referrers/', 'referrers', 'team/app', ''],
      ['registry.json', 'unknown'],
      ['v2/team/app', 'unknown'],
    ]
    for (const [urlPath, urlClass, name, reference] of cases) {
      const route = routeOf(urlPath)
      assert.deepEqual([route.class, route.name, reference === undefined ? undefined : route.reference], [urlClass, name, reference], urlPath)
    }
  })
})
