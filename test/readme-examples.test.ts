// Every command of the README's examples (its `sh` blocks and the `reg deploy dist …` line of each
// backend) is run here when it can run offline — against the example image, with temporary
// directories for the paths — and prints no warning. Those that cannot (a cloud account, a Docker
// engine, installing packages) are listed with the reason, so a new example is never skipped silently.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {mkdir, readFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {freePort, waitUntil} from './static-hosts.js'
import {EXAMPLE_LAYOUT, REPO_ROOT, removeTempDirs, runReg, startServe, tempDir} from './support.js'

const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8')

/** The README's example commands: each line of a `sh` block (comments dropped), and each backend's `reg deploy dist …`. */
function readmeExamples(): string[] {
  const commands: string[] = []
  for (const block of readme.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of block[1].split('\n')) {
      const command = line.replace(/(^|\s)#.*$/, '').trim()
      if (command) commands.push(command)
    }
  }
  for (const span of readme.matchAll(/`((?:[A-Z_]+=\S+ )?reg deploy dist [^`]*)`/g)) commands.push(span[1].replace(/\s+/g, ' '))
  return commands
}

/** Why an example does not run here; anything else must run. */
const NOT_RUN: Array<[RegExp, string]> = [
  [/^bash \.ci\/run$/, 'installs packages with apt and runs the whole suite (this file included)'],
  [/^docker (push|pull) /, 'needs a Docker engine (none here); skopeo and ctr pulls are tested elsewhere'],
  [/^reg deploy dist --backend (s3|r2|scaleway) /, 'needs a cloud account; the S3 tests run it against s3rver'],
  [/^NETLIFY_AUTH_TOKEN=\S+ reg deploy dist --backend netlify /, 'needs a Netlify account; the Netlify tests run it against a fake API'],
  [/^CLOUDFLARE_API_TOKEN=\S+ reg deploy dist --backend cloudflare(-pages)? /, 'needs a Cloudflare account; the Cloudflare tests run it against wrangler and a fake API'],
]

/** Optional flags that act on a server the example assumes is running (tested with one in test/serving.test.ts). */
const NEEDS_A_RUNNING_SERVER = new Set(['--reload'])

/** `[--flag value]` kept when its value is an example value, dropped when it is a placeholder (PATH, TEXT). */
function concreteArgs(command: string): string[] {
  const kept = command.replace(/\[(--[a-z-]+)(?: ([^\]]+))?\]/g, (_all, flag: string, value?: string) => (NEEDS_A_RUNNING_SERVER.has(flag) ? '' : value === undefined ? flag : /^[A-Z]+$/.test(value) ? '' : `${flag} ${value}`))
  return kept.split(/\s+/).filter(Boolean)
}

describe('the README\'s examples run without a warning', () => {
  let work: string
  /** the working directory of the examples: ./dist is the example image's tree */
  let cwd: string
  /** where the examples' absolute paths (/srv/registry, /var/www/registry) go */
  const paths = new Map<string, string>()

  before(async () => {
    work = await tempDir()
    cwd = path.join(work, 'project')
    await mkdir(cwd, {recursive: true})
    for (const absolute of ['/srv/registry', '/var/www/registry']) paths.set(absolute, path.join(work, absolute.slice(1).replaceAll('/', '-')))
  })
  after(removeTempDirs)

  it('npm start: builds the example image into ./dist and serves it, with no warning', async () => {
    assert.ok(readmeExamples().includes('npm ci && npm start'))
    const scripts = (JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {scripts: Record<string, string>}).scripts
    assert.equal(scripts.start, 'node scripts/start.js', 'npm start runs scripts/start.js (run here directly: npm ci is not run in tests)')
    const port = await freePort()
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'scripts/start.js')], {cwd, env: {...process.env, PORT: String(port)}, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')))
    try {
      await waitUntil(`npm start serves on 127.0.0.1:${port}`, async () => stdout.includes('try: skopeo inspect') && (await fetch(`http://127.0.0.1:${port}/v2/examples/hello/tags/list`).then((r) => r.ok, () => false)), {
        exited: () => (child.exitCode === null ? undefined : `exited (${child.exitCode}): ${stderr}`),
      })
    } finally {
      child.kill('SIGTERM')
      await new Promise((resolve) => (child.exitCode === null && child.signalCode === null ? child.once('exit', resolve) : resolve(undefined)))
    }
    assert.equal(stderr, '', 'npm start wrote to stderr')
    assert.match(stdout, new RegExp(`reg serving dist at http://127\\.0\\.0\\.1:${port}/v2/`))
  })

  it('every other example: run here, or listed with the reason it cannot run offline', async () => {
    const ran: string[] = []
    const notRun: string[] = []
    for (const example of readmeExamples()) {
      if (example === 'npm ci && npm start') continue
      const reason = NOT_RUN.find(([pattern]) => pattern.test(example))
      if (reason) {
        notRun.push(`${example}: ${reason[1]}`)
        continue
      }
      const words = concreteArgs(example).map((word) => paths.get(word) ?? word)
      assert.equal(words[0], 'reg', `a README example this test does not know how to run: ${example}`)
      const args = words.slice(1)
      if (args[0] === 'serve') {
        // `reg serve` until it answers: -p picks a free port instead of 5000; its tree must exist first.
        const [, dir, ...flags] = args
        const served = await startServe(path.resolve(cwd, dir), flags)
        try {
          assert.equal((await fetch(`${served.url}/v2/examples/hello/tags/list`)).status, 200, example)
        } finally {
          await served.stop()
        }
        assert.equal(served.stderr(), '', `${example}: stderr`)
      } else {
        const result = await runReg(args, {cwd})
        assert.equal(result.code, 0, `${example}: ${result.stderr}`)
        assert.equal(result.stderr, '', `${example}: stderr`)
      }
      ran.push(example)
    }
    assert.deepEqual(ran, [
      'reg serve ./dist --push',
      'reg ls ./dist',
      'reg deploy ./dist --backend dir --dest ./public',
      'reg serve ./dist --proxy hub=https://registry-1.docker.io --proxy ghcr=https://ghcr.io --proxy-ttl 5m',
      'reg deploy dist --backend dir --dest ./public',
      'reg deploy dist --backend nginx --dest /srv/registry [--listen 0.0.0.0:80] [--server-name registry.example.com] [--server-root PATH] [--reload]',
      'reg deploy dist --backend apache --dest /var/www/registry',
    ])
    assert.equal(notRun.length, 9, notRun.join('\n'))
    // What the nginx example wrote is what its flags said.
    const nginxConf = await readFile(path.join(paths.get('/srv/registry') ?? '', 'nginx.conf'), 'utf8')
    assert.match(nginxConf, /listen 0\.0\.0\.0:80;/)
    assert.match(nginxConf, /server_name registry\.example\.com;/)
  })

  it('the example tree the commands above used is the example image', async () => {
    const listed = await runReg(['ls', './dist', '--json'], {cwd})
    const images = (JSON.parse(listed.stdout) as {images: Array<{repository: string; tag: string}>}).images
    assert.deepEqual(images.map((i) => `${i.repository}:${i.tag}`), ['examples/hello:1.0'])
    assert.ok(EXAMPLE_LAYOUT.endsWith(path.join('examples', 'hello')))
  })
})
