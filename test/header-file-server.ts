// Serves a deployed file set the way a `_headers`/`_redirects` host does, following Netlify's
// documented matching (and its own parser, @netlify/headers-parser): a file at the path wins over
// rules (shadowing); otherwise the first `_redirects` rule that matches (`:placeholder` = one
// segment, `*` = the rest, case-insensitive) rewrites (200), answers 404 with the target's body, or
// redirects. Headers come from every `_headers` rule whose pattern matches, matched either on the
// request path or on the rewritten path (hosts differ; reg's rules must work under both). Two
// matching rules that set the same header are an error here: hosts differ on merging them too.
import http from 'node:http'
import type {AddressInfo} from 'node:net'

export type HeaderMatching = 'request-path' | 'rewritten-path'

interface HeaderRule {
  pattern: string
  regexp: RegExp
  headers: Array<[string, string]>
}

interface RedirectRule {
  from: string
  regexp: RegExp
  names: string[]
  to: string
  status: number
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** @netlify/headers-parser's `for` → RegExp. */
function headerRegExp(pattern: string): RegExp {
  const parts = pattern.split('/').filter(Boolean).map((part) => {
    if (part.startsWith(':')) return '([^/]+)'
    if (part === '*') return '?(.*)'
    if (part.includes('*')) return part.split('*').map(escape).join('(.*)')
    return escape(part)
  })
  return new RegExp(`^/${parts.join('/')}/?$`, 'iu')
}

export function parseHeaderRules(text: string): HeaderRule[] {
  const rules: HeaderRule[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    if (line.startsWith('/')) {
      rules.push({pattern: line, regexp: headerRegExp(line), headers: []})
      continue
    }
    const rule = rules.at(-1)
    const colon = line.indexOf(':')
    if (!rule || colon <= 0) throw new Error(`_headers: cannot parse "${line}"`)
    rule.headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()])
  }
  return rules
}

export function parseRedirectRules(text: string): RedirectRule[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((line) => {
    const [from = '', to = '', status = '301'] = line.split(/\s+/)
    const names: string[] = []
    const parts = from.split('/').filter(Boolean).map((part, index, all) => {
      if (part.startsWith(':')) {
        names.push(part.slice(1))
        return '([^/]+)'
      }
      if (part === '*') {
        if (index !== all.length - 1) throw new Error(`_redirects: a splat must be last: ${line}`)
        names.push('splat')
        return '(.*)'
      }
      return escape(part)
    })
    return {from, regexp: new RegExp(`^/${parts.join('/')}/?$`, 'i'), names, to, status: Number(status)}
  })
}

function headersFor(rules: readonly HeaderRule[], urlPath: string): Record<string, string> {
  const headers: Record<string, string> = {}
  const setBy: Record<string, string> = {}
  for (const rule of rules) {
    if (!rule.regexp.test(urlPath)) continue
    for (const [name, value] of rule.headers) {
      const key = name.toLowerCase()
      if (setBy[key] !== undefined && setBy[key] !== rule.pattern) throw new Error(`${name} of ${urlPath} is set by two rules: ${setBy[key]} and ${rule.pattern}`)
      setBy[key] = rule.pattern
      headers[name] = headers[name] ? `${headers[name]}, ${value}` : value
    }
  }
  return headers
}

export interface HeaderFileHost {
  url: string
  hostPort: string
  /** every request, with the status answered */
  log: Array<{method: string; path: string; status: number}>
  stop(): Promise<void>
}

/** Serve `files` (URL path → bytes, including `/_headers` and `/_redirects`) on 127.0.0.1. */
export async function startHeaderFileHost(files: ReadonlyMap<string, Buffer>, matching: HeaderMatching): Promise<HeaderFileHost> {
  const headerRules = parseHeaderRules(files.get('/_headers')?.toString('utf8') ?? '')
  const redirectRules = parseRedirectRules(files.get('/_redirects')?.toString('utf8') ?? '')
  const log: HeaderFileHost['log'] = []
  const server = http.createServer((request, response) => {
    const send = (status: number, body: Buffer, headers: Record<string, string>) => {
      log.push({method: request.method ?? '', path: request.url ?? '', status})
      response.writeHead(status, {...headers, 'Content-Length': String(body.length)})
      response.end(request.method === 'HEAD' ? undefined : body)
    }
    try {
      if (request.method !== 'GET' && request.method !== 'HEAD') return send(405, Buffer.from('Method Not Allowed'), {'Content-Type': 'text/plain'})
      const requestPath = decodeURIComponent(new URL(request.url ?? '/', 'http://host').pathname)
      // The rule files themselves are not served (Netlify processes them at deploy time).
      let servedPath = requestPath === '/_headers' || requestPath === '/_redirects' ? '' : requestPath
      let status = 200
      if (!files.has(servedPath)) {
        const rule = redirectRules.map((r) => ({r, m: r.regexp.exec(requestPath)})).find((x) => x.m)
        if (!rule?.m) return send(404, Buffer.from('Not Found'), {'Content-Type': 'text/plain'})
        let target = rule.r.to
        rule.r.names.forEach((name, i) => { target = target.replace(`:${name}`, rule.m?.[i + 1] ?? '') })
        if (rule.r.status >= 300 && rule.r.status < 400) return send(rule.r.status, Buffer.alloc(0), {Location: target})
        if (!files.has(target)) return send(404, Buffer.from('Not Found'), {'Content-Type': 'text/plain'})
        servedPath = target
        status = rule.r.status
      }
      const body = files.get(servedPath) ?? Buffer.alloc(0)
      const defaults = {'Content-Type': servedPath.endsWith('.json') ? 'application/json' : 'application/octet-stream', 'Cache-Control': 'public, max-age=0, must-revalidate'}
      const custom = headersFor(headerRules, matching === 'request-path' ? requestPath : servedPath)
      send(status, body, {...defaults, ...custom})
    } catch (error) {
      send(500, Buffer.from((error as Error).message), {'Content-Type': 'text/plain'})
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const hostPort = `127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url: `http://${hostPort}`, hostPort, log,
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}
