import { HyperLogLog } from './hyperLogLog.js';

/**
 * Distinct count and top values of one column in bounded memory.
 *
 * Exact mode: a Map of value -> count, used while the column has at most
 * {@link EXACT_DISTINCT_LIMIT} distinct values whose keys total at most
 * {@link EXACT_KEY_CHARS_LIMIT} characters. Distinct and top counts are then exact.
 *
 * Sketch mode (after either bound is crossed, for the rest of the stream):
 * - distinct: HyperLogLog (≈0.81 % relative standard error), seeded with every key seen so far;
 * - top: Misra–Gries heavy hitters keeping at most 2·{@link HEAVY_HITTERS_K} counters.
 *   Reported counts are lower bounds: true count ∈ [count, count + N/(K+1)] where N is the
 *   number of values, and every value more frequent than N/(K+1) is kept. Keys longer than
 *   {@link MAX_SKETCH_KEY_CHARS} are truncated (with `…`) so the counters stay bounded in bytes.
 */
export const EXACT_DISTINCT_LIMIT = 10_000;
export const EXACT_KEY_CHARS_LIMIT = 1_000_000;
export const HEAVY_HITTERS_K = 1_000;
export const MAX_SKETCH_KEY_CHARS = 1_000;

type State =
  | { readonly mode: 'exact'; readonly counts: Map<string, number>; keyChars: number }
  | { readonly mode: 'sketch'; readonly hll: HyperLogLog; readonly counters: Map<string, number>; decrement: number };

export class ValueCounter {
  private state: State = { mode: 'exact', counts: new Map(), keyChars: 0 };

  add(key: string): void {
    const st = this.state;
    if (st.mode === 'exact') {
      const c = st.counts.get(key);
      if (c !== undefined) {
        st.counts.set(key, c + 1);
        return;
      }
      st.counts.set(key, 1);
      st.keyChars += key.length;
      if (st.counts.size > EXACT_DISTINCT_LIMIT || st.keyChars > EXACT_KEY_CHARS_LIMIT) this.toSketch(st.counts);
      return;
    }
    st.hll.add(key);
    const k = sketchKey(key);
    st.counters.set(k, (st.counters.get(k) ?? 0) + 1);
    if (st.counters.size > 2 * HEAVY_HITTERS_K) st.decrement += prune(st.counters);
  }

  get isExact(): boolean {
    return this.state.mode === 'exact';
  }

  distinct(): number {
    const st = this.state;
    return st.mode === 'exact' ? st.counts.size : Math.round(st.hll.estimate());
  }

  /** The `n` most frequent keys, by count descending then key ascending (deterministic ties). */
  top(n: number): Array<{ key: string; count: number }> {
    const st = this.state;
    const entries = st.mode === 'exact' ? st.counts : st.counters;
    // A bounded selection (insertion into a sorted array of size n) instead of sorting up to
    // 10k entries: this runs at every partial snapshot.
    const best: Array<{ key: string; count: number }> = [];
    for (const [key, count] of entries) {
      if (best.length === n) {
        const last = best[n - 1];
        if (last !== undefined && !before(count, key, last.count, last.key)) continue;
        best.pop();
      }
      let i = best.length;
      while (i > 0) {
        const prev = best[i - 1];
        if (prev === undefined || !before(count, key, prev.count, prev.key)) break;
        i--;
      }
      best.splice(i, 0, { key, count });
    }
    return best;
  }

  private toSketch(counts: Map<string, number>): void {
    const hll = new HyperLogLog();
    const counters = new Map<string, number>();
    for (const [key, count] of counts) {
      hll.add(key);
      const k = sketchKey(key);
      counters.set(k, (counters.get(k) ?? 0) + count);
    }
    // Starting from exact counts is a valid Misra–Gries state; pruning keeps the invariant.
    const decrement = counters.size > HEAVY_HITTERS_K ? prune(counters) : 0;
    this.state = { mode: 'sketch', hll, counters, decrement };
  }
}

function before(countA: number, keyA: string, countB: number, keyB: string): boolean {
  return countA > countB || (countA === countB && keyA < keyB);
}

function sketchKey(key: string): string {
  return key.length <= MAX_SKETCH_KEY_CHARS ? key : `${key.slice(0, MAX_SKETCH_KEY_CHARS - 1)}…`;
}

/**
 * Batched Misra–Gries decrement: subtract the (K+1)-th largest count c from every counter
 * and drop those that reach zero. At least K+1 counters lose c each, so the total subtracted
 * over the stream is at most N/(K+1). Amortised O(1) per value (one sort of 2K counts per
 * ≥K new keys). Returns c.
 */
function prune(counters: Map<string, number>): number {
  const values = Float64Array.from(counters.values()).sort();
  const c = values[values.length - 1 - HEAVY_HITTERS_K] ?? 0;
  for (const [key, v] of counters) {
    if (v <= c) counters.delete(key);
    else counters.set(key, v - c);
  }
  return c;
}
