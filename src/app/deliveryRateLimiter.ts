/**
 * Per-tenant, per-channel delivery rate limit that DELAYS, never drops: `admit` either lets a
 * delivery go now (taking a token) or names the time it may go. Token bucket of `perMinute`
 * tokens refilled continuously (bursts up to `perMinute`). Entries held back in one round get
 * successive slots (one token interval apart), so a backlog drains at the limit instead of
 * every held-back entry coming back at the same instant. Per process; bounded in memory.
 */
export class DeliveryRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number; nextSlot: number }>();
  private readonly perMs: number;

  constructor(
    private readonly perMinute: number,
    private readonly maxBuckets = 100_000,
  ) {
    this.perMs = perMinute / 60_000;
  }

  get enabled(): boolean {
    return this.perMinute > 0;
  }

  /** 0 = go now (a token was taken); otherwise the epoch ms at which to try again. */
  admit(key: string, now: number): number {
    if (this.perMinute <= 0) return 0;
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxBuckets) this.prune(now);
      b = { tokens: this.perMinute, at: now, nextSlot: 0 };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * this.perMs);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    const interval = 1 / this.perMs;
    const until = Math.ceil(Math.max(b.nextSlot, now + (1 - b.tokens) / this.perMs));
    b.nextSlot = until + interval;
    return until;
  }

  private prune(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.nextSlot <= now && b.tokens + (now - b.at) * this.perMs >= this.perMinute) this.buckets.delete(key);
    }
    if (this.buckets.size >= this.maxBuckets) this.buckets.clear();
  }
}
