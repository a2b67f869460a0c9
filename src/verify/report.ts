import {RegError} from '../core/errors.js'
import {formatBytes} from '../ui/format.js'
import {CLIENTS, type ClientId} from './rules.js'
import type {VerifyReport} from './verify.js'

/** One cell of the matrix: what the rule means for the client. */
function cell(report: VerifyReport, rule: VerifyReport['rules'][number], client: ClientId): string {
  if (!rule.breaks.includes(client) && !rule.warns.includes(client)) return '·'
  if (!rule.checked) return '-'
  if (rule.broken === 0) return 'pass'
  return rule.breaks.includes(client) ? 'FAIL' : 'warn'
}

/**
 * The report as text: a matrix of rules × clients (pass, FAIL, warn; · where the rule does not
 * concern the client, - where it was not checked), what was found (URL, status, the header seen),
 * and the verdict per client.
 */
export function formatVerifyReport(report: VerifyReport): string[] {
  const {coverage} = report
  const lines: string[] = []
  lines.push(`reg verify ${report.url}: ${coverage.tags} of ${coverage.tagsKnown} tags in ${coverage.repositories} repositories${coverage.sampled && coverage.tags < coverage.tagsKnown ? ' (a sample: --all checks every tag)' : ''}, ${coverage.manifests} manifests, ${coverage.blobs} blobs (${coverage.blobsStreamed} hashed, ${formatBytes(coverage.bytesStreamed)}), ${coverage.requests} requests`)
  const clients = report.clients
  const width = Math.max(...report.rules.map((r) => r.id.length))
  const columns = clients.map((c) => Math.max(c.length, 4))
  // Rules no client depends on (caching, CORS) are for caches and browsers: their own column.
  lines.push(['rule'.padEnd(width), ...clients.map((c, i) => c.padEnd(columns[i])), 'others'].join('  ').trimEnd())
  for (const rule of report.rules) {
    if (!rule.checked && rule.broken === 0) continue
    const cells = clients.map((client, i) => cell(report, rule, client).padEnd(columns[i]))
    const others = rule.breaks.length === 0 && rule.warns.length === 0 ? (rule.broken > 0 ? 'warn' : 'pass') : ''
    lines.push([rule.id.padEnd(width), ...cells, others].join('  ').trimEnd())
  }
  if (report.findings.length > 0) lines.push('', 'found:')
  for (const finding of report.findings) {
    const rule = report.rules.find((r) => r.id === finding.rule)!
    const who = [...rule.breaks.map((c) => c), ...rule.warns.map((c) => `${c} (warn)`)]
    const more = rule.broken > 5 && finding === report.findings.filter((f) => f.rule === finding.rule).at(-1) ? ` (and ${rule.broken - 5} more like it)` : ''
    lines.push(`  ${finding.severity === 'fail' ? 'FAIL' : 'warn'} ${finding.rule}: ${finding.message}${more}`)
    lines.push(`       ${finding.method} ${finding.url} → ${finding.status || 'no answer'}, ${finding.seen}${finding.redirects ? `; redirected: ${finding.redirects.join(' → ')}` : ''}${who.length ? `; affects ${who.join(', ')}` : ''}`)
  }
  if (report.tree && (report.tree.missing.length > 0 || report.tree.stale.length > 0)) {
    lines.push('', `tree: ${report.tree.missing.length} missing, ${report.tree.stale.length} stale`)
    for (const ref of report.tree.missing.slice(0, 20)) lines.push(`  missing ${ref}`)
    for (const ref of report.tree.stale.slice(0, 20)) lines.push(`  stale   ${ref}`)
  }
  lines.push('')
  for (const client of clients) {
    const {verdict, failedRules, warnedRules} = report.verdicts[client]
    const why = verdict === 'fail' ? `: ${failedRules.join(', ')}` : verdict === 'warn' ? `: ${warnedRules.join(', ')}` : ''
    lines.push(`${client.padEnd(11)} ${verdict === 'fail' ? 'FAIL' : verdict}${why}   ${CLIENTS[client]}`)
  }
  return lines
}

/** The error a failing verification ends with (exit 1), naming the clients that would fail. */
export function verifyFailure(report: VerifyReport): RegError | undefined {
  if (report.failing.length === 0) return undefined
  const rules = [...new Set(report.failing.flatMap((c) => report.verdicts[c].failedRules))]
  return new RegError(
    `${report.failing.join(', ')} would fail against ${report.url} (${rules.join(', ')})`,
    'the findings above name each URL and the header seen; fix the host (or its reg deploy) and run reg verify again',
    'VERIFY_FAILED',
  )
}
