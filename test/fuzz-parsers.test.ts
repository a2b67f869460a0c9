// The property-based layer over the parsers that see hostile bytes: names and references, digests,
// manifests, `Range`, `WWW-Authenticate`, upstream address classes, registry.json, tar archives,
// htpasswd files and an upload's `Content-Range`. Each property is checked against a model written
// here (for tar archives: the kernel), independently of the code under test. Seeded and bounded:
// the seed is fixed unless FUZZ_SEED says otherwise, and a failure names the seed that replays it.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {link, lstat, mkdir, readdir, readFile, readlink, realpath, symlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {promisify} from 'node:util'
import {gzipSync} from 'node:zlib'
import fc from 'fast-check'
import * as tar from 'tar-stream'
import {isDigest, parseDigest} from '../src/core/digest.js'
import {errnoCode, RegError} from '../src/core/errors.js'
import {MAX_MANIFEST_BYTES} from '../src/core/limits.js'
import {isMediaType, type Descriptor, type ParsedManifest, parseManifest, parsePlatform} from '../src/core/manifest.js'
import {MediaType} from '../src/core/media-types.js'
import {quoted} from '../src/core/quote.js'
import {isTag, parseReference, validateName, validateTag, withPrefix} from '../src/core/reference.js'
import {parseHtpasswd} from '../src/server/push.js'
import {parseContentRange, parseRange} from '../src/server/respond.js'
import {type ArchiveFile, TarArchive} from '../src/sources/archive.js'
import {addressClass, parseChallenge} from '../src/sources/registry/client.js'
import {deriveTree, parseTreeIndex} from '../src/tree/registry-tree.js'
import {removeTempDirs, runReg, tempDir, writeTinyIndexLayout} from './support.js'

const DEFAULT_SEED = 20_261_129
const SEED = seedFromEnvironment()

function seedFromEnvironment(): number {
  const text = process.env.FUZZ_SEED
  if (text === undefined || text === '') return DEFAULT_SEED
  const seed = Number(text)
  if (!Number.isSafeInteger(seed)) throw new Error(`FUZZ_SEED=${text} is not an integer`)
  return seed
}

/** Run a property with the file's seed; a failure says which seed replays it. */
function check(property: fc.IRawProperty<unknown>, numRuns: number): void {
  try {
    fc.assert(property, {seed: SEED, numRuns, includeErrorInReport: true})
  } catch (error) {
    if (error instanceof Error) error.message = `property failed with FUZZ_SEED=${SEED} (replay: FUZZ_SEED=${SEED} node --import tsx --test test/fuzz-parsers.test.ts)\n${error.message}`
    throw error
  }
}

/** `check` for a property whose predicate is async (it reads and writes files). */
async function checkAsync<Ts extends unknown[]>(property: fc.IAsyncProperty<Ts>, numRuns: number): Promise<void> {
  try {
    await fc.assert(property, {seed: SEED, numRuns, includeErrorInReport: true})
  } catch (error) {
    if (error instanceof Error) error.message = `property failed with FUZZ_SEED=${SEED} (replay: FUZZ_SEED=${SEED} node --import tsx --test test/fuzz-parsers.test.ts)\n${error.message}`
    throw error
  }
}

/** Call `parse`; its only way to refuse is a RegError. Returns the RegError, or undefined when it accepted. */
function refusal(parse: () => unknown): RegError | undefined {
  try {
    parse()
    return undefined
  } catch (error) {
    if (error instanceof RegError) return error
    throw new Error(`threw ${(error as Error)?.constructor?.name}, not a RegError: ${(error as Error)?.message}`)
  }
}

/** Error messages say what is wrong in a line a terminal shows as it is: bounded, no control characters. */
function assertPresentable(error: RegError): void {
  for (const text of [error.message, error.hint ?? '']) {
    assert.ok(text.length <= 400, `message of ${text.length} characters: ${JSON.stringify(text.slice(0, 120))}…`)
    assert.ok(!/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(text), `control character in ${JSON.stringify(text)}`)
  }
}

/** Does `message` repeat a run of more than 16 characters of `input`? (Refused bytes are never echoed.) */
function echoes(message: string, input: string): string | undefined {
  for (let i = 0; i + 17 <= input.length; i++) {
    const run = input.slice(i, i + 17)
    if (message.includes(run)) return run
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Models, written from the specifications, not from the code under test.

const isLowerAlnum = (c: string | undefined): boolean => c !== undefined && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
const isAlnum = (c: string | undefined): boolean => c !== undefined && (isLowerAlnum(c) || (c >= 'A' && c <= 'Z'))

/** distribution's path-component: alpha-numeric (separator alpha-numeric)*, separator `.`, `_`, `__` or `-`+. */
function modelComponent(component: string): boolean {
  let i = 0
  const alnumRun = (): boolean => {
    const from = i
    while (isLowerAlnum(component[i])) i++
    return i > from
  }
  if (!alnumRun()) return false
  while (i < component.length) {
    if (component[i] === '.') i++
    else if (component[i] === '_') i += component[i + 1] === '_' ? 2 : 1
    else if (component[i] === '-') while (component[i] === '-') i++
    else return false
    if (!alnumRun()) return false
  }
  return true
}

/** distribution's repository name: components joined by `/`, 255 characters at most. */
function modelName(name: string): boolean {
  return name.length >= 1 && name.length <= 255 && name.split('/').every(modelComponent)
}

/** distribution's tag: `[\w][\w.-]{0,127}`. */
function modelTag(tag: string): boolean {
  if (tag.length < 1 || tag.length > 128) return false
  const word = (c: string): boolean => isAlnum(c) || c === '_'
  return [...tag].every((c, i) => word(c) || (i > 0 && (c === '.' || c === '-')))
}

function modelDigest(value: string): boolean {
  if (value.length !== 71 || !value.startsWith('sha256:')) return false
  return [...value.slice(7)].every((c) => (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))
}

/** RFC 6838 restricted-name, twice: `type/subtype`, each 1 to 127 characters. */
function modelMediaType(value: unknown): boolean {
  if (typeof value !== 'string') return false
  const parts = value.split('/')
  const restrictedName = (name: string): boolean =>
    name.length >= 1 && name.length <= 127 && isAlnum(name[0]) && [...name].every((c) => isAlnum(c) || '!#$&-^_.+'.includes(c))
  return parts.length === 2 && parts.every(restrictedName)
}

/** RFC 9110 single byte range over a representation of `size` bytes, exactly (BigInt: no rounding). */
function modelRange(header: string | undefined, size: number): {start: number; end: number} | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined
  const text = header.replace(/^[ \t]+|[ \t]+$/g, '') // OWS around a field value
  if (!text.startsWith('bytes=')) return undefined
  const spec = text.slice('bytes='.length)
  const dash = spec.indexOf('-')
  if (dash < 0) return undefined
  const first = spec.slice(0, dash)
  const last = spec.slice(dash + 1)
  const digits = (s: string): boolean => [...s].every((c) => c >= '0' && c <= '9')
  // A list of ranges (or anything else) is not one range: a server may ignore it and send it all.
  if (!digits(first) || !digits(last) || (first === '' && last === '')) return undefined
  const total = BigInt(size)
  if (first === '') {
    const suffix = BigInt(last)
    if (suffix === 0n || total === 0n) return 'unsatisfiable'
    const start = total > suffix ? total - suffix : 0n
    return {start: Number(start), end: size - 1}
  }
  const start = BigInt(first)
  if (start >= total) return 'unsatisfiable'
  // last < first is an invalid range, which a server may reject: reg answers 416
  if (last !== '' && BigInt(last) < start) return 'unsatisfiable'
  const end = last === '' || BigInt(last) >= total ? total - 1n : BigInt(last)
  return {start: Number(start), end: Number(end)}
}

type AddressClassName = ReturnType<typeof addressClass>

function modelIpv4Class(octets: number[]): AddressClassName {
  const [a, b] = octets
  if (a === 127 || a === 0) return 'loopback'
  if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127)) return 'private'
  if (a === 169 && b === 254) return 'link-local'
  if (a >= 224) return 'reserved'
  return 'public'
}

// ---------------------------------------------------------------------------------------------
// Generators.

/** Characters that matter to names, tags, references and paths, and some that only look like them. */
const NAME_CHARS = [
  'a', 'b', 'z', '0', '9', '.', '_', '-', '/', 'A', 'Z', ':', '@', ' ', '\t', '\n', '\0', '\\', '%', '~', '+',
  'é', 'K' /* Kelvin sign: lowercases to k */, 'İ', '／', '\u202e',
]
const nameLikeString = fc.string({unit: fc.constantFrom(...NAME_CHARS), maxLength: 40})
const anyString = fc.oneof(nameLikeString, fc.string({unit: 'binary', maxLength: 40}), fc.string({maxLength: 300}), fc.string({unit: fc.constantFrom('a', '/', '-'), minLength: 240, maxLength: 300}))

const alnumRun = fc.string({unit: fc.constantFrom(...'abcxyz0189'), minLength: 1, maxLength: 6})
const separator = fc.constantFrom('.', '_', '__', '-', '--', '---')
const validComponent = fc.tuple(alnumRun, fc.array(fc.tuple(separator, alnumRun), {maxLength: 3}))
  .map(([head, rest]) => head + rest.map(([s, r]) => s + r).join(''))
