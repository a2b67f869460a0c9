// The config file (schema, errors, driving build and deploy with no flags) and the GitHub Action's
// bundled entry point, run the way the runner runs it: INPUT_* variables, $GITHUB_OUTPUT and
// $GITHUB_STEP_SUMMARY files, in a directory with no node_modules.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {cp, mkdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {readConfigFile} from '../src/config/config-file.js'
import {BACKENDS} from '../plugins/index.js'
import Deploy from '../src/commands/deploy.js'
import {EXAMPLE_LAYOUT, REPO_ROOT, removeTempDirs, runReg, tempDir} from './support.js'

const EXAMPLE_DIGEST_FILE = path.join(EXAMPLE_LAYOUT, 'index.json')

async function configError(work: string, name: string, text: string): Promise<string> {
  const file = path.join(work, name)
  await writeFile(file, text)
  try {
    await readConfigFile(file)
  } catch (error) {
    return (error as Error).message
  }
  return 'no error'
}

function runNode(args: string[], options: {cwd: string; env: NodeJS.ProcessEnv}): Promise<{code: number; stdout: string; stderr: string}> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, {cwd: options.cwd, env: options.env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024}, (error, stdout, stderr) => {
      resolve({code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr})
    })
  })
}

/** `name<<DELIMITER\nvalue\nDELIMITER` entries, as @actions/core writes $GITHUB_OUTPUT. */
function parseGithubOutput(text: string): Record<string, string> {
  const outputs: Record<string, string> = {}
  const pattern = /^([\w-]+)<<(\S+)\n([\s\S]*?)\n\2$/gm
  for (const match of text.matchAll(pattern)) outputs[match[1] ?? ''] = match[3] ?? ''
  return outputs
}

