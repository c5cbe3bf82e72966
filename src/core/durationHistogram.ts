/**
 * A bounded, mergeable histogram of durations (milliseconds) for read-model percentiles.
 *
 * Glossary:
 * - bucket: durations are grouped on a log scale, GROWTH = 2^(1/8) ≈ 1.09 apart, so a bucket's
 *   upper bound is at most ~9 % above any value in it. Bucket 0 holds everything under 1 ms;
 *   bucket i ≥ 1 holds (GROWTH^(i-1), GROWTH^i]. A day (8.64e7 ms) is bucket ~211, so a histogram
 *   has at most a few hundred buckets whatever it counted — O(1) space per analyzer.
 * - quantile: the upper bound of the bucket holding the value of rank ⌈q·n⌉, clamped to the
 *   exact min/max: an over-estimate by at most one bucket width (≤ 9 %), never below the true
 *   value of that rank's bucket; exact when all values are equal.
 *
 * The same values in any order give the same histogram (counts only), so a projection replayed
 * from events and one recomputed from job rows compare equal.
 */
export interface DurationHistogram {
  /** Bucket index (as a string: JSON object key) → count. Sparse: empty buckets are absent. */
  readonly buckets: Readonly<Record<string, number>>;
  readonly count: number;
  readonly sumMs: number;
  readonly minMs: number | null;
  readonly maxMs: number | null;
}

const GROWTH = 2 ** (1 / 8);
const LOG_GROWTH = Math.log(GROWTH);

export const emptyHistogram = (): DurationHistogram => ({ buckets: {}, count: 0, sumMs: 0, minMs: null, maxMs: null });

export function bucketOf(ms: number): number {
  if (!(ms >= 1)) return 0;
  // The epsilon keeps exact powers (GROWTH^i) in bucket i despite floating-point noise.
  return Math.max(1, Math.ceil(Math.log(ms) / LOG_GROWTH - 1e-9));
}

/** The largest value bucket `i` holds. */
export const bucketUpperBound = (i: number): number => (i <= 0 ? 1 : GROWTH ** i);

/** A histogram its owner may change in place (a fold's private draft). */
export interface MutableHistogram {
  buckets: Record<string, number>;
  count: number;
  sumMs: number;
  minMs: number | null;
  maxMs: number | null;
}

export const mutableCopy = (h: DurationHistogram): MutableHistogram => ({ ...h, buckets: { ...h.buckets } });

/** Adds one duration in place (negative durations, from clock steps between hosts, count as 0). */
export function recordDuration(h: MutableHistogram, ms: number): void {
  const v = Math.max(0, ms);
  const key = String(bucketOf(v));
  h.buckets[key] = (h.buckets[key] ?? 0) + 1;
  h.count += 1;
  h.sumMs += v;
  h.minMs = h.minMs === null ? v : Math.min(h.minMs, v);
  h.maxMs = h.maxMs === null ? v : Math.max(h.maxMs, v);
}

/** Adds one duration, returning a new histogram (see recordDuration). */
export function addDuration(h: DurationHistogram, ms: number): DurationHistogram {
  const out = mutableCopy(h);
  recordDuration(out, ms);
  return out;
}

/** The q-quantile (0 < q ≤ 1) as described above; null for an empty histogram. */
export function quantile(h: DurationHistogram, q: number): number | null {
  if (h.count === 0 || h.minMs === null || h.maxMs === null) return null;
  const rank = Math.min(h.count, Math.max(1, Math.ceil(q * h.count)));
  const indices = Object.keys(h.buckets)
    .map(Number)
    .sort((a, b) => a - b);
  let seen = 0;
  for (const i of indices) {
    seen += h.buckets[String(i)] ?? 0;
    if (seen >= rank) return Math.min(h.maxMs, Math.max(h.minMs, bucketUpperBound(i)));
  }
  return h.maxMs;
}
