import { coerceError, isUpshiftError } from '../core/errors.js';

export interface StartupRetryOptions {
  /** Give up (rethrow the last error) once this much time has passed; 0 = never retry. */
  readonly timeoutMs: number;
  /** Called before each wait with the failure and the attempt number (1 = first failure). */
  readonly onRetry?: (error: Error, attempt: number, waitMs: number) => void;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs a startup step (migrate, connect) again while it fails with STORE_UNAVAILABLE or
 * QUEUE_UNAVAILABLE, with a growing pause (250 ms doubling to 2 s), until `timeoutMs` has
 * passed. A database that is restarting (a failover, a restart during a deploy) then delays a
 * process's start instead of killing it: the supervisor's restart would cost a whole new boot and
 * could hit the same window again. Every other error (a schema newer than the code, a bad
 * configuration) fails at once.
 */
export async function retryWhileUnavailable<T>(step: () => Promise<T>, opts: StartupRetryOptions): Promise<T> {
  const sleep = opts.sleep ?? defaultSleep;
  const now = opts.now ?? Date.now;
  const deadline = now() + Math.max(0, opts.timeoutMs);
  let wait = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (e) {
      const transient = isUpshiftError(e, 'STORE_UNAVAILABLE') || isUpshiftError(e, 'QUEUE_UNAVAILABLE');
      const left = deadline - now();
      if (!transient || left <= 0) throw e;
      const pause = Math.min(wait, left);
      opts.onRetry?.(coerceError(e), attempt, pause);
      await sleep(pause);
      wait = Math.min(wait * 2, 2_000);
    }
  }
}
