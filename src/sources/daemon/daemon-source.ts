import {createWriteStream, existsSync} from 'node:fs'
import {mkdir} from 'node:fs/promises'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import type Docker from 'dockerode'
import {RegError} from '../../core/errors.js'
import type {ImageSource, SourceRoot} from '../../core/image-source.js'
import type {Descriptor} from '../../core/manifest.js'
import {parseReference} from '../../core/reference.js'
import {DockerArchiveSource} from '../docker-archive.js'
import {globToRegExp} from '../registry/registry-source.js'

/** Where the engine is: DOCKER_HOST, else Docker's socket, else Podman's (rootful, then rootless). */
export function daemonSocket(env: NodeJS.ProcessEnv = process.env): {options: Docker.DockerOptions; describe: string} {
  if (env.DOCKER_HOST) {
    const url = env.DOCKER_HOST
    if (url.startsWith('unix://')) return {options: {socketPath: url.slice('unix://'.length)}, describe: url}
    const parsed = new URL(url.replace(/^tcp:/, 'http:'))
    return {options: {host: parsed.hostname, port: Number(parsed.port || 2375), protocol: 'http'}, describe: url}
  }
  const candidates = ['/var/run/docker.sock', '/run/podman/podman.sock', ...(env.XDG_RUNTIME_DIR ? [path.join(env.XDG_RUNTIME_DIR, 'podman', 'podman.sock')] : [])]
  const found = candidates.find((c) => existsSync(c)) ?? candidates[0]
  return {options: {socketPath: found}, describe: `unix://${found}`}
}

/**
 * Does an engine's image name match a pattern? Tried as the engine spells it, without Docker's
 * `docker.io/library/` or Podman's `localhost/`, and without its registry host, as it is published
 * (`examples/*` matches `127.0.0.1:5000/examples/hello`).
 */
export function daemonNameMatches(pattern: RegExp, name: string): boolean {
  const bare = name.replace(/^(docker\.io\/(library\/)?|localhost\/)/, '')
  let published: string | undefined
  try {
    published = parseReference(name).name
  } catch {
    // a name reg could not publish matches only as spelled
  }
  return [name, bare, published].some((candidate) => candidate !== undefined && pattern.test(candidate))
}

/**
 * `docker-daemon:NAME[:TAG]` with globs (`example.com/*`, `example.com/team/**:v1.*`): images of a
 * local Docker or Podman engine, exported through the Engine API as one `docker save` stream,
 * saved as one tar in scratch space and read like a docker-archive (never unpacked), diff IDs verified.
 */
export class DaemonSource implements ImageSource {
  private archive?: DockerArchiveSource

  constructor(readonly description: string, private readonly pattern: string, private readonly workDir: string) {}

  /** The RepoTags the pattern selects; a pattern without a tag means `:latest` unless it is a glob. */
  private async select(docker: Docker, socket: string): Promise<string[]> {
    let images: Docker.ImageInfo[]
    try {
      images = await docker.listImages()
    } catch (error) {
      const code = (error as {code?: string}).code
      throw new RegError(`${this.description}: cannot reach the container engine at ${socket} (${code ?? (error as Error).message})`, 'start Docker or `podman system service`, or set DOCKER_HOST')
    }
    const lastSlash = this.pattern.lastIndexOf('/')
    const colon = this.pattern.lastIndexOf(':')
    const hasTag = colon > lastSlash
    const namePattern = hasTag ? this.pattern.slice(0, colon) : this.pattern
    const tagPattern = hasTag ? this.pattern.slice(colon + 1) : (this.pattern.includes('*') ? '*' : 'latest')
    const names = globToRegExp(namePattern)
    const tags = globToRegExp(tagPattern)
    const selected = images.flatMap((image) => image.RepoTags ?? []).filter((repoTag) => {
      const at = repoTag.lastIndexOf(':')
      return daemonNameMatches(names, repoTag.slice(0, at)) && tags.test(repoTag.slice(at + 1))
    })
    if (selected.length === 0) throw new RegError(`${this.description}: no image in the engine at ${socket} matches ${this.pattern}`, 'list them with `docker images` / `podman images`')
    return [...new Set(selected)].sort()
  }

  private async open(): Promise<DockerArchiveSource> {
    if (!this.archive) {
      const {options, describe} = daemonSocket()
      // Imported when a daemon is read, not by every command that lists the sources (~0.1 s of start-up).
      const {default: Dockerode} = await import('dockerode')
      const docker = new Dockerode(options)
      const repoTags = await this.select(docker, describe)
      const file = path.join(this.workDir, 'daemon-export.tar')
      await mkdir(this.workDir, {recursive: true})
      // One export of every selected image: layers shared between them come once.
      // GET /images/get?names=…: in dockerode, not in its type definitions.
      const exporter = docker as unknown as {getImages(opts: {names: string[]}): Promise<Readable>}
      const stream = await exporter.getImages({names: repoTags})
      try {
        await pipeline(stream, createWriteStream(file, {flags: 'wx'}))
      } catch (error) {
        throw new RegError(`${this.description}: cannot read the export of ${repoTags.join(', ')}: ${(error as Error).message}`, 'the engine stopped sending the images; try again')
      }
      this.archive = new DockerArchiveSource(this.description, file, path.join(this.workDir, 'daemon-layers'))
    }
    return this.archive
  }

  async roots(): Promise<SourceRoot[]> {
    const roots = await (await this.open()).roots()
    return roots.filter((root) => root.name !== undefined)
  }

  async readManifest(descriptor: Descriptor): Promise<Buffer> {
    return (await this.open()).readManifest(descriptor)
  }

  async openBlob(descriptor: Descriptor): Promise<Readable> {
    return (await this.open()).openBlob(descriptor)
  }

  async close(): Promise<void> {}
}
