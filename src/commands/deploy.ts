import {Args, Flags} from '@oclif/core'
import {RegCommand} from '../ui/reg-command.js'
import {type DeployReport, deployTree} from '../publish/deploy.js'
import {BACKEND_PLUGINS, pluginFlags} from '../publish/plugins.js'
import {resolveDeploy} from '../config/resolve.js'
import {formatBytes} from '../ui/format.js'
import {ByteProgress} from '../ui/progress.js'

export default class Deploy extends RegCommand {
  static override summary = 'Publish a tree to a host, incrementally and in order (blobs, manifests, then tags)'
  static override description = `Backends:\n${BACKEND_PLUGINS.map((p) => `  ${p.name.padEnd(10)} ${p.summary}`).join('\n')}`
  static override examples = [
    '<%= config.bin %> deploy dist --backend dir --dest ./public --prune',
    '<%= config.bin %> deploy --target prod   (a target of reg.config.json / reg.config.yaml)',
  ]
  static override args = {dir: Args.string({description: 'tree directory (default: the config file\'s out, else ./dist)'})}
  static override flags = {
    backend: Flags.string({description: 'where to deploy (or from the --target of the config file)', options: BACKEND_PLUGINS.map((p) => p.name)}),
    target: Flags.string({description: 'a named deploy target of the config file (its backend and flags; flags given here override them)'}),
    config: Flags.string({description: 'config file (default: reg.config.json, reg.config.yaml or reg.config.yml in the working directory)'}),
    'name-prefix': Flags.string({description: 'serve every repository under this namespace (team/app → NS/team/app); the tree is unchanged'}),
    'dry-run': Flags.boolean({description: 'print the plan (uploads, copies, deletes, bytes) and touch nothing'}),
    prune: Flags.boolean({description: 'after publishing, delete what the tree no longer has'}),
    concurrency: Flags.integer({description: 'objects in flight at once', default: 8, min: 1}),
    retries: Flags.integer({description: 'retries per object on transient errors', default: 4, min: 0}),
    json: Flags.boolean({description: 'print a JSON summary'}),
    ...pluginFlags(),
  }

  async run(): Promise<void> {
    const {args, flags: given, raw} = await this.parse(Deploy)
    const progress = ByteProgress.forStream(given.json, 'publishing')
    let report: DeployReport
    try {
      const explicit = new Set(raw.flatMap((token) => (token.type === 'flag' ? [token.flag] : [])))
      const {dir, backend, flags} = await resolveDeploy(args.dir, given, explicit)
      report = await deployTree(dir, backend, {
        namePrefix: flags['name-prefix'] as string | undefined, dryRun: Boolean(flags['dry-run']), prune: Boolean(flags.prune),
        concurrency: flags.concurrency as number, retries: flags.retries as number,
        observer: {
          phaseStart: (phase, steps) => {
            const bytes = steps.reduce((sum, s) => sum + ('object' in s ? s.object.size : 0), 0)
            progress.addTotal(bytes)
            if (!given.json) progress.log(`${phase}: ${steps.length} objects`, (l) => this.log(l))
          },
          stepDone: (step) => progress.tick('object' in step ? step.object.size : 0),
          retry: (step, attempt, error) => {
            if (!given.json) progress.log(`retry ${attempt} ${step.key}: ${(error as Error).message}`, (l) => this.warn(l))
          },
        },
      })
    } catch (error) {
      progress.stop()
      this.fail(error)
    }
    progress.stop()
    if (given.json) {
      this.log(JSON.stringify(report, null, 2))
      return
    }
    const {plan} = report
    const verb = report.dryRun ? 'would' : 'did'
    for (const line of report.host?.messages ?? []) this.log(line)
    if (report.host) this.log(`${report.backend}: uploaded ${report.host.uploadedFiles} files (${formatBytes(report.host.uploadedBytes)}); the host had the rest`)
    this.log(`${report.backend} ${report.location}: ${verb} upload ${plan.uploads} objects (${formatBytes(plan.bytesToUpload)}), copy ${plan.copies} server-side (${formatBytes(plan.bytesToCopy)}), delete ${plan.deletes}; ${plan.unchanged} unchanged`)
  }
}