describe('config file', () => {
  let work: string
  before(async () => {
    work = await tempDir()
  })
  after(removeTempDirs)

  it('says which file, where in it and what was expected', async () => {
    assert.equal(await configError(work, 'a.json', '{"targets": {"prod": {"backend": "s4"}}}'),
      `${path.join(work, 'a.json')} is not a valid reg config:\n  targets.prod.backend: expected one of "dir", "nginx", "apache", "s3", "r2", "scaleway", "netlify", "cloudflare", "cloudflare-pages"`)
    assert.equal(await configError(work, 'b.yaml', 'targets:\n  prod:\n    backend: netlify\n    site: x\n    auth: secret\n'),
      `${path.join(work, 'b.yaml')} is not a valid reg config:\n  targets.prod: unknown key "auth" (secrets belong in the environment, never in this file)`)
    assert.equal(await configError(work, 'c.json', '{"sources": [42], "out": 3}'),
      `${path.join(work, 'c.json')} is not a valid reg config:\n  out: expected string\n  sources.0: expected a source string ("oci:./layout=team/app:1") or {source, name}`)
    assert.equal(await configError(work, 'd.json', '{"sources": [{"source": "oci:./x", "name": "Team/App"}]}'),
      `${path.join(work, 'd.json')} is not a valid reg config:\n  sources.0: expected a source string ("oci:./layout=team/app:1") or {source, name}`)
    assert.match(await configError(work, 'e.yaml', 'targets: [unclosed\n'), /e\.yaml: not valid YAML: /)
    assert.match(await configError(work, 'f.json', '{"defaultTarget": "prod", "targets": {"dev": {"backend": "dir"}}}'), /defaultTarget: no target "prod"/)
    // A flag of another backend would be ignored: it is refused, from the backends' declarations.
    assert.equal(await configError(work, 'g.json', '{"targets": {"prod": {"backend": "s3", "bucket": "b", "dest": "./public", "site": "x"}}}'),
      `${path.join(work, 'g.json')} is not a valid reg config:\n  targets.prod: backend s3 does not read "dest"\n  targets.prod: backend s3 does not read "site"`)
  })

  it('the schema names every deploy flag a target may set (and nothing else)', async () => {
    const schema = JSON.parse(await readFile(path.join(REPO_ROOT, 'schema/reg.config.schema.json'), 'utf8')) as {definitions: {target: {properties: Record<string, unknown>}}}
    // Not for a file: secrets (auth, api-token), what a run decides (dry-run, json, target, config).
    const notInFile = new Set(['auth', 'api-token', 'dry-run', 'json', 'target', 'config'])
    const flags = Object.keys(Deploy.flags).filter((f) => !notInFile.has(f)).sort()
    assert.deepEqual(Object.keys(schema.definitions.target.properties).sort(), flags)
    assert.ok(BACKENDS.plugins.length >= 7)
  })

  it('drives reg build and reg deploy with no flags; flags override a target; unknown targets are named', async () => {
    const project = path.join(work, 'project')
    await mkdir(project, {recursive: true})
    await cp(EXAMPLE_LAYOUT, path.join(project, 'layout'), {recursive: true})
    await writeFile(path.join(project, 'reg.config.yaml'), [
      'out: ./registry',
      'prefix: acme',
      'sources:',
      '  - oci:./layout',
      '  - source: oci:./layout',
      '    name: tools/hello:stable',
      'targets:',
      '  local:',
      '    backend: dir',
      '    dest: ./public',
      '    prune: true',
      '',
    ].join('\n'))
    const built = await runReg(['build', '--json'], {cwd: project})
    assert.equal(built.code, 0, built.stderr)
    const names = (JSON.parse(built.stdout) as {images: Array<{name: string; tag: string}>}).images.map((i) => `${i.name}:${i.tag}`).sort()
    assert.deepEqual(names, ['acme/examples/hello:1.0', 'acme/tools/hello:stable'])
    const deployed = await runReg(['deploy'], {cwd: project})
    assert.equal(deployed.code, 0, deployed.stderr)
    const tagsList = JSON.parse(await readFile(path.join(project, 'public/v2/acme/tools/hello/tags/list'), 'utf8')) as {tags: string[]}
    assert.deepEqual(tagsList.tags, ['stable'])
    const other = path.join(work, 'elsewhere')
    const overridden = await runReg(['deploy', '--target', 'local', '--dest', other], {cwd: project})
    assert.equal(overridden.code, 0, overridden.stderr)
    await readFile(path.join(other, 'v2/acme/examples/hello/manifests/1.0'))
    const unknown = await runReg(['deploy', '--target', 'prod'], {cwd: project})
    assert.notEqual(unknown.code, 0)
    assert.match(unknown.stderr, /reg\.config\.yaml has no target "prod"/)
    assert.match(unknown.stderr, /targets: local/)
  })
})

