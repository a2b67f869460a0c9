// Summarise a V8 CPU profile (`node --cpu-prof --cpu-prof-dir=DIR bin/run.js ...`): self and total
// time by function and self time by file, as a share of the sampled time. A function is counted
// once per sample however deep it recurses.
//
//   node --import tsx bench/profile-summary.ts DIR/CPU.*.cpuprofile [--top 25] [--json] [--spans fn1,fn2,...]
//
// --spans: for each named function, the wall-clock span from the first to the last sample with it on
// the stack (an async phase spends most of its time idle, where the profile has no stack), and its
// total on-CPU time within that span.
import {readFile} from 'node:fs/promises'
import path from 'node:path'

interface CallFrame {functionName: string; url: string; lineNumber: number}
interface ProfileNode {id: number; callFrame: CallFrame; children?: number[]}
interface CpuProfile {nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number}

const args = process.argv.slice(2)
const file = args.find((a, i) => a.endsWith('.cpuprofile') || (i === 0 && !a.startsWith('--')))
const topIndex = args.indexOf('--top')
const top = topIndex >= 0 ? Number(args[topIndex + 1]) : 25
if (!file) {
  console.error('usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile [--top N] [--json]')
  process.exit(2)
}
const spansIndex = args.indexOf('--spans')
const spanNames = spansIndex >= 0 ? args[spansIndex + 1].split(',') : []
const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile

/** a short, stable place for a frame: file relative to the project (or node:/dependency), line 1-based */
function where(frame: CallFrame): string {
  let url = frame.url.replace(/^file:\/\//, '')
  const lib = url.indexOf('/lib/')
  if (url.includes('/node_modules/')) url = url.slice(url.lastIndexOf('/node_modules/') + 14)
  else if (lib >= 0) url = url.slice(lib + 5)
  else if (url) url = path.basename(url)
  return url ? `${url}:${frame.lineNumber + 1}` : '(native)'
}
const fileOf = (frame: CallFrame) => where(frame).replace(/:\d+$/, '')
const keyOf = (frame: CallFrame) => `${frame.functionName || '(anonymous)'}  ${where(frame)}`

const byId = new Map<number, ProfileNode>()
const parent = new Map<number, number>()
for (const node of profile.nodes) {
  byId.set(node.id, node)
  for (const child of node.children ?? []) parent.set(child, node.id)
}
const self = new Map<string, number>()
const total = new Map<string, number>()
const selfByFile = new Map<string, number>()
const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us)
let sampled = 0
const spans = new Map<string, {first: number; last: number; cpu: number}>()
let clock = profile.startTime
for (let i = 0; i < profile.samples.length; i++) {
  clock += profile.timeDeltas[i]
  // timeDeltas[i] is the time since the previous sample: the time of sample i-1; the last one gets the mean.
  const us = i + 1 < profile.timeDeltas.length ? profile.timeDeltas[i + 1] : (profile.endTime - profile.startTime) / profile.samples.length
  const leaf = byId.get(profile.samples[i])!
  sampled += us
  add(self, keyOf(leaf.callFrame), us)
  add(selfByFile, fileOf(leaf.callFrame), us)
  const seen = new Set<string>()
  for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
    const key = keyOf(byId.get(id)!.callFrame)
    if (!seen.has(key)) {
      seen.add(key)
      add(total, key, us)
      const name = byId.get(id)!.callFrame.functionName
      if (spanNames.includes(name)) {
        const span = spans.get(name) ?? {first: clock, last: clock, cpu: 0}
        span.last = clock
        span.cpu += us
        spans.set(name, span)
      }
    }
  }
}
const ranked = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top)
  .map(([key, us]) => ({key, ms: Math.round(us / 1000), percent: Number(((100 * us) / sampled).toFixed(1))}))
const spanRows = spanNames.map((name) => {
  const span = spans.get(name)
  return span
    ? {name, startMs: Math.round((span.first - profile.startTime) / 1000), wallMs: Math.round((span.last - span.first) / 1000), cpuMs: Math.round(span.cpu / 1000)}
    : {name, startMs: -1, wallMs: 0, cpuMs: 0}
})
const summary = {sampledMs: Math.round(sampled / 1000), spans: spanRows, self: ranked(self), total: ranked(total), selfByFile: ranked(selfByFile)}
if (args.includes('--json')) {
  console.log(JSON.stringify(summary, null, 1))
} else {
  console.log(`sampled ${summary.sampledMs} ms`)
  for (const span of summary.spans) console.log(`span ${span.name}: from ${span.startMs} ms, ${span.wallMs} ms wall, ${span.cpuMs} ms on CPU`)
  for (const [title, rows] of [['self time by function', summary.self], ['total time by function', summary.total], ['self time by file', summary.selfByFile]] as const) {
    console.log(`\n${title}`)
    for (const row of rows) console.log(`${String(row.percent).padStart(5)}% ${String(row.ms).padStart(7)} ms  ${row.key}`)
  }
}
