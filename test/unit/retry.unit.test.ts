import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/core/retry.js';

describe('backoffDelay', () => {
  const policy = { baseMs: 1000, maxMs: 10_000, jitter: 0.5 };
  it('grows exponentially per failure with the jitter band', () => {
    expect(backoffDelay(2, policy, () => 0)).toBe(500);
    expect(backoffDelay(2, policy, () => 1)).toBe(1000);
    expect(backoffDelay(3, policy, () => 1)).toBe(2000);
    expect(backoffDelay(4, policy, () => 0)).toBe(2000);
  });
  it('caps at maxMs', () => {
    expect(backoffDelay(30, policy, () => 1)).toBe(10_000);
  });
  it('without jitter is deterministic', () => {
    expect(backoffDelay(3, { ...policy, jitter: 0 }, () => 0.7)).toBe(2000);
  });
});
