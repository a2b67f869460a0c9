import {Args, Flags} from '@oclif/core'
import {RegCommand} from '../ui/reg-command.js'
import {type BuildSummary, type BuiltImage, type BuiltReferrer, buildTree} from '../tree/builder.js'
import {resolveBuild} from '../config/resolve.js'
import {formatBytes, quantity} from '../ui/format.js'
import {ByteProgress} from '../ui/progress.js'
import type {TRANSPORTS} from '../sources/index.js'

/** One line of help per transport the sources parse: the compiler refuses a transport left out. */
const TRANSPORT_HELP: Record<(typeof TRANSPORTS)[number], [syntax: string, what: string]> = {
  oci: ['oci:PATH[:REF]', 'an OCI image layout (without REF: every tagged image)'],
  'oci-archive': ['oci-archive:FILE[:REF]', 'a tar of an OCI image layout'],
  'docker-archive': ['docker-archive:FILE[:NAME:TAG]', 'a `docker save` or skopeo docker-archive tarball'],
  dir: ['dir:PATH=NAME:TAG', 'a skopeo dir: copy (has no name of its own)'],
  docker: ['docker://HOST/NAME[:TAG|@DIGEST]', 'a remote registry (NAME and TAG may use * and ** globs)'],
  'docker-daemon': ['docker-daemon:NAME[:TAG]', 'a local Docker or Podman engine (NAME and TAG may use * and ** globs)'],
}

function transportHelp(): string {
  const width = Math.max(...Object.values(TRANSPORT_HELP).map(([syntax]) => syntax.length)) + 2
  return Object.values(TRANSPORT_HELP).map(([syntax, what]) => `  ${syntax.padEnd(width)}${what}`).join('\n')
}

export default class Build extends RegCommand {
  static override summary = 'Copy images into a registry tree (static files + headers index)'
  static override description = `SOURCE uses skopeo's transport syntax, optionally followed by =NAME[:TAG]:
${transportHelp()}
Names come from the source with the registry host dropped (example.com/team/app:1 → team/app:1), then --prefix.
Building into an existing tree adds to it; --clean starts afresh. Builds are atomic.
Without SOURCE, the sources, out, prefix, tagMaxAge, platform, withReferrers, page and publicUrl of reg.config.json / reg.config.yaml are used
(flags given here override them).`

  static override examples = [
    '<%= config.bin %> build oci:./layout:1.0=team/app:1.0 -o dist',
    '<%= config.bin %> build docker-archive:app.tar --prefix acme',
  ]

  static override strict = false
  static override args = {source: Args.string({description: 'image source(s) (default: the sources of the config file)'})}
  static override flags = {
    out: Flags.string({char: 'o', description: 'tree directory (default: the config file\'s out, else ./dist)'}),
    config: Flags.string({description: 'config file (default: reg.config.json, reg.config.yaml or reg.config.yml in the working directory)'}),
    prefix: Flags.string({description: 'namespace prepended to every repository name'}),
    clean: Flags.boolean({description: 'start a fresh tree instead of adding to the existing one'}),
    'tag-max-age': Flags.integer({description: 'Cache-Control max-age (seconds) of tags and lists', min: 0}),
    page: Flags.boolean({description: 'also publish a catalog web page at / (repositories, tags, platforms, sizes, pull commands); --no-page removes it (default: the config file\'s page, else as the tree was)', allowNo: true}),
    'public-url': Flags.string({description: 'the registry\'s public URL (https://registry.example.com): the host of the page\'s pull commands (default: the host the page is viewed on)'}),
    json: Flags.boolean({description: 'print a JSON summary'}),
    creds: Flags.string({description: '[docker://] registry credentials USER:PASS (else REG_USERNAME/REG_PASSWORD, ~/.docker/config.json, containers auth.json)', helpGroup: 'REGISTRY SOURCES'}),
    platform: Flags.string({description: '[docker://] keep one platform of a multi-arch image, os/arch[/variant] (default: all)', helpGroup: 'REGISTRY SOURCES'}),
    'plain-http': Flags.boolean({description: '[docker://] talk plain HTTP to the registry (localhost registries)', helpGroup: 'REGISTRY SOURCES'}),
    insecure: Flags.boolean({description: '[docker://] HTTPS without certificate verification', helpGroup: 'REGISTRY SOURCES'}),
    'with-referrers': Flags.boolean({description: '[docker://] also copy what is attached to each image: cosign\'s sha256-<hex>.sig/.att/.sbom tags and OCI 1.1 referrers (one level deep)', helpGroup: 'REGISTRY SOURCES'}),
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(Build)
    const progress = ByteProgress.forStream(flags.json, 'copying')
    // One line per image, written in batches: a write (and a redraw of the bar) per tag costs at 100,000 tags.
    const lines: string[] = []
    const flush = () => {
      if (lines.length > 0) progress.log(lines.splice(0).join('\n'), (l) => this.log(l))
    }
    const line = (text: string) => {
      if (flags.json) return
      lines.push(text)
      if (lines.length >= 1000) flush()
    }
    let summary: BuildSummary
    try {
      const {specs, options} = await resolveBuild(argv as string[], flags)
      summary = await buildTree(specs, {
        ...options,
        observer: {
          blobStart: (_digest, size) => progress.addTotal(size),
          bytes: (count) => progress.tick(count),
          imageDone: (image) => line(`${image.name}:${image.tag}  ${image.digest}  ${image.platforms.join(',') || '-'}`),
          referrerDone: (referrer) => line(`${referrer.name}${referrer.tag ? `:${referrer.tag}` : ''}  ${referrer.digest}  attached to ${referrer.subject}`),
        },
      })
    } catch (error) {
      flush()
      progress.stop()
      this.fail(error)
    }
    flush()
    progress.stop()
    if (flags.json) {
      this.log(JSON.stringify(buildJson(summary), null, 2))
      return
    }
    this.log(buildLine(summary))
  }
}

/**
 * `reg build --json`: an image is named by `repository`, as in `reg ls --json` and the Action's
 * outputs; `name` repeats it for the consumers written before (README: build --json).
 */
export function buildJson(summary: BuildSummary): unknown {
  const named = <T extends BuiltImage | BuiltReferrer>({name, ...rest}: T) => ({repository: name, ...rest, name})
  return {...summary, images: summary.images.map(named), referrers: summary.referrers.map(named)}
}

/** The closing line of `reg build`: each number says what it counts. */
export function buildLine(summary: BuildSummary): string {
  return `${summary.out}: ${quantity(summary.repositories, 'repository', 'repositories')}, ${quantity(summary.tags, 'tag')}, ${quantity(summary.blobs, 'blob')}; `
    + `${formatBytes(summary.bytesStored)} in blobs and manifests (${formatBytes(summary.bytesSavedByDedup)} saved by storing each blob once); `
    + `${formatBytes(summary.bytesCopied)} copied from the sources, ${quantity(summary.blobsAlreadyPresent, 'blob')} already in the tree`
}
