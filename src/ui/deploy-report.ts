// What `reg deploy` (and the GitHub Action's job summary) say about a deploy: one wording, where each
// number names what it counts. A plan counts objects (one per key on the host: a URL, or the shared
// copy several URLs are routed to); a host that deploys atomically (Netlify) also reports the files
// whose content it asked for, which is another count.
import {type DeployReport, type DeployStepReport, stepReport} from '../publish/deploy.js'
import type {Phase, PublishStep} from '../publish/plan.js'
import {formatBytes, quantity} from './format.js'

/**
 * `blobs: upload 12 objects (4.1 KiB), write 17 redirects to shared copies`: what a phase is about to
 * do. `staged`: the host takes a whole deploy (`stagesDeploy`), so its puts go into that deploy.
 */
export function phaseLine(phase: Phase, steps: readonly PublishStep[], staged = false): string {
  if (phase === 'configure') return 'configure: write the host configuration'
  const reported = steps.map(stepReport)
  const of = (action: DeployStepReport['action']) => reported.filter((s) => s.action === action)
  const bytes = (chosen: readonly DeployStepReport[]) => formatBytes(chosen.reduce((sum, s) => sum + (s.size ?? 0), 0))
  const [uploads, copies, redirects, deletes] = [of('upload'), of('copy'), of('redirect'), of('delete')]
  const parts: string[] = []
  if (uploads.length > 0) parts.push(`${staged ? 'put' : 'upload'} ${quantity(uploads.length, 'object')}${staged ? ' into the deploy' : ''} (${bytes(uploads)})`)
  if (copies.length > 0) parts.push(`copy ${quantity(copies.length, 'object')} server-side (${bytes(copies)})`)
  if (redirects.length > 0) parts.push(`write ${quantity(redirects.length, 'redirect')} to shared copies`)
  if (deletes.length > 0) parts.push(`delete ${quantity(deletes.length, 'object')} (${bytes(deletes)})`)
  return `${phase}: ${parts.join(', ')}`
}

/**
 * The closing lines: what the plan did (or would do) to the host's objects, then, for a host that
 * takes a whole deploy and asks only for contents it lacks, the files it asked for.
 */
export function deployLines(report: DeployReport): string[] {
  const {plan} = report
  const done = report.result
  const counts = done
    ? {uploads: done.uploaded, bytesUploaded: done.bytesUploaded, copies: done.copied, bytesCopied: done.bytesCopied, redirects: done.redirected, deletes: done.deleted, unchanged: done.unchanged}
    : {uploads: plan.uploads, bytesUploaded: plan.bytesToUpload, copies: plan.copies, bytesCopied: plan.bytesToCopy, redirects: plan.redirects, deletes: plan.deletes, unchanged: plan.unchanged}
  const verb = report.dryRun ? 'would' : 'did'
  // An atomic host's puts are files listed in its new deploy: the host says which contents went up.
  const put = report.staged || report.host ? `put ${quantity(counts.uploads, 'object')} into the new deploy` : `upload ${quantity(counts.uploads, 'object')}`
  const copy = `copy ${quantity(counts.copies, 'object')} server-side`
  const lines = [
    `${report.backend} ${report.location}: ${verb} ${put} (${formatBytes(counts.bytesUploaded)}), ${copy} (${formatBytes(counts.bytesCopied)}), `
      + `${counts.redirects > 0 ? `write ${quantity(counts.redirects, 'redirect')} to shared copies, ` : ''}`
      + `delete ${quantity(counts.deletes, 'object')}${plan.bytesToDelete > 0 ? ` (${formatBytes(plan.bytesToDelete)})` : ''}; ${quantity(counts.unchanged, 'object')} unchanged`,
  ]
  if (report.host) {
    lines.push(`${report.backend}: uploaded ${quantity(report.host.uploadedFiles, 'file')} (${formatBytes(report.host.uploadedBytes)}), the contents the host did not have yet (host configuration included); it had the rest`)
  }
  return lines
}

/** `--dry-run`: one line per step, phase by phase (phase, action, key, size). */
export function stepLines(steps: readonly DeployStepReport[]): string[] {
  return steps.map((step) => {
    const size = step.size === undefined ? '-' : formatBytes(step.size)
    const source = step.from !== undefined ? `  (from ${step.from})` : step.to !== undefined ? `  (to ${step.to})` : ''
    return `${step.phase}\t${step.action}\t${step.key}\t${size}${source}`
  })
}

/**
 * `reg deploy --json`: the report as pretty JSON, in pieces. A dry run against a large host lists
 * every step (850,000 deletions for a bucket of 1,000,000 objects): they are written 1,000 to a
 * piece, one a line, never as one string of the whole document.
 */
export function* reportJson<T extends {steps?: readonly unknown[]}>(report: T): Generator<string> {
  const {steps, ...rest} = report
  const head = JSON.stringify(rest, null, 2)
  if (steps === undefined) {
    yield head
    return
  }
  // `head` ends with "\n}": the steps go in before that brace.
  yield `${head.slice(0, -2)},\n  "steps": [`
  for (let i = 0; i < steps.length; i += 1000) {
    yield steps.slice(i, i + 1000).map((step, j) => `${i + j === 0 ? '' : ','}\n    ${JSON.stringify(step)}`).join('')
  }
  yield `${steps.length > 0 ? '\n  ' : ''}]\n}`
}

