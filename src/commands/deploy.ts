import {Args} from '@oclif/core'
import {BACKENDS} from '../../plugins/index.js'
import {RegCommand} from '../ui/reg-command.js'
import {type DeployReport, deployTree} from '../publish/deploy.js'
import {stepBytes} from '../publish/run.js'
import {DEPLOY_FLAGS} from '../config/deploy-flags.js'
import {resolveDeploy} from '../config/resolve.js'
import {formatBytes} from '../ui/format.js'
import {ByteProgress} from '../ui/progress.js'

/**
 * Run `work` with a signal that Ctrl-C (SIGINT; a cancelled GitHub job too) aborts: in-flight requests
 * stop, what went live stays, and the same deploy run again resumes. A second Ctrl-C kills at once.
 */
export async function untilInterrupted<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const interrupt = new AbortController()
  const abort = () => interrupt.abort()
  process.once('SIGINT', abort)
  try {
    return await work(interrupt.signal)
  } finally {
    process.off('SIGINT', abort)
  }
}

export default class Deploy extends RegCommand {
  static override summary = 'Publish a tree to a host, incrementally and in order (blobs, manifests, then tags)'
  static override description = `Backends:\n${BACKENDS.summary()}`
  static override examples = [
    '<%= config.bin %> deploy dist --backend dir --dest ./public --prune',
    '<%= config.bin %> deploy --target prod   (a target of reg.config.json / reg.config.yaml)',
  ]
  static override args = {dir: Args.string({description: 'tree directory (default: the config file\'s out, else ./dist)'})}
  static override flags = DEPLOY_FLAGS

  async run(): Promise<void> {
    const {args, flags: given, raw} = await this.parse(Deploy)
    const progress = ByteProgress.forStream(given.json, 'publishing')
    let report: DeployReport
    try {
      const explicit = new Set(raw.flatMap((token) => (token.type === 'flag' ? [token.flag] : [])))
      const {dir, backend, options} = await resolveDeploy(args.dir, given, explicit)
      report = await untilInterrupted((signal) => deployTree(dir, backend, {
        ...options,
        signal,
        observer: {
          phaseStart: (phase, steps) => {
            progress.addTotal(steps.reduce((sum, s) => sum + stepBytes(s), 0))
            if (!given.json) progress.log(phase === 'configure' ? 'configure: the host configuration' : `${phase}: ${steps.length} objects`, (l) => this.log(l))
          },
          stepDone: (step) => progress.tick(stepBytes(step)),
          retry: (step, attempt, error) => {
            if (!given.json) progress.log(`retry ${attempt} ${step.key}: ${(error as Error).message}`, (l) => this.warn(l))
          },
        },
      }))
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
    this.log(`${report.backend} ${report.location}: ${verb} upload ${plan.uploads} objects (${formatBytes(plan.bytesToUpload)}), copy ${plan.copies} server-side (${formatBytes(plan.bytesToCopy)}), ${plan.redirects > 0 ? `redirect ${plan.redirects}, ` : ''}delete ${plan.deletes}; ${plan.unchanged} unchanged`)
    for (const line of report.messages) this.log(line)
    // An atomic host that said where it is live printed its pull line already.
    if (report.url !== report.host?.url || !report.url) {
      if (report.url) this.log(`registry: ${report.url}`)
      if (report.pull) this.log(`pull: ${report.pull}${report.url ? '' : '   (HOST: where the registry is served; --public-url https://HOST prints it here)'}`)
    }
  }
}