const validName = fc.array(validComponent, {minLength: 1, maxLength: 4}).map((c) => c.join('/')).filter((n) => n.length <= 255)
const validTag = fc.tuple(fc.constantFrom(...'aZ09_'), fc.string({unit: fc.constantFrom(...'aZ09_.-'), maxLength: 127})).map(([h, r]) => h + r)
const hexDigest = fc.string({unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64}).map((h) => `sha256:${h}`)
const registryHost = fc.oneof(
  fc.tuple(alnumRun, fc.array(alnumRun, {minLength: 1, maxLength: 3})).map(([h, r]) => [h, ...r].join('.')),
  fc.constant('localhost'),
  fc.constantFrom('Registry', 'EXAMPLE'),
).chain((host) => fc.option(fc.integer({min: 1, max: 65_535}), {nil: undefined}).map((port) => (port === undefined ? host : `${host}:${port}`)))

/** A valid digest changed in one place: case, length, one character, a suffix. */
const nearDigest = fc.tuple(hexDigest, fc.nat(80), fc.string({unit: 'binary', minLength: 1, maxLength: 2}), fc.constantFrom('replace', 'insert', 'delete', 'upper', 'append'))
  .map(([digest, at, text, how]) => {
    const i = at % digest.length
    if (how === 'replace') return digest.slice(0, i) + text + digest.slice(i + 1)
    if (how === 'insert') return digest.slice(0, i) + text + digest.slice(i)
    if (how === 'delete') return digest.slice(0, i) + digest.slice(i + 1)
    if (how === 'upper') return digest.toUpperCase()
    return digest + text
  })

const KNOWN_MEDIA_TYPES = Object.values(MediaType)
const mediaTypeLike = fc.oneof(
  fc.constantFrom(...KNOWN_MEDIA_TYPES),
  fc.string({unit: fc.constantFrom('a', 'Z', '0', '/', '+', '.', '-', '!', ' ', ';', '\n', '"'), maxLength: 20}),
  fc.string({unit: fc.constantFrom('a', '/'), minLength: 120, maxLength: 300}),
  fc.anything(),
)
/** Values a hostile document puts where a number, a string or an object belongs. */
const strangeValue = fc.oneof(
  fc.jsonValue({maxDepth: 2}),
  fc.constantFrom(-1, 1.5, 2 ** 53, 1e300, -0, '5', '', null, true, [], {}),
  fc.constant({toString: 1}),
  fc.constant({toString: 'x', valueOf: 'y'}),
  fc.constantFrom(...KNOWN_MEDIA_TYPES).map((t) => [t]),
  fc.string({minLength: 200, maxLength: 2000}),
)
const platformLike = fc.oneof(
  fc.record({os: fc.constantFrom('linux', 'windows'), architecture: fc.constantFrom('amd64', 'arm64'), variant: fc.constantFrom('v8', ''), 'os.version': fc.string({maxLength: 8})}, {requiredKeys: ['os', 'architecture']}),
  fc.record({os: fc.oneof(fc.string({maxLength: 200}), strangeValue), architecture: fc.oneof(fc.string({maxLength: 200}), strangeValue), variant: strangeValue, 'os.version': strangeValue, extra: strangeValue}, {requiredKeys: []}),
  strangeValue,
)
const annotationsLike = fc.oneof(fc.dictionary(fc.string({maxLength: 10}), fc.string({maxLength: 10}), {maxKeys: 3}), strangeValue)
const descriptorLike = fc.oneof(
  {weight: 3, arbitrary: fc.record({
    mediaType: mediaTypeLike,
    digest: fc.oneof(hexDigest, nearDigest, strangeValue),
    size: fc.oneof(fc.nat(), fc.constantFrom(-1, 0.5, 2 ** 53, Number.MAX_SAFE_INTEGER), strangeValue),
    platform: platformLike,
    annotations: annotationsLike,
    artifactType: mediaTypeLike,
    urls: strangeValue,
  }, {requiredKeys: []})},
  {weight: 1, arbitrary: strangeValue},
)
const manifestLike = fc.record({
  schemaVersion: fc.oneof(fc.constantFrom(2, 2, 2, 1, '2', 2.5), strangeValue),
  mediaType: mediaTypeLike,
  manifests: fc.oneof(fc.array(descriptorLike, {maxLength: 4}), strangeValue),
  config: descriptorLike,
  layers: fc.oneof(fc.array(descriptorLike, {maxLength: 4}), strangeValue),
  subject: descriptorLike,
  artifactType: mediaTypeLike,
  annotations: annotationsLike,
}, {requiredKeys: []})

const goodDescriptor = (mediaType: fc.Arbitrary<string>): fc.Arbitrary<Descriptor> =>
  fc.record({mediaType, digest: hexDigest, size: fc.nat({max: Number.MAX_SAFE_INTEGER})}, {noNullPrototype: true})
const validImageManifest = fc.record({
  schemaVersion: fc.constant(2),
  mediaType: fc.constantFrom(MediaType.OciManifest, MediaType.DockerManifest),
  config: goodDescriptor(fc.constantFrom(MediaType.OciConfig, MediaType.DockerConfig)),
  layers: fc.array(goodDescriptor(fc.constantFrom(MediaType.OciLayerGzip, MediaType.OciLayer)), {maxLength: 5}),
})
const validIndex = fc.record({
  schemaVersion: fc.constant(2),
  mediaType: fc.constantFrom(MediaType.OciIndex, MediaType.DockerManifestList),
  manifests: fc.array(fc.tuple(goodDescriptor(fc.constant(MediaType.OciManifest)), fc.record({os: fc.constant('linux'), architecture: fc.constantFrom('amd64', 'arm64')}, {noNullPrototype: true}))
    .map(([d, platform]) => ({...d, platform})), {maxLength: 5}),
})

/** Every place in a JSON document, as the keys that lead there. */
type JsonPath = Array<string | number>
function pathsOf(value: unknown, here: JsonPath = [], into: JsonPath[] = []): JsonPath[] {
  into.push(here)
  if (Array.isArray(value)) value.forEach((v, i) => pathsOf(v, [...here, i], into))
  else if (typeof value === 'object' && value !== null) for (const [k, v] of Object.entries(value)) pathsOf(v, [...here, k], into)
  return into
}
/** Set an own, enumerable key, `__proto__` included, as JSON.parse does. */
function put(target: object, key: string | number, value: unknown): void {
  Object.defineProperty(target, key, {value, enumerable: true, writable: true, configurable: true})
}
/** One edit of a JSON document: at `paths[at % paths.length]`, replace the value, delete it, add `key` to it, or rename it to `key`. */
type Mutation = {at: number; how: 'replace' | 'delete' | 'add' | 'rename'; key: string; value: unknown}
function mutate(base: unknown, mutations: Mutation[]): unknown {
  const root = {doc: structuredClone(base)}
  for (const {at, how, key, value} of mutations) {
    const paths = pathsOf(root.doc)
    const target = paths[at % paths.length]
    const parent = (target.length === 0 ? root : target.slice(0, -1).reduce((v, k) => (v as Record<string | number, unknown>)[k], root.doc as unknown)) as Record<string | number, unknown>
    const last = target.length === 0 ? 'doc' : target.at(-1)!
    const node = parent[last]
    if (how === 'replace') put(parent, last, structuredClone(value))
    else if (how === 'delete' && target.length > 0) {
      if (Array.isArray(parent)) parent.splice(last as number, 1)
      else delete parent[last]
    } else if (how === 'add' && typeof node === 'object' && node !== null) {
      if (Array.isArray(node)) node.push(structuredClone(value))
      else put(node, key, structuredClone(value))
    } else if (how === 'rename' && typeof last === 'string' && !Array.isArray(parent) && target.length > 0) {
      delete parent[last]
      put(parent, key, node)
    }
  }
  return root.doc
}

const mutation = (keys: fc.Arbitrary<string>, values: fc.Arbitrary<unknown>): fc.Arbitrary<Mutation> =>
  fc.record({at: fc.nat(), how: fc.constantFrom('replace', 'delete', 'add', 'rename'), key: keys, value: values}) as fc.Arbitrary<Mutation>

// ---------------------------------------------------------------------------------------------

function assertValidDescriptor(d: Descriptor, where: string): void {
  assert.ok(modelDigest(d.digest), `${where}: digest ${JSON.stringify(d.digest)}`)
  assert.ok(Number.isSafeInteger(d.size) && d.size >= 0, `${where}: size ${d.size}`)
  assert.ok(modelMediaType(d.mediaType), `${where}: mediaType ${JSON.stringify(d.mediaType)}`)
  if (d.artifactType !== undefined) assert.ok(modelMediaType(d.artifactType), `${where}: artifactType`)
  if (d.platform !== undefined) assertBoundedPlatform(d.platform, where)
  if (d.annotations !== undefined) assertAnnotations(d.annotations, where)
}

function assertBoundedPlatform(platform: unknown, where: string): void {
  assert.equal(typeof platform, 'object', `${where}: platform`)
  for (const [key, value] of Object.entries(platform as object)) {
    assert.ok(['os', 'architecture', 'variant', 'os.version'].includes(key), `${where}: platform key ${key}`)
    assert.ok(typeof value === 'string' && value.length >= 1 && value.length <= 128, `${where}: platform ${key} = ${JSON.stringify(value)?.slice(0, 50)}`)
  }
  const {os, architecture} = platform as Record<string, unknown>
  assert.ok(typeof os === 'string' && typeof architecture === 'string', `${where}: platform without os/architecture`)
}

/** Annotations are strings to strings (OCI); whatever reads them may take a value for a string. */
function assertAnnotations(annotations: unknown, where: string): void {
  assert.ok(typeof annotations === 'object' && annotations !== null && !Array.isArray(annotations), `${where}: annotations ${JSON.stringify(annotations)}`)
  for (const [key, value] of Object.entries(annotations)) assert.equal(typeof value, 'string', `${where}: annotation ${key} = ${JSON.stringify(value)?.slice(0, 50)}`)
}

