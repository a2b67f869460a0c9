// The GitHub Action speaks the commands' vocabulary: its job summary carries the lines `reg build`
// and `reg deploy` print, and its `images` output names each image by `repository`, as `reg ls --json`.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {EXAMPLE_LAYOUT, REPO_ROOT, removeTempDirs, runReg, tempDir} from './support.js'

/** The committed bundle, as the runner runs it: INPUT_* variables, $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY. */
async function runAction(work: string, name: string, inputs: Record<string, string>): Promise<{code: number; stdout: string; stderr: string; summary: string; output: string}> {
  const outputFile = path.join(work, `${name}.output`)
  const summaryFile = path.join(work, `${name}.summary.md`)
  await writeFile(outputFile, '')
  await writeFile(summaryFile, '')
  const env: NodeJS.ProcessEnv = {PATH: process.env.PATH, HOME: process.env.HOME, GITHUB_OUTPUT: outputFile, GITHUB_STEP_SUMMARY: summaryFile}
  for (const [input, value] of Object.entries(inputs)) env[`INPUT_${input.toUpperCase()}`] = value
  const result = await new Promise<{code: number; stdout: string; stderr: string}>((resolve) => {
    execFile(process.execPath, [path.join(REPO_ROOT, 'action/dist/index.js')], {cwd: work, env, timeout: 120_000}, (error, stdout, stderr) => {
      resolve({code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr})
    })
  })
  return {...result, summary: await readFile(summaryFile, 'utf8'), output: await readFile(outputFile, 'utf8')}
}

describe('the GitHub Action uses the commands\' words', () => {
  let work: string
  before(async () => {
    work = await tempDir()
  })
  after(removeTempDirs)

  it('build and deploy: the summary lines are the CLI\'s, the images output is by repository', async () => {
    const tree = path.join(work, 'dist')
    const built = await runAction(work, 'build', {command: 'build', args: `oci:${EXAMPLE_LAYOUT} -o ${tree}`})
    assert.equal(built.code, 0, built.stdout + built.stderr)
    const cli = await runReg(['build', `oci:${EXAMPLE_LAYOUT}`, '-o', tree])
    // The Action built first: the CLI's rebuild reads nothing, so only the copy figures differ.
    assert.ok(built.summary.includes(`<li>${tree}: 1 repository, 1 tag, 2 blobs; 751 B in blobs and manifests (0 B saved by storing each blob once); 350 B copied from the sources, 0 blobs already in the tree</li>`), built.summary)
    assert.equal(cli.stdout.trim().split('\n').at(-1), `${tree}: 1 repository, 1 tag, 2 blobs; 751 B in blobs and manifests (0 B saved by storing each blob once); 0 B copied from the sources, 2 blobs already in the tree`)
    const images = /images<<(\S+)\n(.*)\n\1/.exec(built.output)?.[2]
    assert.deepEqual((JSON.parse(images ?? '[]') as Array<Record<string, unknown>>).map((image) => Object.keys(image)), [['repository', 'tag', 'digest', 'mediaType', 'platforms', 'size']])

    const dest = path.join(work, 'public')
    const deployed = await runAction(work, 'deploy', {command: 'deploy', backend: 'dir', args: `${tree} --dest ${dest}`})
    assert.equal(deployed.code, 0, deployed.stdout + deployed.stderr)
    assert.ok(deployed.summary.includes(`<li>dir ${dest}: did upload 6 objects (828 B), copy 1 object server-side (401 B), delete 0 objects; 0 objects unchanged</li>`), deployed.summary)
    const dry = await runAction(work, 'dry', {command: 'deploy', backend: 'dir', args: `${tree} --dest ${dest} --dry-run`})
    assert.ok(dry.summary.includes(`<li>dry run: nothing was changed</li><li>dir ${dest}: would upload 0 objects (0 B), copy 0 objects server-side (0 B), delete 0 objects; 7 objects unchanged</li>`), dry.summary)
  })
})
