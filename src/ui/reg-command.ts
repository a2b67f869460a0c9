import {Command} from '@oclif/core'
import {describeError} from '../core/errors.js'

/** oclif's parse errors (unknown flag, bad value, missing argument) carry `parse` and ask for the full help. */
interface ParseError extends Error {
  parse?: unknown
  oclif?: {exit?: number}
}

/** Commands print errors themselves: oclif's own formatting wraps lines and prefixes "›", which breaks copy-paste of hints. */
export abstract class RegCommand extends Command {
  protected fail(error: unknown): never {
    process.stderr.write(`reg: error: ${describeError(error)}\n`)
    this.exit(1)
  }

  /** A flag error names the wrong flag and shows the usage line, instead of oclif's whole help page. */
  override async catch(error: ParseError): Promise<unknown> {
    if (error.parse === undefined) return super.catch(error)
    const message = error.message.replace(/\nSee more help with --help$/, '')
    process.stderr.write(`reg: error: ${message}\nusage: ${this.usageLine()}\n`)
    this.exit(error.oclif?.exit ?? 2)
  }

  /** `reg build [SOURCE...] [FLAGS]`: the arguments as oclif's help names them, the flags left to --help. */
  private usageLine(): string {
    const command = `${this.config.bin} ${this.id ?? ''}`.trim()
    const args = Object.entries(this.ctor.args ?? {}).map(([name, arg]) => {
      const shown = `${name.toUpperCase()}${this.ctor.strict === false ? '...' : ''}`
      return arg.required ? shown : `[${shown}]`
    })
    return `${[command, ...args, '[FLAGS]'].join(' ')}  (${command} --help lists the flags)`
  }
}
