import { defineAnalyzer, PermanentError } from '../core/analyzer.js';
import type { Json } from '../core/job.js';

/** Returns its input unchanged: the cheapest possible job, for tests and benchmarks. */
export const noopAnalyzer = defineAnalyzer<Json, Json>({
  name: 'noop',
  version: '1.0.0',
  description: 'Returns its input unchanged.',
  // Any JSON value is a valid input.
  inputSchema: {},
  run(input) {
    return Promise.resolve(input);
  },
});

export type SleepInput = {
  ms: number;
  steps?: number;
  fail?: 'permanent' | 'retryable';
};

export type SleepOutput = { slept_ms: number; steps: number };

/**
 * Waits `ms` in `steps` equal steps, recording a partial and progress after each. It exists
 * to exercise the runtime (progress, partials, cancel, timeout, retry), so it must react to
 * `ctx.signal` within milliseconds rather than at the next step boundary.
 */
export const sleepAnalyzer = defineAnalyzer<SleepInput, SleepOutput>({
  name: 'sleep',
  version: '1.0.0',
  description: 'Sleeps for `ms` milliseconds in `steps` steps; optionally fails at the end.',
  inputSchema: {
    type: 'object',
    properties: {
      ms: { type: 'integer', minimum: 0, maximum: 3_600_000 },
      steps: { type: 'integer', minimum: 0, maximum: 1000, default: 0 },
      fail: { enum: ['permanent', 'retryable'] },
    },
    required: ['ms'],
    additionalProperties: false,
  },
  async run(input, ctx) {
    const { ms } = input;
    const steps = input.steps ?? 0;
    ctx.signal.throwIfAborted();
    if (steps === 0) {
      await delay(ms, ctx.signal);
    } else {
      for (let i = 1; i <= steps; i++) {
        // Step boundaries are rounded from the cumulative schedule so the step delays sum
        // to exactly `ms` (no drift from per-step rounding).
        const wait = Math.round((ms * i) / steps) - Math.round((ms * (i - 1)) / steps);
        await delay(wait, ctx.signal);
        await abortable(ctx.partial(`step-${i}`, { step: i, steps }), ctx.signal);
        ctx.progress(i / steps);
      }
    }
    if (input.fail === 'permanent') throw new PermanentError('sleep: permanent failure requested by input');
    if (input.fail === 'retryable') throw new Error('sleep: retryable failure requested by input');
    return { slept_ms: ms, steps };
  },
});

/** setTimeout that rejects with `signal.reason` the moment the signal aborts, clearing its timer. */
export function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Settles like `p`, or rejects with `signal.reason` as soon as the signal aborts. */
export function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