function assertValidManifest(parsed: ParsedManifest, raw: Buffer): void {
  assert.equal(parsed.raw, raw, 'raw is the bytes given')
  if (parsed.kind === 'index') parsed.manifests.forEach((d, i) => assertValidDescriptor(d, `manifests[${i}]`))
  else {
    assertValidDescriptor(parsed.config, 'config')
    parsed.layers.forEach((d, i) => assertValidDescriptor(d, `layers[${i}]`))
  }
  if (parsed.subject) assertValidDescriptor(parsed.subject, 'subject')
  if (parsed.artifactType !== undefined) assert.ok(modelMediaType(parsed.artifactType))
  if (parsed.annotations !== undefined) assertAnnotations(parsed.annotations, 'manifest')
}

describe('fuzz: names, tags and references', () => {
  it('validateName accepts exactly the distribution grammar, and refuses with a RegError', () => {
    check(fc.property(fc.oneof(anyString, validName), (name) => {
      const error = refusal(() => assert.equal(validateName(name), name))
      assert.equal(error === undefined, modelName(name), `validateName(${JSON.stringify(name)}) ${error ? 'refused' : 'accepted'}`)
      if (error) assertPresentable(error)
    }), 3000)
  })

  it('an accepted name never leaves its directory: no "..", "//", edge "/", uppercase or other characters', () => {
    check(fc.property(fc.oneof(nameLikeString, validName), (name) => {
      if (refusal(() => validateName(name))) return
      assert.ok(!name.includes('..') && !name.includes('//') && !name.startsWith('/') && !name.endsWith('/'), name)
      assert.equal(name, name.toLowerCase())
      assert.match(name, /^[a-z0-9._\/-]+$/)
      assert.equal(path.posix.normalize(name), name)
      assert.ok(!name.split('/').some((c) => c === '.' || c === '..'))
    }), 3000)
  })

  it('validateTag and isTag accept exactly the distribution grammar', () => {
    check(fc.property(fc.oneof(anyString, validTag, fc.string({unit: fc.constantFrom('a', '.', '-', '_'), minLength: 126, maxLength: 130})), (tag) => {
      const error = refusal(() => assert.equal(validateTag(tag, 'team/app'), tag))
      assert.equal(error === undefined, modelTag(tag), `validateTag(${JSON.stringify(tag)})`)
      assert.equal(isTag(tag), modelTag(tag))
      if (error) assertPresentable(error)
    }), 3000)
  })

  it('parseReference returns a valid name and tag, or refuses with a RegError', () => {
    check(fc.property(fc.oneof(anyString, fc.tuple(nameLikeString, fc.constantFrom('', ':', '@', ':x@'), nameLikeString).map((p) => p.join(''))), (reference) => {
      let parsed: {name: string; tag?: string} | undefined
      const error = refusal(() => (parsed = parseReference(reference)))
      if (error) return assertPresentable(error)
      assert.ok(modelName(parsed!.name), `name ${JSON.stringify(parsed!.name)} of ${JSON.stringify(reference)}`)
      if (parsed!.tag !== undefined) assert.ok(modelTag(parsed!.tag), `tag ${JSON.stringify(parsed!.tag)}`)
    }), 3000)
  })

  it('parseReference of host/name:tag[@digest] gives back name and tag', () => {
    check(fc.property(registryHost, validName, fc.option(validTag, {nil: undefined}), fc.option(hexDigest, {nil: undefined}), (host, name, tag, digest) => {
      const reference = `${host}/${name}${tag === undefined ? '' : `:${tag}`}${digest === undefined ? '' : `@${digest}`}`
      assert.deepEqual(parseReference(reference), {name, tag})
    }), 2000)
  })

  it('withPrefix gives a valid name ending in the name, or refuses with a RegError', () => {
    const prefix = fc.oneof(nameLikeString, validName, validName.map((n) => `/${n}/`), fc.constantFrom('', '/', '//', '..', '../x', 'a/../b'))
    check(fc.property(fc.option(prefix, {nil: undefined}), validName, (pre, name) => {
      let joined = ''
      const error = refusal(() => (joined = withPrefix(pre, name)))
      if (error) return assertPresentable(error)
      assert.ok(modelName(joined), joined)
      assert.ok(joined === name || joined.endsWith(`/${name}`), joined)
    }), 2000)
  })
})

describe('fuzz: digests', () => {
  it('parseDigest and isDigest accept exactly sha256: and 64 lowercase hex, and refuse with a RegError', () => {
    const digestish = fc.oneof(hexDigest, nearDigest, anyString, fc.string({unit: fc.constantFrom(...'0123456789abcdef'), minLength: 128, maxLength: 128}).map((h) => `sha512:${h}`), fc.string({minLength: 1, maxLength: 2000}).map((s) => `sha256:${s}`))
    check(fc.property(digestish, (value) => {
      const error = refusal(() => assert.equal(parseDigest(value), value))
      assert.equal(error === undefined, modelDigest(value), JSON.stringify(value))
      assert.equal(isDigest(value), modelDigest(value))
      if (error) assertPresentable(error)
    }), 3000)
  })
})

describe('fuzz: manifests', () => {
  it('arbitrary bytes are refused with a RegError that does not echo them', () => {
    const bytes = fc.oneof(fc.uint8Array({maxLength: 300}), fc.string({maxLength: 300}).map((s) => new TextEncoder().encode(s)))
    check(fc.property(bytes, (array) => {
      const raw = Buffer.from(array)
      let parsed: ParsedManifest | undefined
      const error = refusal(() => (parsed = parseManifest(raw, 'm')))
      if (parsed) return assertValidManifest(parsed, raw)
      assertPresentable(error!)
      const run = echoes(error!.message + (error!.hint ?? ''), raw.toString('utf8'))
      assert.equal(run, undefined, `the message echoes ${JSON.stringify(run)}`)
    }), 1500)
  })

  it('a manifest damaged by one edit is refused without echoing it, or parses to valid descriptors', () => {
    const edit = fc.tuple(validImageManifest, fc.nat(), fc.constantFrom('insert', 'delete', 'replace'), fc.string({unit: 'binary', minLength: 1, maxLength: 3}))
    check(fc.property(edit, ([manifest, at, how, text]) => {
      const json = JSON.stringify(manifest, null, 1)
      const i = at % json.length
      const damaged = how === 'insert' ? json.slice(0, i) + text + json.slice(i) : how === 'delete' ? json.slice(0, i) + json.slice(i + 1) : json.slice(0, i) + text + json.slice(i + 1)
      const raw = Buffer.from(damaged)
      let parsed: ParsedManifest | undefined
      const error = refusal(() => (parsed = parseManifest(raw, 'm')))
      if (parsed) return assertValidManifest(parsed, raw)
      assertPresentable(error!)
      let isJson = true
      try {
        JSON.parse(damaged)
      } catch {
        isJson = false
      }
      if (!isJson) assert.equal(echoes(error!.message + (error!.hint ?? ''), damaged), undefined, error!.message)
    }), 1500)
  })

  it('manifest-shaped JSON parses to valid, bounded descriptors, or is refused with a short RegError', (t) => {
    const keys = fc.constantFrom('__proto__', 'constructor', 'annotations', 'platform', 'subject', 'artifactType', 'mediaType', 'size', 'digest', 'schemaVersion')
    const values = fc.oneof(strangeValue, descriptorLike, annotationsLike, platformLike, mediaTypeLike)
    const mutated = fc.tuple(fc.oneof(validImageManifest, validIndex), fc.array(mutation(keys, values), {minLength: 1, maxLength: 2})).map(([m, edits]) => mutate(m, edits))
    let accepted = 0
    const runs = 1500
    check(fc.property(fc.oneof({weight: 1, arbitrary: manifestLike}, {weight: 3, arbitrary: mutated}), fc.option(fc.constantFrom(...KNOWN_MEDIA_TYPES), {nil: undefined}), (manifest, declared) => {
      const raw = Buffer.from(JSON.stringify(manifest) ?? 'null')
      let parsed: ParsedManifest | undefined
      const error = refusal(() => (parsed = parseManifest(raw, 'm', declared)))
      if (!parsed) return assertPresentable(error!)
      accepted++
      assertValidManifest(parsed, raw)
    }), runs)
    t.diagnostic(`${accepted} of ${runs} generated manifests accepted`)
    assert.ok(accepted >= runs / 40, `only ${accepted} of ${runs} generated manifests were accepted: the property says little`)
  })

  it('valid manifests and indexes parse, keeping their bytes and every descriptor', () => {
    check(fc.property(fc.oneof(validImageManifest, validIndex), fc.constantFrom(0, 1, 2), (manifest, indent) => {
      const raw = Buffer.from(JSON.stringify(manifest, null, indent))
      const copy = Buffer.from(raw)
      const parsed = parseManifest(raw, 'm')
      assert.ok(parsed.raw.equals(copy))
      if ('layers' in manifest) {
        assert.equal(parsed.kind, 'image')
        assert.deepEqual(parsed.kind === 'image' && [parsed.config, ...parsed.layers], [manifest.config, ...manifest.layers])
      } else {
        assert.equal(parsed.kind, 'index')
        assert.deepEqual(parsed.kind === 'index' && parsed.manifests, manifest.manifests)
      }
    }), 1000)
  })

  it('parsePlatform keeps os, architecture, variant and os.version, each a short string, or nothing', () => {
    check(fc.property(fc.oneof(platformLike, fc.anything()), (value) => {
      const platform = parsePlatform(value)
      if (platform !== undefined) assertBoundedPlatform(platform, 'platform')
    }), 2000)
  })

  it('isMediaType accepts exactly type/subtype restricted names', () => {
    check(fc.property(fc.oneof(mediaTypeLike, anyString), (value) => {
      assert.equal(isMediaType(value), modelMediaType(value), JSON.stringify(value))
    }), 3000)
  })

  // Regressions the properties found, kept as examples.
  const refusedManifest = (document: unknown): RegError => refusal(() => parseManifest(Buffer.from(typeof document === 'string' ? document : JSON.stringify(document)), 'm'))!
  it('regression: annotations keep string values only (a number reached the OCI layout reader as a reference)', () => {
    const index = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: MediaType.OciIndex, annotations: {a: 1, b: 'x', c: ['y']},
      manifests: [{mediaType: MediaType.OciManifest, digest: 'sha256:' + 'a'.repeat(64), size: 1, annotations: {'org.opencontainers.image.ref.name': 5, 'io.containerd.image.name': {}, ok: 'yes'}}]}))
    const parsed = parseManifest(index, 'index.json')
    assert.deepEqual(parsed.kind === 'index' && {...parsed.manifests[0].annotations}, {ok: 'yes'})
    assert.deepEqual({...parsed.annotations}, {b: 'x'})
  })
  it('regression: a long or nested schemaVersion is not copied into the message (nor stringified)', () => {
    assertPresentable(refusedManifest({schemaVersion: 'x'.repeat(1_000_000)}))
    assertPresentable(refusedManifest(`{"schemaVersion":${'['.repeat(100_000)}${']'.repeat(100_000)}}`))
  })
  it('regression: a descriptor\'s invalid digest is not copied into the message whole or with control characters', () => {
    for (const config of [{digest: 'sha256:' + 'z'.repeat(10_000), size: 'x'}, {digest: '\u001b[31m'.repeat(100), size: 1, mediaType: 'a/b'}]) {
      assertPresentable(refusedManifest({schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: []}))
    }
  })
  it('regression: an unknown media type of 100 000 characters is not copied into the message', () => {
    assertPresentable(refusedManifest({schemaVersion: 2, mediaType: 'a/' + 'b'.repeat(100_000)}))
    assert.ok(refusal(() => parseManifest(Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20), 'm')))
  })
})

