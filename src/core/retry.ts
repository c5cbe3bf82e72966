export interface BackoffPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
  /** 0..1: the share of the delay that is randomised ("equal jitter" at 0.5). */
  readonly jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 5 * 60_000, jitter: 0.5 };

/**
 * Delay before attempt `nextAttempt` (2 = the first retry): exponential in the number of
 * failures, capped, with jitter. `random` is injected so tests are deterministic.
 */
export function backoffDelay(nextAttempt: number, policy: BackoffPolicy, random: () => number): number {
  const failures = Math.max(1, nextAttempt - 1);
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** (failures - 1));
  const jitterPart = exp * policy.jitter;
  return Math.round(exp - jitterPart + jitterPart * random());
}
