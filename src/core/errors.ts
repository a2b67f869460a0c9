/**
 * The one error type users see. `hint` says how to fix it; commands print both and exit non-zero.
 */
export class RegError extends Error {
  constructor(message: string, readonly hint?: string, readonly code = 'REG_ERROR') {
    super(message)
    this.name = 'RegError'
  }
}

export function describeError(error: unknown): string {
  if (error instanceof RegError) return error.hint ? `${error.message}\n  hint: ${error.hint}` : error.message
  if (error instanceof Error) return error.message
  return String(error)
}

/** Node's errno codes, without `any`. */
export function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as {code: unknown}).code) : undefined
}