describe('fuzz: Range', () => {
  const huge = fc.oneof(fc.constantFrom('9007199254740991', '9007199254740992', '9007199254740993', '18446744073709551616', '1' + '0'.repeat(400), '0000000000000000000000000007'), fc.bigInt({min: 0n, max: 2n ** 70n}).map(String))
  const position = fc.oneof(fc.constant(''), fc.nat(40).map(String), huge)
  const space = fc.constantFrom('', ' ', '\t', '  ')
  const header = fc.oneof(
    fc.tuple(space, position, position, space).map(([a, first, last, b]) => `${a}bytes=${first}-${last}${b}`),
    fc.tuple(position, position, position, position).map(([a, b, c, d]) => `bytes=${a}-${b},${c}-${d}`),
    fc.tuple(fc.constantFrom('bytes=', 'Bytes=', 'bytes =', 'items=', 'bytes= ', ''), fc.string({unit: fc.constantFrom(...'0123456789-, ='), maxLength: 12})).map(([u, s]) => u + s),
    anyString,
  )
  const size = fc.oneof(fc.constantFrom(0, 1, 2), fc.nat(50), fc.constantFrom(Number.MAX_SAFE_INTEGER, 2 ** 52))

  it('parseRange agrees with the RFC 9110 model, and a range it gives lies within the object', () => {
    check(fc.property(fc.option(header, {nil: undefined}), size, (h, n) => {
      const got = parseRange(h, n)
      if (typeof got === 'object') assert.ok(got.start >= 0 && got.start <= got.end && got.end < n && Number.isSafeInteger(got.end), JSON.stringify(got))
      assert.deepEqual(got, modelRange(h, n), `parseRange(${JSON.stringify(h)}, ${n})`)
    }), 5000)
  })

  it('whitespace around the value other than SP and HTAB', () => {
    for (const header of ['\nbytes=0-', '\u00a0bytes=0-0', 'bytes=0-0\v', '\ufeffbytes=0-0']) assert.equal(parseRange(header, 10), modelRange(header, 10), JSON.stringify(header))
  })
})

