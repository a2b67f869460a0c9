import cliProgress from 'cli-progress'
import {formatBytes} from './format.js'

/**
 * Byte progress for long copies: a bar on a TTY, nothing in between otherwise (plain output is one
 * line per finished item, printed by the command). Silent in --json mode.
 */
export class ByteProgress {
  private bar?: cliProgress.SingleBar
  private total = 0
  private done = 0

  constructor(private readonly enabled: boolean, private readonly label: string) {}

  static forStream(json: boolean, label: string): ByteProgress {
    return new ByteProgress(!json && Boolean(process.stderr.isTTY) && !process.env.CI, label)
  }

  addTotal(bytes: number): void {
    if (!this.enabled) return
    this.total += bytes
    if (!this.bar) {
      this.bar = new cliProgress.SingleBar({
        stream: process.stderr,
        format: `${this.label} [{bar}] {percentage}% {doneText} / {totalText}`,
        hideCursor: true,
        clearOnComplete: true,
      }, cliProgress.Presets.shades_classic)
      this.bar.start(this.total, this.done, {doneText: formatBytes(this.done), totalText: formatBytes(this.total)})
    } else {
      this.bar.setTotal(this.total)
      this.bar.update(this.done, {doneText: formatBytes(this.done), totalText: formatBytes(this.total)})
    }
  }

  tick(bytes: number): void {
    this.done += bytes
    this.bar?.update(this.done, {doneText: formatBytes(this.done), totalText: formatBytes(this.total)})
  }

  /** Print a line above the bar (or plainly when there is no bar). */
  log(line: string, write: (line: string) => void): void {
    if (this.bar) {
      this.bar.stop()
      write(line)
      this.bar = undefined
      if (this.done < this.total) this.addTotal(0)
    } else {
      write(line)
    }
  }

  stop(): void {
    this.bar?.stop()
    this.bar = undefined
  }
}
