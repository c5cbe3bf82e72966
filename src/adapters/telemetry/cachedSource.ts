/**
 * Wraps an async read so concurrent and back-to-back scrapes share one store query: the
 * result (or the in-flight promise) is reused for `ttlMs` after it was started. A rejection
 * is not cached, so the next scrape tries again.
 */
export function cachedSource<T>(read: () => Promise<T>, ttlMs: number): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | null = null;
  return () => {
    const now = performance.now();
    if (last && now - last.at < ttlMs) return last.value;
    const value = read();
    const entry = { at: now, value };
    last = entry;
    value.catch(() => {
      if (last === entry) last = null;
    });
    return value;
  };
}
