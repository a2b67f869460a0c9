/** Run `work` over `items` with at most `limit` in flight; the first failure rejects (after in-flight work settles). */
export async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  let failed: {error: unknown} | undefined
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++
      try {
        results[i] = await work(items[i], i)
      } catch (error) {
        failed ??= {error}
      }
    }
  }
  await Promise.all(Array.from({length: Math.max(1, Math.min(limit, items.length))}, worker))
  if (failed) throw failed.error
  return results
}