describe('fuzz: WWW-Authenticate', () => {
  const token = fc.string({unit: fc.constantFrom(...'abzAZ09_'), minLength: 1, maxLength: 8})
  /** qdtext without `"` and `\` (quoted-pairs have their own case below) */
  const quotable = fc.string({unit: fc.constantFrom(...'az09 :/.?=&,;-_~%+!#$\'()*@[]{}|^`\t'), maxLength: 40})
  const url = fc.tuple(fc.constantFrom('https', 'http'), alnumRun, quotable).map(([s, host, p]) => `${s}://${host}.example/${p.replaceAll(/[\s]/g, '')}`)

  it('parseChallenge never throws, and every parameter it reports is in the header', () => {
    const header = fc.oneof(anyString, fc.array(fc.tuple(token, fc.constantFrom('="', '=', ' = "', '"'), quotable, fc.constantFrom('"', '", ', ',', '')).map((p) => p.join('')), {maxLength: 5}).map((p) => `Bearer ${p.join('')}`))
    check(fc.property(header, (h) => {
      const {scheme, params} = parseChallenge(h)
      assert.equal(typeof scheme, 'string')
      // Names come back lowercase, values unescaped: each must still be in the header as sent.
      const lower = h.toLowerCase()
      for (const [key, value] of Object.entries(params)) {
        assert.ok(lower.includes(key), `${key} is not in ${JSON.stringify(h)}`)
        assert.ok(h.includes(value) || h.includes(value.replaceAll(/["\\]/g, '\\$&')), `${JSON.stringify(value)} is not in ${JSON.stringify(h)}`)
      }
    }), 3000)
  })

  it('a well-formed Bearer or Basic challenge gives back its scheme, realm, service and scope', () => {
    const params = fc.record({realm: url, service: quotable, scope: quotable, error: quotable}, {requiredKeys: ['realm'], noNullPrototype: true})
    const ows = fc.constantFrom('', ' ', '  ', '\t')
    check(fc.property(fc.constantFrom('Bearer', 'bearer', 'BEARER', 'Basic'), params, ows, ows, (scheme, p, before, afterComma) => {
      const header = `${scheme} ${Object.entries(p).map(([k, v]) => `${k}="${v}"`).join(`${before},${afterComma}`)}`
      const parsed = parseChallenge(header)
      assert.equal(parsed.scheme, scheme.toLowerCase())
      assert.deepEqual({...parsed.params}, p, header)
    }), 2000)
  })

  it('RFC 9110 challenges with quoted-pairs, capitalised parameter names, token values, or a second challenge', () => {
    const cases: Array<[string, Record<string, string>]> = [
      ['Bearer realm="https://a.example/t\\"x",service="s"', {realm: 'https://a.example/t"x', service: 's'}],
      ['Bearer Realm="https://a.example/t",Service="s"', {realm: 'https://a.example/t', service: 's'}],
      ['Bearer realm=https://a.example/t,service=s', {realm: 'https://a.example/t', service: 's'}],
      // two challenges in one field: the parameters are the first challenge's, not a mix of both
      ['Bearer realm="https://a.example/t", Basic realm="https://b.example/"', {realm: 'https://a.example/t'}],
    ]
    for (const [header, expected] of cases) assert.deepEqual({...parseChallenge(header).params}, expected, header)
  })
})

describe('fuzz: upstream address classes', () => {
  const octets = fc.oneof(
    fc.array(fc.nat(255), {minLength: 4, maxLength: 4}),
    // the edges of every range
    fc.tuple(fc.constantFrom(0, 9, 10, 11, 99, 100, 126, 127, 128, 168, 169, 170, 171, 172, 173, 191, 192, 193, 223, 224, 239, 240, 255), fc.constantFrom(0, 15, 16, 31, 32, 63, 64, 127, 128, 167, 168, 169, 253, 254, 255), fc.nat(255), fc.nat(255)),
  )
  it('an IPv4 address and its IPv4-mapped IPv6 forms get the class of the model', () => {
    check(fc.property(octets, (o) => {
      const v4 = o.join('.')
      const expected = modelIpv4Class(o)
      const hex = (hi: number, lo: number): string => ((hi << 8) | lo).toString(16)
      for (const address of [v4, `::ffff:${v4}`, `::FFFF:${v4}`, `0:0:0:0:0:ffff:${v4}`, `::ffff:${hex(o[0], o[1])}:${hex(o[2], o[3])}`]) {
        assert.equal(addressClass(address), expected, address)
      }
    }), 3000)
  })
})

describe('upstream address classes: IPv6 forms that embed an IPv4 address are never public', () => {
  it('IPv4-compatible, NAT64 and 6to4 addresses', () => {
    for (const address of ['::127.0.0.1', '::a9fe:a9fe', '64:ff9b::a9fe:a9fe', '64:ff9b:1::a00:1', '2002:a9fe:a9fe::1']) assert.notEqual(addressClass(address), 'public', address)
    assert.equal(addressClass('::1'), 'loopback')
    assert.equal(addressClass('2001:db8::1'), 'public')
  })
})

describe('fuzz: registry.json', () => {
  let indexText = ''
  before(async () => {
    const work = await tempDir('reg-fuzz-')
    const layout = path.join(work, 'layout')
    await writeTinyIndexLayout(layout, ['linux/amd64', 'linux/arm64/v8'], 'example.com/fuzz/app:1')
    const built = await runReg(['build', `oci:${layout}`, '-o', path.join(work, 'tree')])
    assert.equal(built.code, 0, built.stderr)
    indexText = await readFile(path.join(work, 'tree', 'registry.json'), 'utf8')
  })
  after(removeTempDirs)

  const OBJECT_CLASSES = ['api-root', 'blob', 'digest-manifest', 'tag-manifest', 'tags-list', 'catalog', 'referrers']
  /** The URL of an object: the API root, the catalog, or a repository's tags list, blob, manifest or referrers, with no way out. */
  function modelObjectPath(p: string): boolean {
    if (p === 'v2/' || p === 'v2/_catalog') return true
    if (!p.startsWith('v2/')) return false
    const segments = p.slice(3).split('/')
    if (segments.length >= 3 && segments.at(-2) === 'tags' && segments.at(-1) === 'list') return modelName(segments.slice(0, -2).join('/'))
    const reference = segments.at(-1)!
    const referenceOk = modelTag(reference) || /^[a-z0-9]+:[A-Za-z0-9._-]+$/.test(reference) && reference.length <= 128
    return segments.length >= 3 && ['blobs', 'manifests', 'referrers'].includes(segments.at(-2)!) && referenceOk && modelName(segments.slice(0, -2).join('/'))
  }

  function assertTrustworthy(index: ReturnType<typeof parseTreeIndex>): void {
    const own = (map: object, key: string): boolean => Object.hasOwn(map, key)
    assert.ok(Number.isSafeInteger(index.settings.tagMaxAge) && index.settings.tagMaxAge >= 0)
    for (const [digest, blob] of Object.entries(index.blobs)) {
      assert.ok(modelDigest(digest), digest)
      assert.ok(Number.isSafeInteger(blob.size) && blob.size >= 0 && typeof blob.mediaType === 'string', `blob ${digest}`)
    }
    for (const [digest, record] of Object.entries(index.manifests)) {
      assert.ok(modelDigest(digest), digest)
      assert.ok(KNOWN_MEDIA_TYPES.includes(record.mediaType as never) && typeof record.mediaType === 'string', `manifest ${digest} mediaType ${JSON.stringify(record.mediaType)}`)
      assert.ok(Number.isSafeInteger(record.size) && record.size >= 0 && (record.kind === 'index' || record.kind === 'image'))
      for (const child of record.children) assert.ok(typeof child === 'string' && modelDigest(child) && own(index.manifests, child), `child ${child}`)
      for (const blob of record.blobs) assert.ok(typeof blob === 'string' && modelDigest(blob) && own(index.blobs, blob), `blob ${blob}`)
      if (record.subject !== undefined) assert.ok(modelDigest(record.subject))
      if (record.artifactType !== undefined) assert.ok(modelMediaType(record.artifactType))
      if (record.platform !== undefined) assertBoundedPlatform(record.platform, `manifest ${digest}`)
    }
    assert.equal(Object.getPrototypeOf(index.repositories), null)
    for (const [name, repository] of Object.entries(index.repositories)) {
      assert.ok(modelName(name), name)
      assert.equal(Object.getPrototypeOf(repository.tags), null)
      for (const [tag, digest] of Object.entries(repository.tags)) {
        assert.ok(modelTag(tag), tag)
        assert.ok(typeof digest === 'string' && own(index.manifests, digest), `${name}:${tag} → ${digest}`)
      }
    }
    // The objects are derived from the state, never read: whatever was accepted derives only
    // objects of the model, or is refused (names no host could serve) with a RegError.
    let objects: ReturnType<typeof deriveTree>['index']['objects']
    const refused = refusal(() => (objects = deriveTree(index).index.objects))
    if (refused) return assertPresentable(refused)
    for (const object of objects!) {
      assert.ok(typeof object.path === 'string' && modelObjectPath(object.path), `path ${JSON.stringify(object.path)}`)
      assert.ok(OBJECT_CLASSES.includes(object.class), `class ${JSON.stringify(object.class)}`)
      assert.ok(typeof object.digest === 'string' && modelDigest(object.digest), `digest of ${object.path}`)
      assert.ok(Number.isSafeInteger(object.size) && object.size >= 0)
      if (object.repository !== undefined) assert.ok(own(index.repositories, object.repository))
      for (const [header, value] of Object.entries(object.headers)) {
        assert.match(header, /^[A-Za-z0-9-]+$/)
        assert.ok(typeof value === 'string' && /^[\x20-\x7e]*$/.test(value), `${header}: ${JSON.stringify(value)}`)
      }
    }
  }

  it('the index of a built tree is trusted as it is', () => {
    assertTrustworthy(parseTreeIndex(indexText, 'registry.json'))
  })

  it('a mutated registry.json is either trustworthy or refused with a RegError', (t) => {
    const base = JSON.parse(indexText) as unknown
    const digests = Object.keys((base as {manifests: object}).manifests).concat(Object.keys((base as {blobs: object}).blobs))
    const key = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', 'children', 'blobs', 'tags', 'path', 'platform'), fc.constantFrom(...digests), hexDigest, nameLikeString, validName)
    const value = fc.oneof(strangeValue, fc.constantFrom(...digests), hexDigest, nameLikeString, fc.constant({toString: 1}), fc.constant('v2/../../etc/passwd'), fc.constant('x\r\nSet-Cookie: a=b'))
    let accepted = 0
    const runs = 1500
    check(fc.property(fc.array(mutation(key, value), {minLength: 1, maxLength: 4}), (mutations) => {
      const text = JSON.stringify(mutate(base, mutations)) ?? 'null'
      let index: ReturnType<typeof parseTreeIndex> | undefined
      const error = refusal(() => (index = parseTreeIndex(text, 'registry.json')))
      if (!index) return assertPresentable(error!)
      accepted++
      assertTrustworthy(index)
    }), runs)
    t.diagnostic(`${accepted} of ${runs} mutated indexes accepted`)
    assert.ok(accepted >= runs / 40, `only ${accepted} of ${runs} mutated indexes were accepted: the property says little`)
  })

  it('a registry.json that is not JSON is refused without echoing it', () => {
    const edit = fc.tuple(fc.nat(), fc.constantFrom('insert', 'delete', 'cut'), fc.string({unit: 'binary', minLength: 1, maxLength: 3}))
    check(fc.property(edit, ([at, how, text]) => {
      const i = at % indexText.length
      const damaged = how === 'insert' ? indexText.slice(0, i) + text + indexText.slice(i) : how === 'delete' ? indexText.slice(0, i) + indexText.slice(i + 1) : indexText.slice(0, i)
      let isJson = true
      try {
        JSON.parse(damaged)
      } catch {
        isJson = false
      }
      const error = refusal(() => parseTreeIndex(damaged, 'registry.json'))
      if (!isJson) {
        assert.ok(error)
        assert.equal(echoes(error.message + (error.hint ?? ''), damaged), undefined, error.message)
      }
    }), 500)
  })

  // Regressions the properties found, kept as examples: each a change to the built index that must be refused with a RegError.
  const refusedIndex = (change: (index: {manifests: Record<string, {mediaType: unknown; platform?: unknown}>; repositories: Record<string, {tags: Record<string, unknown>}>}) => void, replace: [string, string] = ['', '']): RegError => {
    const index = JSON.parse(indexText) as Parameters<typeof change>[0]
    change(index)
    const error = refusal(() => parseTreeIndex(JSON.stringify(index).replace(...replace), 'registry.json'))
    assert.ok(error, 'accepted')
    assertPresentable(error)
    return error
  }
  const withPlatform = (index: {manifests: Record<string, {platform?: unknown}>}): {mediaType: unknown; platform?: unknown} =>
    Object.values(index.manifests).find((m) => m.platform) as {mediaType: unknown; platform?: unknown}
  it('regression: a manifest record whose mediaType is [mediaType] (String([x]) is x) is refused', () => {
    refusedIndex((index) => void (withPlatform(index).mediaType = [withPlatform(index).mediaType]))
  })
  it('regression: a mediaType or tagged digest {"toString": 1} is refused, not a TypeError', () => {
    refusedIndex((index) => void (withPlatform(index).mediaType = {toString: 1}))
    refusedIndex((index) => void (Object.values(index.repositories)[0].tags['1'] = {toString: 1}))
  })
  it('regression: a platform nested 100 000 deep is refused, not a stack overflow', () => {
    refusedIndex((index) => void (withPlatform(index).platform = 'DEEP'), ['"DEEP"', `{"os":"linux","architecture":"amd64","x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`])
  })
})

// ---------------------------------------------------------------------------------------------
// Tar archives: generated with tar-stream, read by TarArchive, and checked against the kernel, which
// resolves the same entries unpacked into a sandbox.

type TarEntryType = 'file' | 'directory' | 'symlink' | 'link'
interface TarEntrySpec {
  type: TarEntryType
  name: string
  linkname: string
}

/** Each regular file says which entry it is, so that content tells which file a lookup found. */
const entryContent = (ordinal: number): string => `entry ${ordinal}\n`

async function packTar(entries: TarEntrySpec[], gzip: boolean): Promise<Buffer> {
  const pack = tar.pack()
  const chunks: Buffer[] = []
  pack.on('data', (chunk) => chunks.push(chunk as Buffer))
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve)
    pack.on('error', reject)
  })
  for (const [ordinal, e] of entries.entries()) {
    const linked = e.type === 'symlink' || e.type === 'link'
    pack.entry({name: e.name, type: e.type, linkname: linked ? e.linkname : undefined, mode: e.type === 'directory' ? 0o755 : 0o644, mtime: new Date(0)}, e.type === 'file' ? entryContent(ordinal) : '')
  }
  pack.finalize()
  await done
  const bytes = Buffer.concat(chunks)
  return gzip ? gzipSync(bytes) : bytes
}

/** Names drawn from a few components, `.`, `..` and empty ones among them, and some long or absolute. */
const pathFrom = (weights: {plain: number; dot: number; dotdot: number; empty: number; odd: number}): fc.Arbitrary<string> => fc.oneof(
  {weight: 12, arbitrary: fc.array(fc.oneof(
    {weight: weights.plain, arbitrary: fc.constantFrom('a', 'b', 'sub')},
    {weight: weights.dot, arbitrary: fc.constant('.')},
    {weight: weights.dotdot, arbitrary: fc.constant('..')},
    {weight: weights.empty, arbitrary: fc.constant('')},
    {weight: 1, arbitrary: fc.constantFrom('l'.repeat(120), 'é'.repeat(60))},
  ), {minLength: 1, maxLength: 4}).map((parts) => parts.join('/'))},
  {weight: weights.odd, arbitrary: fc.constantFrom('/x', '/a', '/', 'm'.repeat(300), `${'n'.repeat(200)}/`.repeat(21))},
)
const entryName = pathFrom({plain: 12, dot: 1, dotdot: 1, empty: 1, odd: 1})
const linkTarget = pathFrom({plain: 6, dot: 1, dotdot: 4, empty: 1, odd: 1})
const lookupPath = pathFrom({plain: 12, dot: 1, dotdot: 1, empty: 1, odd: 1})
const tarEntry = fc.record({type: fc.constantFrom<TarEntryType>('file', 'file', 'directory', 'symlink', 'symlink', 'link'), name: entryName, linkname: linkTarget}, {noNullPrototype: true})
const tarEntries = fc.array(tarEntry, {minLength: 1, maxLength: 8})
/** Archives more of which a reader accepts: names without `..`, hard links often to an earlier entry's name, no absolute link target. */
const acceptableEntries = fc.array(fc.record({
  type: fc.constantFrom<TarEntryType>('file', 'file', 'directory', 'symlink', 'symlink', 'link'),
  name: pathFrom({plain: 12, dot: 1, dotdot: 0, empty: 1, odd: 0}).filter((name) => !name.startsWith('/')),
  linkname: pathFrom({plain: 6, dot: 1, dotdot: 3, empty: 1, odd: 0}).filter((target) => !target.startsWith('/')),
  earlier: fc.option(fc.nat(), {nil: undefined}),
}, {noNullPrototype: true}), {minLength: 1, maxLength: 8}).map((entries) => entries.map(({earlier, ...entry}, ordinal): TarEntrySpec =>
  entry.type === 'link' && earlier !== undefined && ordinal > 0 ? {...entry, linkname: entries[earlier % ordinal].name} : entry))

/** Files, directories and links under `dir` (links not followed), each with what identifies its state. */
async function snapshot(dir: string, into = new Map<string, string>(), prefix = ''): Promise<Map<string, string>> {
  for (const name of (await readdir(dir)).sort()) {
    const full = path.join(dir, name)
    const stats = await lstat(full)
    const key = prefix + name
    if (stats.isSymbolicLink()) into.set(key, `link ${await readlink(full)}`)
    else if (stats.isDirectory()) {
      into.set(key, 'dir')
      await snapshot(full, into, key + '/')
    } else into.set(key, `file ${stats.size} ${stats.mtimeMs} ${(await readFile(full)).toString('base64')}`)
  }
  return into
}

/** Is `file`, all links followed, `dir` or inside it? */
async function resolvesInside(dir: string, file: string): Promise<boolean> {
  const real = await realpath(file)
  return real === dir || real.startsWith(dir + path.sep)
}

/**
 * Unpack `entries` under `root` the way tar does (missing parent directories made, the kernel resolving
 * links on the way), one entry at a time; an entry the kernel refuses is skipped. No write leaves
 * `sandbox`: every directory written into is checked to resolve inside it first.
 */
async function unpackOnDisk(entries: TarEntrySpec[], root: string, sandbox: string): Promise<number> {
  let refused = 0
  for (const [ordinal, entry] of entries.entries()) {
    try {
      const parts = entry.name.split('/').filter((part) => part !== '' && part !== '.')
      const leaf = parts.pop()
      if (leaf === undefined) continue
      if (leaf === '..') throw new Error('no entry named ..')
      let dir = root
      for (const part of parts) {
        dir = `${dir}/${part}`
        await mkdir(dir).catch((error: unknown) => {
          if (errnoCode(error) !== 'EEXIST') throw error
        })
        if (!(await resolvesInside(sandbox, dir))) throw new Error('outside the sandbox')
      }
      const at = `${dir}/${leaf}`
      if (entry.type === 'directory') await mkdir(at)
      else if (entry.type === 'file') await writeFile(at, entryContent(ordinal), {flag: 'wx'})
      else if (entry.type === 'symlink') await symlink(entry.linkname, at)
      else {
        // A hard link names an earlier entry from the archive's root; link(2) does not follow a last symlink.
        const source = `${root}/${entry.linkname}`
        if (!(await resolvesInside(sandbox, path.dirname(source)))) throw new Error('outside the sandbox')
        await link(source, at)
      }
    } catch {
      refused++
    }
  }
  return refused
}

/** fileAt, whose only way to refuse is a RegError. */
function lookUp(archive: TarArchive, relative: string): {file?: ArchiveFile; error?: RegError} {
  try {
    return {file: archive.fileAt(relative, 'the looked-up file')}
  } catch (error) {
    if (error instanceof RegError) return {error}
    throw new Error(`fileAt(${JSON.stringify(relative)}) threw ${(error as Error)?.constructor?.name}, not a RegError: ${(error as Error)?.message}`)
  }
}

async function scanned(file: string): Promise<{archive?: TarArchive; error?: RegError}> {
  try {
    return {archive: await TarArchive.scan(file, 'fuzz archive')}
  } catch (error) {
    if (error instanceof RegError) return {error}
    throw new Error(`scan threw ${(error as Error)?.constructor?.name}, not a RegError: ${(error as Error)?.message}`)
  }
}

/** A path as a message shows it: runs of one character counted (`l×120`). */
const shortPath = (name: string): string => JSON.stringify(name.replaceAll(/(.)\1{9,}/gu, (run, c: string) => `${c}×${[...run].length}`))
const describeArchive = (entries: TarEntrySpec[]): string =>
  entries.map((e) => `${e.type} ${shortPath(e.name)}${e.type === 'symlink' || e.type === 'link' ? ` -> ${shortPath(e.linkname)}` : ''}`).join('; ')

describe('fuzz: tar archives', () => {
  after(removeTempDirs)

  it('scan, fileAt and readFile succeed or refuse with a RegError, and write nothing to disk', async (t) => {
    // The archive sits deep in a tree of decoys named like its entries: nothing in the tree may change.
    const sentinel = await tempDir('reg-fuzz-tar-')
    const deep = path.join(sentinel, 'a', 'b', 'c', 'd', 'e', 'f')
    await mkdir(path.join(deep, 'sub'), {recursive: true})
    await writeFile(path.join(sentinel, 'decoy'), 'decoy\n')
    await writeFile(path.join(deep, 'a'), 'decoy\n')
    await symlink('../decoy', path.join(sentinel, 'a', 'x'))
    const archiveFile = path.join(deep, 'archive.tar')
    const before = await snapshot(sentinel)
    const damage = fc.oneof({weight: 3, arbitrary: fc.constant(undefined)}, {weight: 1, arbitrary: fc.record({at: fc.nat(), how: fc.constantFrom('truncate', 'flip')}, {noNullPrototype: true})})
    const outcomes = {scanned: 0, refused: 0, files: 0, read: 0}
    await checkAsync(fc.asyncProperty(fc.oneof({weight: 1, arbitrary: tarEntries}, {weight: 2, arbitrary: acceptableEntries}), fc.boolean(), damage, fc.array(lookupPath, {minLength: 1, maxLength: 6}), fc.nat(40), async (entries, gzip, harm, lookups, limit) => {
      let bytes = await packTar(entries, gzip)
      if (harm) {
        const at = harm.at % bytes.length
        bytes = harm.how === 'truncate' ? bytes.subarray(0, at) : Buffer.concat([bytes.subarray(0, at), Buffer.from([bytes[at] ^ 0x5a]), bytes.subarray(at + 1)])
      }
      await writeFile(archiveFile, bytes)
      const {archive, error} = await scanned(archiveFile)
      if (error) outcomes.refused++
      if (archive) {
        outcomes.scanned++
        for (const relative of [...lookups, ...entries.map((e) => e.name)]) {
          const {file} = lookUp(archive, relative)
          if (!file) continue
          outcomes.files++
          try {
            const body = await archive.readFile(relative, limit, 'the looked-up file')
            if (body) outcomes.read++
          } catch (error) {
            if (!(error instanceof RegError)) throw new Error(`readFile threw ${(error as Error)?.constructor?.name}: ${(error as Error)?.message}`)
          }
        }
      }
      const now = await snapshot(sentinel)
      now.delete('a/b/c/d/e/f/archive.tar')
      assert.deepEqual(now, before, `the tree around the archive changed: ${describeArchive(entries)}`)
    }), 300)
    t.diagnostic(`300 archives: ${outcomes.scanned} scanned, ${outcomes.refused} refused; ${outcomes.files} lookups found a file, ${outcomes.read} read`)
    assert.ok(outcomes.scanned >= 30 && outcomes.files >= 30, `too few archives or files accepted to say much: ${JSON.stringify(outcomes)}`)
  })

  /** The kernel's view of archives: a sandbox 40 directories deep, decoy files named like entries at every level. */
  interface KernelOracle {
    sandbox: string
    deep: string
    runs: number
    stats: {archives: number; unpackedEntriesRefused: number; lookups: number; absolute: number; kernelFileInside: number; sameContent: number; regStricter: number; kernelOutside: number; kernelNothing: number; regOnly: number}
    stricter: string[]
    regOnly: string[]
  }

  async function kernelOracle(): Promise<KernelOracle> {
    // A link that leads out of a root finds a real file there, and no chain of `..` leaves the sandbox.
    const sandbox = await realpath(await tempDir('reg-fuzz-tar-oracle-'))
    let deep = sandbox
    for (let level = 1; level <= 40; level++) {
      deep = path.join(deep, `d${level}`)
      await mkdir(deep)
      for (const decoy of ['a', 'b']) await writeFile(path.join(deep, decoy), 'outside the archive\n')
    }
    const stats = {archives: 0, unpackedEntriesRefused: 0, lookups: 0, absolute: 0, kernelFileInside: 0, sameContent: 0, regStricter: 0, kernelOutside: 0, kernelNothing: 0, regOnly: 0}
    return {sandbox, deep, runs: 0, stats, stricter: [], regOnly: []}
  }

  /**
   * Scan the archive of `entries`; when reg accepts it, unpack it on disk as well and look each path
   * up both ways. Where the kernel finds a regular file inside the root, reg finds the same bytes (or
   * refuses with a RegError: stricter, counted); where the kernel leaves the root, reg finds no file.
   */
  async function compareWithKernel(oracle: KernelOracle, entries: TarEntrySpec[], gzip: boolean, lookups: string[]): Promise<void> {
    const {stats} = oracle
    const here = path.join(oracle.deep, `r${oracle.runs++}`)
    const root = path.join(here, 'root')
    await mkdir(root, {recursive: true})
    for (const decoy of ['a', 'b']) await writeFile(path.join(here, decoy), 'outside the archive\n')
    const archiveFile = path.join(here, 'archive.tar')
    await writeFile(archiveFile, await packTar(entries, gzip))
    const {archive} = await scanned(archiveFile)
    if (!archive) return
    stats.archives++
    stats.unpackedEntriesRefused += await unpackOnDisk(entries, root, oracle.sandbox)
    // The paths asked for, each entry's name, and what lies below each link.
    const links = entries.filter((e) => e.type === 'symlink').map((e) => e.name)
    for (const relative of [...lookups, ...entries.map((e) => e.name), ...links.flatMap((name) => [`${name}/a`, `${name}/sub/a`])]) {
      const where = `${shortPath(relative)} in ${describeArchive(entries)}`
      const {file, error} = lookUp(archive, relative)
      // A path in an image archive is relative to it; the kernel would read `/a` from the root.
      if (relative.startsWith('/')) {
        stats.absolute++
        assert.ok(error, `reg reads the absolute path ${where}`)
        continue
      }
      stats.lookups++
      let real: string | undefined
      try {
        real = await realpath(`${root}/${relative}`)
      } catch {}
      if (real === undefined) {
        stats.kernelNothing++
        if (file) {
          stats.regOnly++
          oracle.regOnly.push(where)
        }
      } else if (real === root || real.startsWith(root + path.sep)) {
        if (!(await lstat(real)).isFile()) {
          assert.equal(file, undefined, `reg finds a file where the kernel finds a ${(await lstat(real)).isDirectory() ? 'directory' : 'non-file'}: ${where}`)
          continue
        }
        stats.kernelFileInside++
        if (error) {
          stats.regStricter++
          oracle.stricter.push(`${where}: ${error.message}`)
          continue
        }
        assert.ok(file, `the kernel finds ${path.relative(root, real)}, reg finds nothing: ${where}`)
        const body = await archive.readFile(relative, 1 << 20, 'the looked-up file')
        assert.equal(body?.toString(), await readFile(real, 'utf8'), `reg reads another file than the kernel (${path.relative(root, real)}): ${where}`)
        stats.sameContent++
      } else {
        stats.kernelOutside++
        assert.equal(file, undefined, `the kernel leaves the archive to ${path.relative(root, real)}, reg finds entry ${file?.ordinal}: ${where}`)
      }
    }
  }

  it('a path names the file the kernel finds inside the unpacked archive, or none; never one outside it', async (t) => {
    const oracle = await kernelOracle()
    await checkAsync(fc.asyncProperty(acceptableEntries, fc.boolean(), fc.array(lookupPath, {minLength: 1, maxLength: 8}), async (entries, gzip, lookups) => {
      await compareWithKernel(oracle, entries, gzip, lookups)
    }), 300)
    t.diagnostic(`oracle: ${JSON.stringify(oracle.stats)}`)
    for (const example of oracle.stricter.slice(0, 3)) t.diagnostic(`reg stricter than the kernel: ${example}`)
    for (const example of oracle.regOnly.slice(0, 3)) t.diagnostic(`reg finds a file where the kernel finds none: ${example}`)
    assert.ok(oracle.stats.sameContent >= 50, `too few files found by both to say much: ${JSON.stringify(oracle.stats)}`)
  })

  // Not reached by the generator in 6000 archives; written from the semantics of link(2), which GNU tar and Go's os.Link use.
  it('a hard link to a symlink is that symlink, resolved from where the hard link is', async () => {
    const oracle = await kernelOracle()
    // From its new place the symlink leads elsewhere: to the root's `a`, not to `sub/a`.
    await compareWithKernel(oracle, [{type: 'file', name: 'a', linkname: ''}, {type: 'file', name: 'sub/a', linkname: ''}, {type: 'symlink', name: 'sub/l', linkname: 'a'}, {type: 'link', name: 'h', linkname: 'sub/l'}], false, ['h'])
    assert.equal(oracle.stats.archives, 1)
    assert.equal(oracle.stats.sameContent, oracle.stats.kernelFileInside)
    // And from its new place it would leave the archive: refused like any symlink out of it.
    const dir = await tempDir('reg-fuzz-tar-')
    const file = path.join(dir, 'out.tar')
    await writeFile(file, await packTar([{type: 'file', name: 'a', linkname: ''}, {type: 'symlink', name: 'sub/l', linkname: '../a'}, {type: 'link', name: 'h', linkname: 'sub/l'}], false))
    const {error} = await scanned(file)
    assert.match(String(error?.message), /hard link to a symlink leading outside the archive/)
  })

  // Found by the first property: a refused entry's name or link target goes into the message as it is.
  it('regression: a refused entry name or link target is shown bounded and without control characters', async () => {
    const dir = await tempDir('reg-fuzz-tar-')
    const cases: TarEntrySpec[][] = [
      [{type: 'file', name: 'a\u001b[31m/../x', linkname: ''}],
      [{type: 'link', name: './a/a/a', linkname: 'm'.repeat(300)}],
      [{type: 'symlink', name: 'l', linkname: `../${'\u001b[2J'.repeat(50)}`}],
    ]
    for (const [i, entries] of cases.entries()) {
      const file = path.join(dir, `${i}.tar`)
      await writeFile(file, await packTar(entries, false))
      const {error} = await scanned(file)
      assert.ok(error, describeArchive(entries))
      assertPresentable(error)
    }
  })
})

// ---------------------------------------------------------------------------------------------
// htpasswd: the users allowed to push.

const execFileAsync = promisify(execFile)
const BCRYPT_SALT_AND_HASH = [...'./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789']

describe('fuzz: htpasswd', () => {
  after(removeTempDirs)

  const bcryptHash = fc.tuple(fc.constantFrom('a', 'b', 'y'), fc.integer({min: 4, max: 31}), fc.string({unit: fc.constantFrom(...BCRYPT_SALT_AND_HASH), minLength: 53, maxLength: 53}))
    .map(([version, cost, rest]) => `$2${version}$${String(cost).padStart(2, '0')}$${rest}`)
  /** Hashes that are not bcrypt, each by construction: other schemes, a bcrypt hash one step off, a `:` inside. */
  const otherHash = fc.oneof(
    fc.string({unit: fc.constantFrom(...'abcXYZ019+/='), minLength: 8, maxLength: 28}).map((h) => `{SHA}${h}`),
    fc.string({unit: fc.constantFrom(...'abcXYZ019./'), minLength: 8, maxLength: 22}).map((h) => `$apr1$${h.slice(0, 8)}$${h}`),
    fc.string({unit: fc.constantFrom(...'abcXYZ019./'), minLength: 13, maxLength: 13}),
    fc.tuple(bcryptHash, fc.constantFrom('cut', 'long', 'colon', 'version', 'cost', 'unicode', 'space')).map(([hash, how]) => {
      if (how === 'cut') return hash.slice(0, -1)
      if (how === 'long') return hash + 'a'
      if (how === 'colon') return `${hash}:extra`
      if (how === 'version') return `$2x${hash.slice(3)}`
      if (how === 'cost') return `${hash.slice(0, 4)}${hash[4] === '0' ? '03' : '32'}${hash.slice(6)}`
      if (how === 'unicode') return `${hash.slice(0, -1)}é`
      return `${hash.slice(0, 20)} ${hash.slice(21)}`
    }),
  )
  /** Users as Basic auth allows them: no `:`, spaces and unicode inside; none starts with space or `#`. */
  const user = fc.tuple(fc.constantFrom(...'abzAZ09é_.-'), fc.string({unit: fc.constantFrom(...'abzAZ09é_.- #\u00a0'), maxLength: 8})).map(([first, rest]) => first + rest)
  const space = fc.constantFrom('', ' ', '\t', ' \t ')
  type Line = {kind: 'blank' | 'comment' | 'garbage'; text: string} | {kind: 'entry'; user: string; hash: string; bcrypt: boolean; text: string}
  const line: fc.Arbitrary<Line> = fc.oneof(
    {weight: 6, arbitrary: fc.tuple(space, fc.oneof(user, fc.constant('')), fc.oneof({weight: 3, arbitrary: bcryptHash.map((h) => [h, true] as const)}, {weight: 1, arbitrary: otherHash.map((h) => [h, false] as const)}), space)
      .map(([a, u, [hash, bcrypt], b]) => ({kind: 'entry' as const, user: u, hash, bcrypt, text: `${a}${u}:${hash}${b}`}))},
    {weight: 1, arbitrary: space.map((text) => ({kind: 'blank' as const, text}))},
    {weight: 2, arbitrary: fc.tuple(space, fc.oneof(fc.string({maxLength: 30}).map((s) => s.replaceAll('\n', '')), fc.tuple(user, fc.oneof(bcryptHash, otherHash)).map(([u, h]) => `${u}:${h}`)))
      .map(([a, rest]) => ({kind: 'comment' as const, text: `${a}#${rest}`}))},
    {weight: 1, arbitrary: fc.oneof(bcryptHash, user.filter((u) => !u.includes('#') || !u.startsWith('#'))).map((text) => ({kind: 'garbage' as const, text}))},
  )
  const file = fc.tuple(fc.array(fc.tuple(line, fc.constantFrom('\n', '\r\n')), {maxLength: 6}), fc.boolean(), fc.boolean())

  it('parseHtpasswd gives exactly the bcrypt entries, or a RegError naming the line and user and never a hash', () => {
    let accepted = 0
    check(fc.property(file, ([lines, bom, finalNewline]) => {
      const text = (bom ? '\ufeff' : '') + lines.map(([l, end], i) => l.text + (i < lines.length - 1 || finalNewline ? end : '')).join('')
      // The model: lines in order; the first that is neither blank, a comment nor a bcrypt entry of a new user is refused.
      const expected = new Map<string, string>()
      let refusedAt: {line: number; user?: string} | undefined
      for (const [i, [l]] of lines.entries()) {
        if (l.kind !== 'entry') {
          if (l.kind !== 'garbage') continue
          refusedAt = {line: i + 1}
        } else if (l.user === '') refusedAt = {line: i + 1}
        else if (!l.bcrypt || expected.has(l.user)) refusedAt = {line: i + 1, user: l.user}
        else expected.set(l.user, l.hash)
        if (refusedAt) break
      }
      let users: Map<string, string> | undefined
      const error = refusal(() => (users = parseHtpasswd(text, 'users.htpasswd')))
      if (refusedAt === undefined) {
        assert.equal(error, undefined, `refused ${JSON.stringify(text)}: ${error?.message}`)
        assert.deepEqual(users, expected, JSON.stringify(text))
        for (const [name, hash] of users!) {
          assert.ok(!/[:\n]/.test(name), JSON.stringify(name))
          assert.match(hash, /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/)
        }
        accepted++
        return
      }
      assert.ok(error, `accepted ${JSON.stringify(text)} (line ${refusedAt.line} is not a bcrypt entry)`)
      assertPresentable(error)
      const shown = error.message + (error.hint ?? '')
      assert.ok(error.message.includes(`line ${refusedAt.line}`), `${error.message} (expected line ${refusedAt.line})`)
      if (refusedAt.user !== undefined) assert.ok(error.message.includes(quoted(refusedAt.user)), `${error.message} does not quote ${JSON.stringify(refusedAt.user)}`)
      for (const [l] of lines) {
        const secret = l.kind === 'entry' ? l.hash : l.kind === 'garbage' || l.kind === 'comment' ? l.text : ''
        if (secret.length >= 8) assert.equal(echoes(shown, secret), undefined, `${error.message} repeats ${JSON.stringify(secret)}`)
      }
    }), 3000)
    assert.ok(accepted >= 300, `only ${accepted} files accepted`)
  })

  // Found by the property (and written out here): each of these was read wrongly before parseHtpasswd.
  it('regression: comments, empty users, lines without a user, a `:` in the hash, short hashes, a second entry, escapes in a user', () => {
    const hash = `$2y$05$${'a'.repeat(53)}`
    assert.deepEqual(parseHtpasswd(`#alice:{SHA}abcdefgh=\r\n# bob:x\r\n\r\ncarol:${hash}\r\n`, 'f'), new Map([['carol', hash]]))
    assert.deepEqual(parseHtpasswd(`\ufeffcarol:${hash}`, 'f'), new Map([['carol', hash]]))
    const refused = (text: string): RegError => {
      const error = refusal(() => parseHtpasswd(text, 'f'))
      assert.ok(error, `accepted ${JSON.stringify(text)}`)
      assertPresentable(error)
      assert.equal(echoes(error.message + (error.hint ?? ''), hash), undefined, error.message)
      return error
    }
    refused(`:${hash}`)
    refused(hash)
    refused(`alice:${hash}:extra`)
    refused('alice:$2y$05$short')
    assert.match(refused(`alice:${hash}\nalice:${hash}`).message, /line 2: "alice"/)
    assert.match(refused('\u001b[31malice:{SHA}abcdefgh=').message, /"\\u001b\[31malice"/)
  })

  it('a file written by htpasswd -B reads back as exactly its users, and each password matches', async () => {
    const bcrypt = (await import('bcryptjs')).default
    const dir = await tempDir('reg-fuzz-htpasswd-')
    let written = 0
    const users = fc.uniqueArray(fc.tuple(fc.constantFrom(...'abzAZ09é_.-'), fc.string({unit: fc.constantFrom(...'abzAZ09é_.- '), maxLength: 10})).map(([a, b]) => a + b), {minLength: 1, maxLength: 4})
    const password = fc.string({unit: fc.constantFrom(...'abcXYZ019 :#$!é'), minLength: 1, maxLength: 20})
    await checkAsync(fc.asyncProperty(users, fc.array(password, {minLength: 4, maxLength: 4}), async (names, passwords) => {
      const htpasswd = path.join(dir, `users-${written++}`)
      for (const [i, name] of names.entries()) await execFileAsync('htpasswd', [...(i === 0 ? ['-c'] : []), '-B', '-b', '-C', '4', htpasswd, name, passwords[i]])
      const parsed = parseHtpasswd(await readFile(htpasswd, 'utf8'), htpasswd)
      assert.deepEqual([...parsed.keys()].sort(), [...names].sort())
      for (const [i, name] of names.entries()) assert.ok(bcrypt.compareSync(passwords[i], parsed.get(name)!), `password of ${name}`)
    }), 25)
  })
})

// ---------------------------------------------------------------------------------------------
// Content-Range of an upload chunk.

/** `start-end` as docker, containerd and distribution send it, SP and HTAB around it, at most 15 digits each. */
function modelContentRange(header: string): {start: number; end: number} | 'invalid' {
  let from = 0
  let to = header.length
  while (from < to && (header[from] === ' ' || header[from] === '\t')) from++
  while (to > from && (header[to - 1] === ' ' || header[to - 1] === '\t')) to--
  const text = header.slice(from, to)
  const dash = text.indexOf('-')
  if (dash < 0) return 'invalid'
  const [first, last] = [text.slice(0, dash), text.slice(dash + 1)]
  const offset = (s: string): boolean => s.length >= 1 && s.length <= 15 && [...s].every((c) => c >= '0' && c <= '9')
  if (!offset(first) || !offset(last)) return 'invalid'
  return {start: Number(BigInt(first)), end: Number(BigInt(last))}
}

describe('fuzz: Content-Range', () => {
  const offset = fc.oneof(fc.nat(100).map(String), fc.constantFrom('', '0', '000000000000000', '999999999999999', '1000000000000000', '9007199254740993', '-1', '+1', '1e3', '0x10', '１'), fc.bigInt({min: 0n, max: 10n ** 17n}).map(String))
  const around = fc.constantFrom('', ' ', '\t', ' \t', '\n', '\r', '\u00a0', '\ufeff', '\v', '\u2028')
  const wellFormed = fc.tuple(fc.constantFrom('', ' ', '\t', ' \t'), fc.bigInt({min: 0n, max: 10n ** 15n - 1n}).map(String), fc.bigInt({min: 0n, max: 10n ** 15n - 1n}).map(String), fc.constantFrom('', ' ', '\t'))
    .map(([a, start, end, b]) => `${a}${start}-${end}${b}`)
  const header = fc.oneof(
    {weight: 2, arbitrary: wellFormed},
    {weight: 4, arbitrary: fc.tuple(around, fc.constantFrom('', '', '', 'bytes ', 'bytes=', 'Bytes '), offset, fc.constantFrom('-', '-', '-', '--', '–', ' - '), offset, fc.constantFrom('', '', '/100', '/*', ',1-2'), around)
      .map((parts) => parts.join(''))},
    {weight: 1, arbitrary: anyString},
  )

  it('parseContentRange never throws, agrees with the model, and gives safe integers', () => {
    let accepted = 0
    check(fc.property(header, (h) => {
      const got = parseContentRange(h)
      if (got !== 'invalid') {
        assert.ok(Number.isSafeInteger(got.start) && Number.isSafeInteger(got.end) && got.start >= 0 && got.end >= 0, JSON.stringify(got))
        accepted++
      }
      assert.deepEqual(got, modelContentRange(h), `parseContentRange(${JSON.stringify(h)})`)
    }), 5000)
    assert.ok(accepted >= 500, `only ${accepted} accepted`)
  })

  it('regression: whitespace around the value other than SP and HTAB makes it invalid', () => {
    for (const h of ['\u00a00-9', '0-9\u00a0', '\ufeff0-9', '0-9\n', '\v0-9']) assert.equal(parseContentRange(h), 'invalid', JSON.stringify(h))
    assert.deepEqual(parseContentRange(' \t0-9\t '), {start: 0, end: 9})
  })
})
