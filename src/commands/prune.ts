import {Args, Flags} from '@oclif/core'
import {loadConfig, resolveFromConfig} from '../config/config-file.js'
import {parseDuration, type PruneReport, pruneTree, type RetentionRules} from '../tree/retention.js'
import {formatBytes} from '../ui/format.js'
import {RegCommand} from '../ui/reg-command.js'

export default class Prune extends RegCommand {
  static override summary = 'Remove tags by rule, then the manifests and blobs nothing uses any more (atomically, like a build)'
  static override description = `A tag is removed when every rule given says so, among the tags --match selects:
  --keep-last N     all but the N newest of each repository (versions by semver precedence, then other tags by time)
  --older-than 30d  set longer ago than this (the time a build recorded, else the image's created time)
A tag that a kept tag needs stays (an index's child, a signature of a kept image); attachments of removed images go with them.
Without a rule, the retention: section of reg.config.json / reg.config.yaml is used.`

  static override examples = [
    '<%= config.bin %> prune dist --keep-last 10 --match \'team/**:v*\'',
    '<%= config.bin %> prune dist --older-than 30d --untagged --dry-run',
  ]

  static override args = {dir: Args.string({description: 'tree directory (default: the config file\'s out, else ./dist)'})}
  static override flags = {
    'keep-last': Flags.integer({description: 'keep the N newest matched tags of each repository', min: 0}),
    'older-than': Flags.string({description: 'remove matched tags older than this: 30d, 12h, 2w'}),
    match: Flags.string({description: 'NAME:TAG globs the rules apply to (repeatable; * within a name component, ** across)', multiple: true}),
    untagged: Flags.boolean({description: 'also remove manifests held without a tag (never a referrer of a kept manifest)'}),
    'dry-run': Flags.boolean({description: 'print what would be removed and change nothing'}),
    config: Flags.string({description: 'config file (default: reg.config.json, reg.config.yaml or reg.config.yml in the working directory)'}),
    json: Flags.boolean({description: 'print a JSON summary'}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Prune)
    let report: PruneReport
    try {
      const loaded = await loadConfig(flags.config)
      const fromFlags = flags['keep-last'] !== undefined || flags['older-than'] !== undefined || flags.untagged
      const config = loaded?.config.retention
      const olderThan = fromFlags ? flags['older-than'] : config?.olderThan
      const rules: RetentionRules = fromFlags
        ? {keepLast: flags['keep-last'], olderThanMs: olderThan === undefined ? undefined : parseDuration(olderThan, '--older-than'), match: flags.match, untagged: flags.untagged}
        : {keepLast: config?.keepLast, olderThanMs: olderThan === undefined ? undefined : parseDuration(olderThan, 'retention.olderThan'),
          match: flags.match ?? (typeof config?.match === 'string' ? [config.match] : config?.match), untagged: config?.untagged}
      const dir = args.dir ?? (loaded?.config.out ? resolveFromConfig(loaded, loaded.config.out) : './dist')
      report = await pruneTree(dir, rules, {dryRun: flags['dry-run']})
    } catch (error) {
      this.fail(error)
    }
    if (flags.json) {
      this.log(JSON.stringify(report, null, 2))
      return
    }
    const verb = report.dryRun ? 'would remove' : 'removed'
    for (const tag of report.removedTags) this.log(`${verb} ${tag.repository}:${tag.tag}  ${tag.digest}`)
    for (const entry of report.removedUntagged) this.log(`${verb} ${entry.repository}@${entry.digest} (untagged)`)
    this.log(`${report.dir}: ${verb} ${report.removedTags.length} tags, ${report.removedUntagged.length} untagged manifests; ${report.removedManifests} manifests and ${report.removedBlobs} blobs (${formatBytes(report.bytesFreed)}) no longer used`)
  }
}
