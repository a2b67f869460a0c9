import {parseDigest} from './digest.js'
import {RegError} from './errors.js'
import {MAX_MANIFEST_BYTES, TooLargeError} from './limits.js'
import {IMAGE_MEDIA_TYPES, INDEX_MEDIA_TYPES, MediaType} from './media-types.js'
import {quoted} from './quote.js'

export interface Platform {
  os: string
  architecture: string
  variant?: string
  'os.version'?: string
}

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  platform?: Platform
  annotations?: Record<string, string>
  artifactType?: string
}

/** A parsed manifest next to its exact bytes: the bytes are what is served, the view is what we walk. */
export type ParsedManifest =
  | {kind: 'index'; mediaType: string; raw: Buffer; manifests: Descriptor[]; subject?: Descriptor; artifactType?: string; annotations?: Record<string, string>}
  | {kind: 'image'; mediaType: string; raw: Buffer; config: Descriptor; layers: Descriptor[]; subject?: Descriptor; artifactType?: string; annotations?: Record<string, string>}

/** Media types as RFC 6838 writes them (`type/subtype`, 127 characters each at most), nothing longer or stranger. */
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/
/** Platform fields are short words (`linux`, `arm64`, `v8`, `10.0.20348.1487`). */
const PLATFORM_FIELD_MAX = 128

function boundedString(value: unknown, max = PLATFORM_FIELD_MAX): string | undefined {
  return typeof value === 'string' && value.length > 0 && value.length <= max ? value : undefined
}

/**
 * The platform of a descriptor or an image config, reduced to the fields reg shows and stores, each a
 * short string: a platform object nested a thousand deep, or a megabyte of `os`, is not copied into
 * the tree's index. Undefined when os or architecture is missing.
 */
export function parsePlatform(value: unknown): Platform | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const v = value as Record<string, unknown>
  const os = boundedString(v.os)
  const architecture = boundedString(v.architecture)
  if (!os || !architecture) return undefined
  const variant = boundedString(v.variant)
  const osVersion = boundedString(v['os.version'])
  return {os, architecture, ...(variant ? {variant} : {}), ...(osVersion ? {'os.version': osVersion} : {})}
}

export function isMediaType(value: unknown): value is string {
  return typeof value === 'string' && MEDIA_TYPE.test(value)
}

/**
 * Annotations as OCI defines them, strings to strings: a value of another type is dropped, so what
 * reads an annotation (a layout's ref.name) never takes a number or an object for a string.
 */
function parseAnnotations(value: unknown): Record<string, string> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string'))
}

/** What a refused JSON value was, for a message: a short string or a number as it is, anything else by its type. */
function describeValue(value: unknown): string {
  if (typeof value === 'number') return String(value)
  if (typeof value === 'string') return quoted(value, 40)
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`
}

function parseDescriptor(value: unknown, where: string): Descriptor {
  if (typeof value !== 'object' || value === null) throw new RegError(`${where}: descriptor is not an object`)
  const v = value as Record<string, unknown>
  if (typeof v.digest !== 'string') throw new RegError(`${where}: descriptor has no digest`)
  const digest = parseDigest(v.digest, `${where} digest`)
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) throw new RegError(`${where}: descriptor ${digest} has no valid size`)
  if (!isMediaType(v.mediaType)) throw new RegError(`${where}: descriptor ${digest} has no valid mediaType`, 'a media type is type/subtype, e.g. application/vnd.oci.image.layer.v1.tar+gzip')
  const descriptor: Descriptor = {mediaType: v.mediaType, digest, size: v.size}
  const platform = parsePlatform(v.platform)
  if (platform) descriptor.platform = platform
  const annotations = parseAnnotations(v.annotations)
  if (annotations) descriptor.annotations = annotations
  if (isMediaType(v.artifactType)) descriptor.artifactType = v.artifactType
  return descriptor
}

/**
 * The media type a manifest is served with: its `mediaType` field; when absent, `manifests` means
 * an OCI index and `config`+`layers` an OCI image manifest. Docker schema 1 is refused.
 */
export function parseManifest(raw: Buffer, label: string, declaredMediaType?: string): ParsedManifest {
  if (raw.length > MAX_MANIFEST_BYTES) throw new TooLargeError(`${label}: manifest`, MAX_MANIFEST_BYTES)
  let json: unknown
  try {
    json = JSON.parse(raw.toString('utf8'))
  } catch {
    // The parser's message quotes the input: refused bytes are never echoed.
    throw new RegError(`${label}: manifest is not valid JSON`, 'the source is corrupt; re-export the image')
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new RegError(`${label}: manifest is not a JSON object`)
  const m = json as Record<string, unknown>
  const declared = typeof m.mediaType === 'string' ? m.mediaType : undefined
  if (m.schemaVersion === 1 || declared === MediaType.DockerSchema1 || declared === MediaType.DockerSchema1Signed || declaredMediaType === MediaType.DockerSchema1 || declaredMediaType === MediaType.DockerSchema1Signed) {
    throw new RegError(
      `${label}: Docker schema 1 manifests are not supported`,
      'schema 1 is deprecated and current clients refuse it; convert the image first, e.g. `skopeo copy --format v2s2 SRC DEST`',
    )
  }
  if (m.schemaVersion !== 2) throw new RegError(`${label}: unsupported manifest schemaVersion ${describeValue(m.schemaVersion)}`)
  const mediaType = declared ?? (Array.isArray(m.manifests) ? MediaType.OciIndex : (m.config && Array.isArray(m.layers) ? MediaType.OciManifest : undefined))
  if (!mediaType) throw new RegError(`${label}: cannot tell the manifest's media type (no mediaType, manifests or config/layers)`)
  if (declaredMediaType && declared && declaredMediaType !== declared) {
    throw new RegError(`${label}: descriptor says ${quoted(declaredMediaType)} but the manifest says ${quoted(declared)}`)
  }
  const subject = m.subject === undefined ? undefined : parseDescriptor(m.subject, `${label} subject`)
  const artifactType = isMediaType(m.artifactType) ? m.artifactType : undefined
  const annotations = parseAnnotations(m.annotations)
  if (INDEX_MEDIA_TYPES.has(mediaType)) {
    if (!Array.isArray(m.manifests)) throw new RegError(`${label}: index has no manifests array`)
    const manifests = m.manifests.map((d, i) => parseDescriptor(d, `${label} manifests[${i}]`))
    return {kind: 'index', mediaType, raw, manifests, subject, artifactType, annotations}
  }
  if (IMAGE_MEDIA_TYPES.has(mediaType)) {
    if (!Array.isArray(m.layers)) throw new RegError(`${label}: image manifest has no layers array`)
    const config = parseDescriptor(m.config, `${label} config`)
    const layers = m.layers.map((d, i) => parseDescriptor(d, `${label} layers[${i}]`))
    return {kind: 'image', mediaType, raw, config, layers, subject, artifactType, annotations}
  }
  throw new RegError(`${label}: unsupported manifest media type ${quoted(mediaType)}`, 'reg serves OCI and Docker v2 manifests and indexes')
}

export function formatPlatform(platform: Platform | undefined): string | undefined {
  if (!platform) return undefined
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/')
}
