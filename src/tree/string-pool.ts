/**
 * Equal strings kept as one. A tree's records repeat values (the digest 5 tags name, a media type,
 * a repository's name, the time a build set its tags): parsed or built one record at a time, each
 * would be a string of its own, 100,000 copies at 100,000 tags.
 */
export class StringPool {
  private readonly kept = new Map<string, string>()

  /** `limit`: distinct values remembered at most (past it, a value is returned as it is) */
  constructor(private readonly limit = Number.POSITIVE_INFINITY) {}

  /** `value`, as the first equal string seen. */
  once(value: string): string {
    const kept = this.kept.get(value)
    if (kept !== undefined) return kept
    if (this.kept.size < this.limit) this.kept.set(value, value)
    return value
  }
}
