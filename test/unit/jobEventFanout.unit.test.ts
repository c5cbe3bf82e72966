import { describe, expect, it } from 'vitest';
import { JobEventFanout } from '../../src/app/jobEventFanout.js';
import type { JobEvent } from '../../src/core/events.js';
import { asJobId, asOrgId, type JobId } from '../../src/core/ids.js';
import type { EventFeed } from '../../src/ports/eventFeed.js';

/** A feed that publishes what the test hands it, counting its subscribers. */
function manualFeed() {
  const listeners = new Set<(events: readonly JobEvent[]) => void>();
  const feed: EventFeed = {
    subscribe(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    close: () => Promise.resolve(),
  };
  return { feed, listeners, publish: (events: JobEvent[]) => [...listeners].forEach((l) => l(events)) };
}

const ev = (jobId: JobId, eventSeq: number): JobEvent => ({
  jobId,
  orgId: asOrgId('acme'),
  eventSeq,
  type: 'job.progress',
  status: 'running',
  payload: {},
  occurredAt: 0,
  position: eventSeq,
});

describe('JobEventFanout', () => {
  const a = asJobId('job_a');
  const b = asJobId('job_b');

  it('routes each event to the followers of its job only, in feed order', () => {
    const { feed, publish } = manualFeed();
    const fanout = new JobEventFanout(feed);
    const gotA: number[] = [];
    const gotA2: number[] = [];
    const gotB: number[] = [];
    fanout.follow(a, (e) => gotA.push(e.eventSeq));
    fanout.follow(a, (e) => gotA2.push(e.eventSeq));
    fanout.follow(b, (e) => gotB.push(e.eventSeq));
    publish([ev(a, 1), ev(b, 1), ev(a, 2), ev(asJobId('job_c'), 1)]);
    expect(gotA).toEqual([1, 2]);
    expect(gotA2).toEqual([1, 2]);
    expect(gotB).toEqual([1]);
  });

  it('holds one feed subscription while anyone follows, none after the last leaves', () => {
    const { feed, listeners, publish } = manualFeed();
    const fanout = new JobEventFanout(feed);
    expect(listeners.size).toBe(0);
    const got: number[] = [];
    const offA = fanout.follow(a, (e) => got.push(e.eventSeq));
    const offB = fanout.follow(b, () => undefined);
    expect(listeners.size).toBe(1);
    offA();
    offA(); // idempotent
    expect(fanout.size).toBe(1);
    publish([ev(a, 1)]);
    expect(got).toEqual([]);
    offB();
    expect(fanout.size).toBe(0);
    expect(listeners.size).toBe(0);
    fanout.follow(a, (e) => got.push(e.eventSeq));
    expect(listeners.size).toBe(1);
    publish([ev(a, 3)]);
    expect(got).toEqual([3]);
  });

  it('a throwing follower does not stop the others', () => {
    const { feed, publish } = manualFeed();
    const errors: unknown[] = [];
    const fanout = new JobEventFanout(feed, (e) => errors.push(e));
    const got: number[] = [];
    fanout.follow(a, () => {
      throw new Error('boom');
    });
    fanout.follow(a, (e) => got.push(e.eventSeq));
    publish([ev(a, 1)]);
    expect(got).toEqual([1]);
    expect(errors).toHaveLength(1);
  });
});
