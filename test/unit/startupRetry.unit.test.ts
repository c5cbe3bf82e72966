import { describe, expect, it } from 'vitest';
import { retryWhileUnavailable } from '../../src/app/startupRetry.js';
import { UpshiftError } from '../../src/core/errors.js';

/** A fake clock that advances only when the retry loop sleeps. */
function fakeTime() {
  let t = 0;
  const waits: number[] = [];
  return { now: () => t, sleep: async (ms: number) => void (waits.push(ms), (t += ms)), waits };
}

describe('retryWhileUnavailable', () => {
  it('retries STORE_UNAVAILABLE with growing pauses until the step succeeds', async () => {
    const time = fakeTime();
    let calls = 0;
    const retries: number[] = [];
    const out = await retryWhileUnavailable(
      async () => {
        if (++calls < 5) throw new UpshiftError('STORE_UNAVAILABLE', 'connect ECONNREFUSED');
        return 'up';
      },
      { timeoutMs: 30_000, ...time, onRetry: (_e, attempt) => retries.push(attempt) },
    );
    expect(out).toBe('up');
    expect(calls).toBe(5);
    expect(time.waits).toEqual([250, 500, 1000, 2000]);
    expect(retries).toEqual([1, 2, 3, 4]);
  });

  it('gives up with the last error once the timeout has passed', async () => {
    const time = fakeTime();
    let calls = 0;
    const p = retryWhileUnavailable(
      async () => {
        calls++;
        throw new UpshiftError('QUEUE_UNAVAILABLE', `down ${calls}`);
      },
      { timeoutMs: 3_000, ...time },
    );
    await expect(p).rejects.toMatchObject({ code: 'QUEUE_UNAVAILABLE' });
    // 250 + 500 + 1000 + 1250 (capped by what is left) = 3000.
    expect(time.waits).toEqual([250, 500, 1000, 1250]);
    expect(calls).toBe(5);
  });

  it('never retries other errors, and timeout 0 means fail at once', async () => {
    const time = fakeTime();
    await expect(retryWhileUnavailable(async () => Promise.reject(new UpshiftError('STORE_SCHEMA_TOO_NEW')), { timeoutMs: 30_000, ...time })).rejects.toMatchObject({ code: 'STORE_SCHEMA_TOO_NEW' });
    await expect(retryWhileUnavailable(async () => Promise.reject(new Error('boom')), { timeoutMs: 30_000, ...time })).rejects.toThrow('boom');
    await expect(retryWhileUnavailable(async () => Promise.reject(new UpshiftError('STORE_UNAVAILABLE')), { timeoutMs: 0, ...time })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(time.waits).toEqual([]);
  });
});
