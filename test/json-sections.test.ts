import assert from 'node:assert/strict'
import {test} from 'node:test'
import {InvalidJsonError, JsonSectionsReader, NotAnObjectError} from '../src/tree/json-sections.js'

/** What the reader hands over, put back together as JSON.parse gives it (duplicate keys: the last one wins, where the first was). */
function readAll(text: string, chunkSizes: number[], batchBytes: number): unknown {
  const result: Record<string, unknown> = {}
  const reader = new JsonSectionsReader(new Set(['repositories', 'manifests', 'blobs']), {
    value: (key, value) => Object.defineProperty(result, key, {value, enumerable: true, writable: true, configurable: true}),
    sectionStart: (section) => Object.defineProperty(result, section, {value: {}, enumerable: true, writable: true, configurable: true}),
    member: (section, key, value) => Object.defineProperty(result[section] as object, key, {value, enumerable: true, writable: true, configurable: true}),
  }, batchBytes)
  const bytes = Buffer.from(text)
  let at = 0
  for (let i = 0; at < bytes.length; i++) {
    const size = chunkSizes[i % chunkSizes.length]
    reader.write(bytes.subarray(at, at + size))
    at += size
  }
  reader.end()
  return result
}

/** A small deterministic generator (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function generate(next: () => number): string {
  const pick = <T>(items: T[]): T => items[Math.floor(next() * items.length)]
  const ws = () => pick(['', '', ' ', '\n', ' \r\n\t'])
  const key = () => JSON.stringify(pick(['a', 'b', 'sha256:0', '1', '__proto__', 'é"\\}{,', 'repositories', 'manifests', 'blobs', 'x y']))
  const value = (depth: number): string => {
    const kind = Math.floor(next() * (depth > 2 ? 4 : 6))
    if (kind === 0) return String(Math.floor(next() * 1000))
    if (kind === 1) return JSON.stringify(pick(['', 'v', '}', ']', ',', '"', '\\', 'ü', '\u2028']))
    if (kind === 2) return pick(['true', 'null', 'false'])
    if (kind === 3) return '-1.5e3'
    if (kind === 4) return `[${ws()}${Array.from({length: Math.floor(next() * 4)}, () => value(depth + 1)).join(`,${ws()}`)}${ws()}]`
    return object(depth + 1)
  }
  const object = (depth: number): string => `{${ws()}${Array.from({length: Math.floor(next() * 5)}, () => `${key()}${ws()}:${ws()}${value(depth)}`).join(`${ws()},${ws()}`)}${ws()}}`
  // Now and then a document that is JSON but no object.
  return next() < 0.05 ? `${ws()}${value(3)}${ws()}` : `${ws()}${object(0)}${ws()}`
}

/** One byte changed, removed or added: mostly invalid JSON, sometimes still valid. */
function damage(text: string, next: () => number): string {
  const at = Math.floor(next() * (text.length + 1))
  const byte = '{}[],:"\\ 1a'[Math.floor(next() * 11)]
  const how = Math.floor(next() * 3)
  return how === 0 ? text.slice(0, at) + byte + text.slice(at + 1) : how === 1 ? text.slice(0, at) + text.slice(at + 1) : text.slice(0, at) + byte + text.slice(at)
}

test('a JSON object read in sections is what JSON.parse reads, and what it refuses is refused', () => {
  const next = random(15)
  let valid = 0
  let refused = 0
  for (let n = 0; n < 4000; n++) {
    const generated = generate(next)
    const text = n % 2 === 0 ? generated : damage(generated, next)
    let expected: unknown
    let parseError = false
    try {
      expected = JSON.parse(text)
    } catch {
      parseError = true
    }
    // Only objects are read; JSON.parse accepts any value.
    const notObject = !parseError && (typeof expected !== 'object' || expected === null || Array.isArray(expected))
    const chunks = [1 + Math.floor(next() * 7), 1 + Math.floor(next() * 40)]
    const batchBytes = 1 + Math.floor(next() * 30)
    if (parseError || notObject) {
      assert.throws(() => readAll(text, chunks, batchBytes), parseError ? InvalidJsonError : NotAnObjectError, text)
      refused++
    } else {
      assert.deepEqual(readAll(text, chunks, batchBytes), expected, text)
      valid++
    }
  }
  // Both kinds were exercised.
  assert.ok(valid > 1000 && refused > 500, `${valid} valid, ${refused} refused`)
})
