// The backend registry: every flag declared once, the config schema derived from the declarations
// (and the committed schema/reg.config.schema.json equal to it), SDKs loaded only by `create`.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, describe, it} from 'node:test'
import {pathToFileURL} from 'node:url'
import {promisify} from 'node:util'
import {Flags, type Interfaces} from '@oclif/core'
import {BACKENDS} from '../plugins/index.js'
import {defineBackend} from '../plugins/plugin.js'
import {BackendRegistry, flagSchema} from '../plugins/registry.js'
import {configSchema} from '../src/config/config-schema.js'
import {EXAMPLE_LAYOUT, REPO_ROOT, removeTempDirs, runReg, tempDir} from './support.js'

const fake = (name: string, flags: Interfaces.FlagInput, uses: Array<'dest' | 'bucket'> = []) =>
  defineBackend({name, summary: name, flags, uses, create: async () => assert.fail('not created')})

describe('backend registry', () => {
  it('refuses two backends declaring the same flag, at load', () => {
    assert.throws(() => new BackendRegistry([fake('one', {site: Flags.string()}), fake('two', {site: Flags.string()})]), /the backends one and two both declare --site/)
  })

  it('refuses a backend redeclaring a shared flag, and a flag of the command', () => {
    assert.throws(() => new BackendRegistry([fake('one', {dest: Flags.string()})]), /shared flags .* and one both declare --dest/)
    assert.throws(() => new BackendRegistry([fake('one', {prune: Flags.string()})]).flagsBeside({prune: Flags.boolean()}), /--prune is both a deploy flag and a backend's/)
  })

  it('says in help which backends read a shared flag, from their `uses`', () => {
    const registry = new BackendRegistry([fake('one', {}, ['dest']), fake('two', {}, ['dest', 'bucket'])])
    assert.match(String(registry.flags.dest.description), /^\[one, two\] /)
    assert.match(String(registry.flags.bucket.description), /^\[two\] /)
    assert.equal(BACKENDS.flags.dest.description?.startsWith('[dir, nginx, apache] '), true)
  })

  it('derives each flag\'s schema from its declaration', () => {
    assert.deepEqual(flagSchema(Flags.integer({min: 1, description: 'n'})), {type: 'integer', minimum: 1, description: 'n'})
    assert.deepEqual(flagSchema(Flags.boolean()), {type: 'boolean', description: undefined})
    assert.deepEqual(flagSchema(Flags.string({options: ['a', 'b']})), {enum: ['a', 'b'], description: undefined})
    assert.deepEqual(flagSchema(Flags.string()), {type: 'string', description: undefined})
  })

  it('keeps secrets out of the config schema', () => {
    const target = (configSchema() as {definitions: {target: {properties: Record<string, unknown>}}}).definitions.target
    assert.equal('auth' in target.properties, false)
    assert.ok('site' in target.properties)
  })

  it('the committed schema/reg.config.schema.json is the derived one (regenerate: node --import tsx schema/generate.ts)', async () => {
    const committed = JSON.parse(await readFile(path.join(REPO_ROOT, 'schema', 'reg.config.schema.json'), 'utf8')) as unknown
    assert.deepEqual(committed, configSchema())
  })

  it('a deploy loads only its own backend\'s SDK: dir loads neither the AWS SDK nor the Netlify client', async () => {
    const work = await tempDir()
    assert.equal((await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '-o', path.join(work, 'tree')])).code, 0)
    // A module hook that names every SDK module the process resolves.
    const hook = path.join(work, 'hook.mjs')
    await writeFile(hook, `export async function resolve(specifier, context, next) {
      const resolved = await next(specifier, context)
      if (/node_modules\\/@(aws-sdk|netlify)\\//.test(resolved.url)) console.log('SDK ' + resolved.url)
      return resolved
    }`)
    const register = `data:text/javascript,import {register} from 'node:module'; register(${JSON.stringify(pathToFileURL(hook).href)})`
    const run = (args: string[]) => promisify(execFile)(process.execPath, ['--import', register, path.join(REPO_ROOT, 'bin', 'run.js'), ...args], {cwd: work})
    const dir = await run(['deploy', 'tree', '--backend', 'dir', '--dest', 'public'])
    assert.doesNotMatch(dir.stdout, /^SDK /m)
    assert.match(dir.stdout, /dir .*public: did upload/)
    // The hook does see an SDK where one is loaded: s3 fails early (no bucket) but after its import.
    const s3 = await run(['deploy', 'tree', '--backend', 's3', '--bucket', 'b', '--endpoint', 'http://127.0.0.1:9', '--dry-run']).catch((error: {stdout: string}) => error)
    assert.match(s3.stdout, /^SDK .*@aws-sdk\/client-s3/m)
  })
})

after(removeTempDirs)
