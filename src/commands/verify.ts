import {Args, Flags} from '@oclif/core'
import {RegCommand} from '../ui/reg-command.js'
import {formatVerifyReport, verifyFailure} from '../verify/report.js'
import {CLIENT_IDS, parseClients} from '../verify/rules.js'
import {DEFAULT_SAMPLE, type VerifyReport, verifyRegistry} from '../verify/verify.js'

export default class Verify extends RegCommand {
  static override summary = 'Check a live registry against the rules of docker, containerd, podman, crane, oras and regctl'
  static override description = 'Probes the registry (HEAD and GET of tags, manifests and blobs, /v2/, lists, referrers) and prints which client would fail, why, with the URL and the header seen. Exits 1 when a chosen client would fail; caching and CORS headers are only warnings.'
  static override examples = [
    '<%= config.bin %> verify https://registry.example.com --tree dist',
    '<%= config.bin %> verify http://127.0.0.1:8080 --image team/app:1 --client containerd,podman',
  ]
  static override args = {url: Args.string({description: 'the registry: http(s)://HOST[:PORT]', required: true})}
  static override flags = {
    tree: Flags.string({description: 'the tree deployed there: every checked tag and digest must be live with its bytes'}),
    image: Flags.string({description: 'NAME:TAG to check (repeatable); default: what the tree or /v2/_catalog lists', multiple: true}),
    client: Flags.string({description: `clients whose failure fails the command, comma-separated (${CLIENT_IDS.join(',')})`}),
    sample: Flags.integer({description: `tags to check, a deterministic sample (default ${DEFAULT_SAMPLE})`, min: 1, exclusive: ['all']}),
    all: Flags.boolean({description: 'check every tag, and hash every blob', exclusive: ['sample']}),
    concurrency: Flags.integer({description: 'requests in flight at once', default: 8, min: 1}),
    json: Flags.boolean({description: 'print the report as JSON'}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Verify)
    let report: VerifyReport
    try {
      report = await verifyRegistry({
        url: args.url, tree: flags.tree, images: flags.image, clients: parseClients(flags.client),
        sample: flags.sample, all: flags.all, concurrency: flags.concurrency,
      })
    } catch (error) {
      this.fail(error)
    }
    if (flags.json) this.log(JSON.stringify(report, null, 2))
    else for (const line of formatVerifyReport(report)) this.log(line)
    const failure = verifyFailure(report)
    if (failure) this.fail(failure)
  }
}
