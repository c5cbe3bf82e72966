import { describe, expect, it } from 'vitest';
import { newJobId, newResultId, parseJobId, parseResultId } from '../../src/core/ids.js';

describe('ids', () => {
  it('job and result ids are valid, sort by their creation time and stay unique within a millisecond', () => {
    const t = Date.UTC(2026, 11, 1);
    for (const [make, parse] of [
      [newJobId, parseJobId],
      [newResultId, parseResultId],
    ] as const) {
      const early = make(t);
      const later = make(t + 1);
      expect(parse(early)).toBe(early);
      expect(early < later).toBe(true);
      // A year apart, far apart: the prefix is the time, not a counter.
      expect(make(t - 365 * 86_400_000) < early).toBe(true);
      const same = new Set(Array.from({ length: 1000 }, () => make(t)));
      expect(same.size).toBe(1000);
    }
  });
});
