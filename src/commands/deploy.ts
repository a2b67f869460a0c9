import {setMaxListeners} from 'node:events'
import {Args} from '@oclif/core'
import {BACKENDS} from '../../plugins/index.js'
import {RegCommand} from '../ui/reg-command.js'
import {type DeployReport, deployTree} from '../publish/deploy.js'
import {stepBytes} from '../publish/run.js'
import {deployLines, phaseLine, reportJson, stepLines} from '../ui/deploy-report.js'
import {offloadLines} from '../publish/offload.js'
import {DEPLOY_FLAGS} from '../config/deploy-flags.js'
import {resolveDeploy} from '../config/resolve.js'
import {ByteProgress} from '../ui/progress.js'
import {formatVerifyReport, verifyFailure} from '../verify/report.js'
import {type VerifyReport, verifyRegistry} from '../verify/verify.js'

/**
 * Run `work` with a signal that Ctrl-C (SIGINT; a cancelled GitHub job too) aborts: in-flight requests
 * stop, what went live stays, and the same deploy run again resumes. A second Ctrl-C kills at once.
 */
export async function untilInterrupted<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const interrupt = new AbortController()
  // Every request in flight listens to this one signal (objects × parts of each): dozens at once are
  // the design, not a leak, so node's 10-listener warning does not apply.
  setMaxListeners(0, interrupt.signal)
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
    '<%= config.bin %> deploy dist --backend nginx --dest /srv/registry --offload https://base.example/library/debian',
  ]
  static override args = {dir: Args.string({description: 'tree directory (default: the config file\'s out, else ./dist)'})}
  static override flags = DEPLOY_FLAGS

  async run(): Promise<void> {
    const {args, flags: given, raw} = await this.parse(Deploy)
    const progress = ByteProgress.forStream(given.json, 'publishing')
    let report: DeployReport
    let verified: VerifyReport | undefined
    try {
      const explicit = new Set(raw.flatMap((token) => (token.type === 'flag' ? [token.flag] : [])))
      const {dir, backend, options, verify} = await resolveDeploy(args.dir, given, explicit)
      report = await untilInterrupted((signal) => deployTree(dir, backend, {
        ...options,
        signal,
        observer: {
          phaseStart: (phase, steps) => {
            progress.addTotal(steps.reduce((sum, s) => sum + stepBytes(s), 0))
            if (!given.json) progress.log(phaseLine(phase, steps, backend.capabilities.stagesDeploy === true), (l) => this.log(l))
          },
          stepDone: (step) => progress.tick(stepBytes(step)),
          retry: (step, attempt, error) => {
            if (!given.json) progress.log(`retry ${attempt} ${step.key}: ${(error as Error).message}`, (l) => this.warn(l))
          },
        },
      }))
      // --verify: the live registry, checked against the tree just deployed, as each client would see it.
      if (verify && !report.dryRun) verified = await verifyRegistry({url: verify, tree: dir, namePrefix: options.namePrefix})
    } catch (error) {
      progress.stop()
      this.fail(error)
    }
    progress.stop()
    if (given.json) {
      for (const piece of reportJson(verified ? {...report, verify: verified} : report)) process.stdout.write(piece)
      process.stdout.write('\n')
      this.failIfUnverified(verified)
      return
    }
    // --dry-run: the steps, then what they add up to; written in batches (a tree can have 100,000 tags).
    const steps = stepLines(report.steps ?? [])
    for (let i = 0; i < steps.length; i += 1000) this.log(steps.slice(i, i + 1000).join('\n'))
    for (const line of report.offload ? offloadLines(report.offload.locations, report.offload.rejected) : []) this.log(line)
    for (const line of deployLines(report)) this.log(line)
    for (const line of report.host?.messages ?? []) this.log(line)
    for (const line of report.messages) this.log(line)
    // An atomic host that said where it is live printed its pull line already.
    if (report.url !== report.host?.url || !report.url) {
      if (report.url) this.log(`registry: ${report.url}`)
      if (report.pull) this.log(`pull: ${report.pull}${report.url ? '' : '   (HOST: where the registry is served; --public-url https://HOST prints it here)'}`)
    }
    if (verified) for (const line of formatVerifyReport(verified)) this.log(line)
    this.failIfUnverified(verified)
  }

  /** What went live stays live; the command fails so that CI stops before users find out. */
  private failIfUnverified(verified: VerifyReport | undefined): void {
    const failure = verified && verifyFailure(verified)
    if (failure) this.fail(failure)
  }
}
