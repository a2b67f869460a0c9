import {parseDigest} from './digest.js'
import {RegError} from './errors.js'
import {IMAGE_MEDIA_TYPES, INDEX_MEDIA_TYPES, MediaType} from './media-types.js'

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

function parseDescriptor(value: unknown, where: string): Descriptor {
  if (typeof value !== 'object' || value === null) throw new RegError(`${where}: descriptor is not an object`)
  const v = value as Record<string, unknown>
  if (typeof v.digest !== 'string') throw new RegError(`${where}: descriptor has no digest`)
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) throw new RegError(`${where}: descriptor ${v.digest} has no valid size`)
  if (typeof v.mediaType !== 'string') throw new RegError(`${where}: descriptor ${v.digest} has no mediaType`)
  const descriptor: Descriptor = {mediaType: v.mediaType, digest: parseDigest(v.digest, `${where} digest`), size: v.size}
  if (typeof v.platform === 'object' && v.platform !== null) descriptor.platform = v.platform as Platform
  if (typeof v.annotations === 'object' && v.annotations !== null) descriptor.annotations = v.annotations as Record<string, string>
  if (typeof v.artifactType === 'string') descriptor.artifactType = v.artifactType
  return descriptor
}

/**
 * The media type a manifest is served with: its `mediaType` field; when absent, `manifests` means
 * an OCI index and `config`+`layers` an OCI image manifest. Docker schema 1 is refused.
 */
export function parseManifest(raw: Buffer, label: string, declaredMediaType?: string): ParsedManifest {
  let json: unknown
  try {
    json = JSON.parse(raw.toString('utf8'))
  } catch (error) {
    throw new RegError(`${label}: manifest is not valid JSON (${(error as Error).message})`, 'the source is corrupt; re-export the image')
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
  if (m.schemaVersion !== 2) throw new RegError(`${label}: unsupported manifest schemaVersion ${JSON.stringify(m.schemaVersion)}`)
  const mediaType = declared ?? (Array.isArray(m.manifests) ? MediaType.OciIndex : (m.config && Array.isArray(m.layers) ? MediaType.OciManifest : undefined))
  if (!mediaType) throw new RegError(`${label}: cannot tell the manifest's media type (no mediaType, manifests or config/layers)`)
  if (declaredMediaType && declared && declaredMediaType !== declared) {
    throw new RegError(`${label}: descriptor says ${declaredMediaType} but the manifest says ${declared}`)
  }
  const subject = m.subject === undefined ? undefined : parseDescriptor(m.subject, `${label} subject`)
  const artifactType = typeof m.artifactType === 'string' ? m.artifactType : undefined
  const annotations = typeof m.annotations === 'object' && m.annotations !== null ? (m.annotations as Record<string, string>) : undefined
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
  throw new RegError(`${label}: unsupported manifest media type ${mediaType}`, 'reg serves OCI and Docker v2 manifests and indexes')
}

export function formatPlatform(platform: Platform | undefined): string | undefined {
  if (!platform) return undefined
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/')
}
