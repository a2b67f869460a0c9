// The README and `--help` come from, or are checked against, one source: every flag of every command
// in oclif.manifest.json (what --help prints) is in the README with its allowed values, and the
// transports `reg build --help` lists are those the source registry parses (src/sources/index.ts).
import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {describe, it} from 'node:test'
import {TRANSPORTS} from '../src/sources/index.js'
import {REPO_ROOT, runReg} from './support.js'

interface ManifestFlag {name: string; char?: string; hidden?: boolean; options?: string[]; type: string}
interface Manifest {commands: Record<string, {description?: string; flags: Record<string, ManifestFlag>; hidden?: boolean}>}

const manifest = JSON.parse(await readFile(path.join(REPO_ROOT, 'oclif.manifest.json'), 'utf8')) as Manifest
const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8')
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** The commands reg's own code defines: every one in its manifest (plugins such as autocomplete document themselves). */
const OWN_COMMANDS = Object.keys(manifest.commands).sort()

/** Every value the README writes after `--flag` as `--flag a|b|c` (or `--flag=a`, `[--flag a]`). */
function valuesWritten(flag: string): Set<string> {
  const values = new Set<string>()
  for (const match of readme.matchAll(new RegExp(`--${escape(flag)}(?:=|\\s+)([a-z0-9][a-z0-9-]*(?:\\|[a-z0-9][a-z0-9-]*)*)(?![A-Za-z0-9_./-])`, 'g'))) {
    for (const value of match[1].split('|')) values.add(value)
  }
  return values
}

/** `transport:` as users write it (`docker://`). */
const spelled = (transport: string) => (transport === 'docker' ? 'docker://' : `${transport}:`)

describe('README and --help: one source', () => {
  it('the manifest has the commands the README documents', () => {
    assert.ok(OWN_COMMANDS.length >= 6, OWN_COMMANDS.join(', '))
    for (const command of OWN_COMMANDS) {
      assert.ok(manifest.commands[command], `${command} in oclif.manifest.json`)
      assert.match(readme, new RegExp(`^reg ${command} `, 'm'), `the README's CLI synopsis has reg ${command}`)
      assert.match(readme, new RegExp(`^### \`reg ${command}\``, 'm'), `the README has a section for reg ${command}`)
    }
  })

  for (const command of OWN_COMMANDS) {
    it(`every flag of reg ${command} is in the README, with its allowed values`, () => {
      const missing: string[] = []
      for (const flag of Object.values(manifest.commands[command].flags)) {
        if (flag.hidden) continue
        if (!readme.includes(`--${flag.name}`)) missing.push(`--${flag.name}`)
        if (flag.char && !new RegExp(`-${flag.char}[ ,]`).test(readme)) missing.push(`-${flag.char} (--${flag.name})`)
        if (flag.options) {
          const written = valuesWritten(flag.name)
          const absent = flag.options.filter((value) => !written.has(value))
          const unknown = [...written].filter((value) => !flag.options?.includes(value))
          if (absent.length > 0) missing.push(`--${flag.name} ${absent.join('|')} (the README writes --${flag.name} ${[...written].join('|') || 'without its values'})`)
          if (unknown.length > 0) missing.push(`--${flag.name}: the README writes ${unknown.join(', ')}, which it does not take (${flag.options.join('|')})`)
        }
      }
      assert.deepEqual(missing, [], `reg ${command}: flags --help has and the README does not`)
    })
  }

  it('reg build --help lists every transport the sources parse, and only those', async () => {
    const help = await runReg(['build', '--help'])
    assert.equal(help.code, 0, help.stderr)
    const listed = new Set([...help.stdout.matchAll(/^ {2}([a-z-]+):(?:\/\/)?\S*\s/gm)].map((m) => m[1]))
    assert.deepEqual([...listed].sort(), [...TRANSPORTS].sort(), `reg build --help lists: ${[...listed].join(', ')}`)
    for (const transport of TRANSPORTS) {
      assert.ok(help.stdout.includes(`  ${spelled(transport)}`), `reg build --help writes ${spelled(transport)}`)
      assert.match(readme, new RegExp(`^\\| \`${escape(spelled(transport))}`, 'm'), `the README's source table has ${spelled(transport)}`)
    }
  })
})
