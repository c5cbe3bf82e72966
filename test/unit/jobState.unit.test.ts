import { describe, expect, it } from 'vitest';
import { isUpshiftError } from '../../src/core/errors.js';
import {
  JOB_STATUSES,
  TERMINAL_STATUSES,
  assertTransition,
  canTransition,
  isJobStatus,
  isTerminal,
  type JobStatus,
  type TransitionReason,
} from '../../src/core/jobState.js';

type From = JobStatus | 'new';

const FROMS: readonly From[] = ['new', ...JOB_STATUSES];
const REASONS: readonly TransitionReason[] = [
  'submit',
  'claim',
  'cancel_before_start',
  'analyzer_returned',
  'analyzer_failed',
  'attempts_exhausted',
  'retry',
  'lease_expired',
  'cancel_observed',
  'cancel_forced',
];

/** SPEC §2.1, written out independently of the table under test. */
const EXPECTED: Readonly<Record<string, readonly TransitionReason[]>> = {
  'new->queued': ['submit'],
  'queued->running': ['claim'],
  'queued->canceled': ['cancel_before_start'],
  'running->completed': ['analyzer_returned'],
  'running->failed': ['analyzer_failed', 'attempts_exhausted', 'lease_expired'],
  'running->queued': ['retry', 'lease_expired'],
  'running->canceled': ['cancel_observed', 'cancel_forced', 'lease_expired'],
};

const pairs = FROMS.flatMap((from) => JOB_STATUSES.map((to) => ({ from, to, allowed: EXPECTED[`${from}->${to}`] ?? [] })));

function thrownBy(fn: () => void): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('job state machine', () => {
  it('covers all 30 from×to pairs', () => {
    expect(pairs).toHaveLength(6 * 5);
  });

  describe.each(pairs.filter((p) => p.allowed.length > 0))('allowed $from -> $to', ({ from, to, allowed }) => {
    it('is allowed without a reason and with each of its reasons', () => {
      expect(canTransition(from, to)).toBe(true);
      expect(() => assertTransition(from, to)).not.toThrow();
      for (const reason of allowed) {
        expect(canTransition(from, to, reason)).toBe(true);
        expect(() => assertTransition(from, to, reason)).not.toThrow();
      }
    });

    it('rejects every other reason with JOB_INVALID_TRANSITION', () => {
      for (const reason of REASONS.filter((r) => !allowed.includes(r))) {
        expect(canTransition(from, to, reason)).toBe(false);
        const err = thrownBy(() => assertTransition(from, to, reason));
        expect(isUpshiftError(err, 'JOB_INVALID_TRANSITION')).toBe(true);
      }
    });
  });

  describe.each(pairs.filter((p) => p.allowed.length === 0))('forbidden $from -> $to', ({ from, to }) => {
    it('is rejected for no reason and for every reason, with details', () => {
      expect(canTransition(from, to)).toBe(false);
      const err = thrownBy(() => assertTransition(from, to));
      expect(isUpshiftError(err, 'JOB_INVALID_TRANSITION')).toBe(true);
      expect((err as { details?: unknown }).details).toEqual({ from, to, reason: undefined });
      for (const reason of REASONS) {
        expect(canTransition(from, to, reason)).toBe(false);
        expect(isUpshiftError(thrownBy(() => assertTransition(from, to, reason)), 'JOB_INVALID_TRANSITION')).toBe(true);
      }
    });
  });

  it('terminal states have no way out and nothing enters "new"', () => {
    for (const from of TERMINAL_STATUSES) for (const to of JOB_STATUSES) expect(canTransition(from, to)).toBe(false);
    for (const from of JOB_STATUSES) expect(canTransition(from, 'queued', 'submit')).toBe(false);
  });

  it('classifies statuses', () => {
    expect(JOB_STATUSES.filter(isTerminal)).toEqual(['completed', 'failed', 'canceled']);
    expect(JOB_STATUSES.every(isJobStatus)).toBe(true);
    for (const bad of ['new', 'QUEUED', '', null, 1, undefined]) expect(isJobStatus(bad)).toBe(false);
  });
});
