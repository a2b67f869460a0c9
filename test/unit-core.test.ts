// The core's pure pieces: references, source specs, manifest media types, tree name checks.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {describe, it} from 'node:test'
import {RegError} from '../src/core/errors.js'
import {parseManifest} from '../src/core/manifest.js'
import {processRunning} from '../src/core/process.js'
import {parseReference, validateName, validateTag, withPrefix} from '../src/core/reference.js'
import {parseSourceSpec} from '../src/sources/index.js'
import {validateTreeNames} from '../src/tree/validate.js'

describe('references', () => {
  it('drops the registry host and keeps the path', () => {
    assert.deepEqual(parseReference('example.com/team/app:1.0'), {name: 'team/app', tag: '1.0'})
    assert.deepEqual(parseReference('localhost:5000/a/b/c/d/e:x'), {name: 'a/b/c/d/e', tag: 'x'})
    assert.deepEqual(parseReference('docker.io/library/alpine'), {name: 'library/alpine', tag: undefined})
    assert.deepEqual(parseReference('team/app@sha256:' + 'a'.repeat(64)), {name: 'team/app', tag: undefined})
    assert.deepEqual(parseReference('app:latest'), {name: 'app', tag: 'latest'})
  })

  it('validates names and tags by the spec grammar', () => {
    for (const good of ['a', 'a/b', 'a-b/c__d/e.f/g--h/i', 'x/y/z/w/v/u']) assert.equal(validateName(good), good)
    for (const bad of ['A', 'a//b', 'a/', '/a', 'a/../b', '-a', 'a_', 'a/.b', '']) assert.throws(() => validateName(bad), RegError, bad)
    for (const good of ['1.0', 'latest', '_x', 'V1.2-rc_3', 'a'.repeat(128)]) assert.equal(validateTag(good), good)
    for (const bad of ['-x', '.x', 'a'.repeat(129), 'a/b', 'a:b', '']) assert.throws(() => validateTag(bad), RegError, bad)
    assert.equal(withPrefix('acme/', 'team/app'), 'acme/team/app')
  })
})

describe('source specs', () => {
  it('parses skopeo syntax with =NAME[:TAG]', () => {
    const oci = parseSourceSpec('oci:/x/layout:1.0=team/app:2')
    assert.equal(oci.transport, 'oci')
    assert.equal(oci.path, '/x/layout')
    assert.equal(oci.ref, '1.0')
    assert.deepEqual(oci.target, {name: 'team/app', tag: '2'})
    const archive = parseSourceSpec('docker-archive:/x/a.tar:example.com/team/app:1')
    assert.equal(archive.path, '/x/a.tar')
    assert.equal(archive.ref, 'example.com/team/app:1')
    assert.equal(archive.target, undefined)
    const dir = parseSourceSpec('dir:/x/d=team/app')
    assert.deepEqual(dir.target, {name: 'team/app', tag: undefined})
    assert.deepEqual(parseSourceSpec('oci:/l=team/app').target, {name: 'team/app', tag: undefined})
  })

  it('refuses what it cannot read, with a hint', () => {
    assert.throws(() => parseSourceSpec('/just/a/path'), /unknown transport/)
    assert.throws(() => parseSourceSpec('dir:/x'), /has no name/)
    assert.throws(() => parseSourceSpec('containers-storage:a:1'), /not supported yet/)
    assert.equal(parseSourceSpec('docker://example.com/a/b:1=c/d').path, '//example.com/a/b:1')
    assert.throws(() => parseSourceSpec('oci:'), /no path given/)
  })
})

describe('manifests', () => {
  const parse = (value: unknown) => parseManifest(Buffer.from(JSON.stringify(value)), 'test')
  const d = {mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:' + 'a'.repeat(64), size: 1}

  it('takes the media type from mediaType, else from the shape', () => {
    assert.equal(parse({schemaVersion: 2, manifests: []}).mediaType, 'application/vnd.oci.image.index.v1+json')
    assert.equal(parse({schemaVersion: 2, config: d, layers: [d]}).mediaType, 'application/vnd.oci.image.manifest.v1+json')
    assert.equal(parse({schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config: d, layers: []}).mediaType, 'application/vnd.docker.distribution.manifest.v2+json')
  })

  it('refuses schema 1, other digests and unknown types', () => {
    assert.throws(() => parse({schemaVersion: 1, fsLayers: []}), /schema 1/)
    assert.throws(() => parse({schemaVersion: 2, config: {...d, digest: 'sha512:' + 'a'.repeat(128)}, layers: []}), /unsupported .*algorithm/)
    assert.throws(() => parse({schemaVersion: 2, mediaType: 'text/plain'}), /unsupported manifest media type/)
  })
})

describe('tree names', () => {
  it('refuses path collisions, allows lookalikes and tags equal but for case (the tag grammar is case-sensitive)', () => {
    assert.throws(() => validateTreeNames({repositories: {a: {tags: {}}, 'a/tags/x': {tags: {}}}}), /collides/)
    assert.doesNotThrow(() => validateTreeNames({repositories: {a: {tags: {Latest: 'x', latest: 'y'}}}}))
    assert.doesNotThrow(() => validateTreeNames({repositories: {a: {tags: {}}, 'a/manifest': {tags: {}}, 'b/manifests': {tags: {}}}}))
  })
})

describe('process liveness (lock holders, staging directories)', () => {
  it('this process runs, a reaped one does not, and a number that is no pid names no process', () => {
    assert.equal(processRunning(process.pid), true)
    const gone = spawnSync(process.execPath, ['-e', '0']).pid
    assert.equal(processRunning(gone), false)
    for (const notAPid of [0, -1, -process.pid, 1.5, Number.NaN, 2 ** 53]) assert.equal(processRunning(notAPid), false, String(notAPid))
  })
})