describe('GitHub Action (bundled entry point, as the runner runs it)', () => {
  let work: string
  let actionRoot: string
  before(async () => {
    work = await tempDir()
    // What a runner checks out: action.yml, the bundle, package.json and the schema; no node_modules.
    actionRoot = path.join(work, 'action-checkout')
    await mkdir(actionRoot, {recursive: true})
    for (const entry of ['action.yml', 'package.json', 'action/dist', 'schema']) await cp(path.join(REPO_ROOT, entry), path.join(actionRoot, entry), {recursive: true})
  })
  after(removeTempDirs)

  const runAction = async (inputs: Record<string, string>, name: string) => {
    const outputFile = path.join(work, `${name}.output`)
    const summaryFile = path.join(work, `${name}.summary.md`)
    await writeFile(outputFile, '')
    await writeFile(summaryFile, '')
    const env: NodeJS.ProcessEnv = {PATH: process.env.PATH, HOME: process.env.HOME, GITHUB_OUTPUT: outputFile, GITHUB_STEP_SUMMARY: summaryFile}
    for (const [input, value] of Object.entries(inputs)) env[`INPUT_${input.toUpperCase()}`] = value
    const result = await runNode([path.join(actionRoot, 'action/dist/index.js')], {cwd: work, env})
    return {...result, outputs: parseGithubOutput(await readFile(outputFile, 'utf8')), summary: await readFile(summaryFile, 'utf8')}
  }

  it('builds and deploys a fixture with the config file: outputs, job summary, then nothing to upload', async () => {
    const project = path.join(work, 'repo')
    await mkdir(project, {recursive: true})
    await writeFile(path.join(project, 'reg.config.json'), JSON.stringify({
      out: './dist', sources: [{source: `oci:${EXAMPLE_LAYOUT}`, name: 'team/hello:1.0'}],
      url: 'https://registry.example.com',
      targets: {prod: {backend: 'dir', dest: './site'}},
    }))
    const built = await runAction({command: 'build', 'working-directory': project}, 'build')
    assert.equal(built.code, 0, built.stdout + built.stderr)
    const exampleDigest = (JSON.parse(await readFile(EXAMPLE_DIGEST_FILE, 'utf8')) as {manifests: Array<{digest: string}>}).manifests[0]?.digest
    const builtImages = JSON.parse(built.outputs.images ?? '[]') as Array<{repository: string; tag: string; digest: string}>
    assert.deepEqual(builtImages.map((i) => [i.repository, i.tag, i.digest]), [['team/hello', '1.0', exampleDigest]])

    const deployed = await runAction({command: 'deploy', target: 'prod', 'working-directory': project}, 'deploy')
    assert.equal(deployed.code, 0, deployed.stdout + deployed.stderr)
    const uploaded = Number(deployed.outputs['uploaded-bytes'])
    assert.ok(uploaded > 0, `uploaded-bytes ${deployed.outputs['uploaded-bytes']}`)
    assert.equal(deployed.outputs['registry-url'], 'https://registry.example.com')
    assert.match(deployed.summary, /<h2>reg deploy → dir .*site \(target prod\)<\/h2>/)
    assert.ok(deployed.summary.includes(`<td>team/hello</td><td>1.0</td><td><code>${exampleDigest}</code></td>`), deployed.summary)
    assert.ok(deployed.summary.includes('docker pull registry.example.com/team/hello:1.0'), deployed.summary)
    await readFile(path.join(project, 'site/v2/team/hello/manifests/1.0'))

    const again = await runAction({command: 'deploy', target: 'prod', 'working-directory': project}, 'again')
    assert.equal(again.code, 0, again.stdout + again.stderr)
    assert.equal(again.outputs['uploaded-bytes'], '0')

    // --verify runs in the Action too: a registry that is not there fails the step after the deploy.
    const verified = await runAction({command: 'deploy', target: 'prod', 'working-directory': project, args: '--verify http://127.0.0.1:9'}, 'verify')
    assert.equal(verified.code, 1, verified.stdout + verified.stderr)
    assert.match(verified.stdout, /^::error::.*127\.0\.0\.1:9/m)
  })

  it('errors become ::error:: annotations and fail the step', async () => {
    const failed = await runAction({command: 'deploy', backend: 'dir', args: `${path.join(work, 'not-a-tree')} --dest ${path.join(work, 'x')}`}, 'error')
    assert.equal(failed.code, 1)
    assert.match(failed.stdout, /^::error::.*not-a-tree is not a reg tree \(no registry\.json\)%0A {2}hint: build one first/m)
    const unknown = await runAction({command: 'publish'}, 'unknown')
    assert.equal(unknown.code, 1)
    assert.match(unknown.stdout, /::error::unknown command "publish"/)
  })

  it('the committed bundle is the one the sources build (npm run build:action)', async () => {
    const fresh = path.join(work, 'fresh-bundle.js')
    const built = await runNode([path.join(REPO_ROOT, 'scripts/build-action.mjs'), fresh], {cwd: REPO_ROOT, env: process.env})
    assert.equal(built.code, 0, built.stderr)
    const [committed, rebuilt] = await Promise.all([readFile(path.join(REPO_ROOT, 'action/dist/index.js')), readFile(fresh)])
    assert.ok(committed.equals(rebuilt), 'action/dist/index.js is stale: run npm run build:action and commit it')
    // The Cloudflare backend uploads its Worker script from beside the bundle.
    const [worker, bundled] = await Promise.all([readFile(path.join(REPO_ROOT, 'plugins/backend-cloudflare/worker.js')), readFile(path.join(REPO_ROOT, 'action/dist/worker.js'))])
    assert.ok(worker.equals(bundled), 'action/dist/worker.js is stale: run npm run build:action and commit it')
  })
})
