import {RegError} from '../core/errors.js'

const UNITS: Record<string, number> = {s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000}

/** `30d`, `12h`, `90m`, `45s`, `2w`, or `0`: a duration in milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d{1,9})([smhdw]?)$/.exec(text.trim())
  if (!match || (match[2] === '' && match[1] !== '0')) {
    throw new RegError(`${flag} ${JSON.stringify(text.slice(0, 40))} is not a duration`, `write a number and a unit: 30d, 12h, 90m, 45s, 2w (or 0)`)
  }
  return Number(match[1]) * (match[2] ? UNITS[match[2]] : 0)
}
