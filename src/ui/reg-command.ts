import {Command} from '@oclif/core'
import {describeError} from '../core/errors.js'

/** Commands print errors themselves: oclif's own formatting wraps lines and prefixes "›", which breaks copy-paste of hints. */
export abstract class RegCommand extends Command {
  protected fail(error: unknown): never {
    process.stderr.write(`reg: error: ${describeError(error)}\n`)
    this.exit(1)
  }
}
