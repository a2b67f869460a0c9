// The GitHub Action's entry point (action.yml runs the bundle of this file: action/dist/index.js).
// Inputs come from INPUT_* variables, outputs go to $GITHUB_OUTPUT, the job summary to
// $GITHUB_STEP_SUMMARY, errors become ::error:: annotations: all through @actions/core.
import * as core from '@actions/core'
import {type Interfaces, Parser} from '@oclif/core'
import Build, {buildLine} from '../src/commands/build.js'
import Deploy, {untilInterrupted} from '../src/commands/deploy.js'
import {resolveBuild, resolveDeploy} from '../src/config/resolve.js'
import {describeError} from '../src/core/errors.js'
import {deployTree} from '../src/publish/deploy.js'
import {buildTree} from '../src/tree/builder.js'
import {type ListedImage, listTree} from '../src/tree/listing.js'
import {deployLines} from '../src/ui/deploy-report.js'
import {formatBytes} from '../src/ui/format.js'
import {formatVerifyReport, verifyFailure} from '../src/verify/report.js'
import {verifyRegistry} from '../src/verify/verify.js'

/** Split the `args` input like a shell would for simple quoting: words, '…' and "…". */
function splitArgs(text: string): string[] {
  const words: string[] = []
  for (const match of text.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g)) words.push(match[1]?.replace(/\\(.)/g, '$1') ?? match[2] ?? match[3] ?? '')
  return words
}

/** Inputs named like a flag of reg are that flag (action.yml declares the common ones): given only when set. */
function inputFlags(flags: Interfaces.FlagInput): string[] {
  return Object.entries(flags).flatMap(([name, flag]) => {
    const value = core.getInput(name)
    if (!value) return []
    if (flag.type === 'boolean') return core.getBooleanInput(name) ? [`--${name}`] : []
    return [`--${name}`, value]
  })
}


function pullCommand(registryUrl: string, image: ListedImage): string {
  const host = registryUrl ? new URL(registryUrl).host : 'REGISTRY_HOST'
  return `docker pull ${host}/${image.repository}:${image.tag}`
}

async function writeSummary(title: string, images: ListedImage[], lines: string[], registryUrl: string): Promise<void> {
  await core.summary
    .addHeading(title, 2)
    .addTable([
      [{data: 'image', header: true}, {data: 'tag', header: true}, {data: 'digest', header: true}, {data: 'size', header: true}, {data: 'pull', header: true}],
      ...images.map((image) => [image.repository, image.tag, `<code>${image.digest}</code>`, formatBytes(image.size), `<code>${pullCommand(registryUrl, image)}</code>`]),
    ])
    .addList(lines)
    .write()
}

async function runAction(): Promise<void> {
  const workingDirectory = core.getInput('working-directory')
  if (workingDirectory) process.chdir(workingDirectory)
  const command = core.getInput('command') || 'deploy'
  const extra = splitArgs(core.getInput('args'))
  const config = inputFlags({config: Deploy.flags.config})

  if (command === 'build') {
    const {argv, flags} = await Parser.parse([...extra, ...config], {flags: Build.flags, args: Build.args, strict: Build.strict})
    const {specs, options} = await resolveBuild(argv as string[], flags)
    const summary = await buildTree(specs, options)
    const listing = await listTree(summary.out)
    const built = new Set(summary.images.map((i) => `${i.name}:${i.tag}`))
    const images = listing.images.filter((i) => built.has(`${i.repository}:${i.tag}`))
    core.setOutput('images', JSON.stringify(images))
    core.setOutput('uploaded-bytes', '0')
    core.setOutput('registry-url', '')
    await writeSummary(`reg build → ${summary.out}`, images, [buildLine(summary)], '')
    return
  }
  if (command !== 'deploy') throw new Error(`unknown command "${command}": the action runs build or deploy`)

  const {config: _config, ...deployFlags} = Deploy.flags
  const argv = [...extra, ...config, ...inputFlags(deployFlags)]
  const {args, flags, raw} = await Parser.parse(argv, {flags: Deploy.flags, args: Deploy.args, strict: Deploy.strict})
  const explicit = new Set(raw.flatMap((token) => (token.type === 'flag' ? [token.flag] : [])))
  const resolved = await resolveDeploy(args.dir, flags, explicit)
  const report = await untilInterrupted((signal) => deployTree(resolved.dir, resolved.backend, {...resolved.options, signal}))
  const listing = await listTree(resolved.dir)
  // --verify (or verify: in the target): the live registry as each client sees it; what went live stays live.
  const verified = resolved.verify && !report.dryRun ? await verifyRegistry({url: resolved.verify, tree: resolved.dir, namePrefix: resolved.options.namePrefix}) : undefined
  const registryUrl = report.url ?? ''
  const uploadedBytes = report.host?.uploadedBytes ?? report.result?.bytesUploaded ?? 0
  core.setOutput('images', JSON.stringify(listing.images))
  core.setOutput('uploaded-bytes', String(uploadedBytes))
  core.setOutput('registry-url', registryUrl)
  await writeSummary(`reg deploy → ${report.backend} ${report.location}${resolved.target ? ` (target ${resolved.target})` : ''}`, listing.images, [
    ...(report.dryRun ? ['dry run: nothing was changed'] : []),
    ...deployLines(report),
    ...(report.host?.messages ?? []),
    ...report.messages,
    ...(verified ? formatVerifyReport(verified) : []),
  ], registryUrl)
  const failure = verified && verifyFailure(verified)
  if (failure) throw failure
}

runAction().catch((error: unknown) => {
  // ::error:: annotation and a failed step; the hint goes on its own line of the message.
  core.setFailed(describeError(error))
})
