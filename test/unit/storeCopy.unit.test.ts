import { describe, expect, it } from 'vitest';
import { differing, extra, RowRateLimiter } from '../../src/app/copyPlan.js';
import { canonicalJson, canonicalRow, copyTable, RowChecksum, type CopyRow } from '../../src/core/storeCopy.js';

const events = copyTable('job_events');
const ev = (seq: number, payload: string, position = seq): CopyRow => ({
  position,
  job_id: 'job_a',
  event_seq: seq,
  org_id: 'acme',
  type: 'job.partial',
  status: 'running',
  payload,
  occurred_at: 1_700_000_000_000 + seq,
});

describe('canonical row encoding', () => {
  it('is the same for JSON text as SQLite keeps it and as jsonb returns it', () => {
    // jsonb sorts keys by length, drops whitespace and reformats numbers.
    const sqlite = ev(1, '{"zeta": 1.50, "a": [ {"y":2,"x":1} ], "bb": null}');
    const jsonb = ev(1, '{"a": [{"x": 1, "y": 2}], "bb": null, "zeta": 1.5}');
    expect(canonicalRow(events, sqlite)).toBe(canonicalRow(events, jsonb));
    expect(canonicalJson({ b: 1, a: { d: [3, { f: 1, e: 2 }], c: 'x' } })).toBe('{"a":{"c":"x","d":[3,{"e":2,"f":1}]},"b":1}');
  });

  it('tells apart what the stores tell apart', () => {
    const base = canonicalRow(events, ev(1, '{"a":1}'));
    expect(canonicalRow(events, ev(1, '{"a":2}'))).not.toBe(base);
    expect(canonicalRow(events, ev(1, '{"a":1}', 99))).not.toBe(base); // position is kept, so it counts
    expect(canonicalRow(events, ev(1, '{"a":"1"}'))).not.toBe(base);
    const jobs = copyTable('jobs');
    // SQL NULL and JSON null in a json column are different values.
    expect(canonicalRow(jobs, { job_id: 'j', error: null })).not.toBe(canonicalRow(jobs, { job_id: 'j', error: 'null' }));
    // A string that looks like a number is not the number.
    expect(canonicalRow(jobs, { job_id: 'j', attempt: 1 })).not.toBe(canonicalRow(jobs, { job_id: 'j', attempt: '1' }));
  });
});

describe('RowChecksum', () => {
  it('does not depend on row order, and duplicates do not cancel out', () => {
    const rows = [ev(1, '{}'), ev(2, '{"a":1}'), ev(3, '[1,2]')];
    const a = new RowChecksum();
    const b = new RowChecksum();
    for (const r of rows) a.add(events, r);
    for (const r of [...rows].reverse()) b.add(events, r);
    expect(a.hex).toBe(b.hex);
    expect(a.count).toBe(3);
    expect(a.hex).toMatch(/^[0-9a-f]{32}$/);
    const twice = new RowChecksum();
    twice.add(events, ev(1, '{}'));
    twice.add(events, ev(1, '{}'));
    expect(twice.hex).not.toBe(new RowChecksum().hex);
  });

  it('changes when one row changes', () => {
    const a = new RowChecksum();
    const b = new RowChecksum();
    a.add(events, ev(1, '{"a":1}'));
    b.add(events, ev(1, '{"a":1.0001}'));
    expect(a.hex).not.toBe(b.hex);
  });
});

describe('diffs', () => {
  it('keeps source rows missing in the target or different there', () => {
    const src = [ev(1, '{}'), ev(2, '{"a":1}'), ev(3, '{}')];
    const tgt = [ev(1, '{ }'), ev(2, '{"a":2}')];
    expect(differing(events, src, tgt).map((r) => r.event_seq)).toEqual([2, 3]);
  });

  it('lists target keys the source no longer has', () => {
    const endpoints = copyTable('webhook_endpoints');
    const row = (id: string): CopyRow => ({ endpoint_id: id, org_id: 'acme' });
    expect(extra(endpoints, [row('we_1')], [row('we_1'), row('we_2')])).toEqual([['we_2']]);
  });
});

describe('RowRateLimiter', () => {
  it('waits until the average rate is back under the limit; 0 never waits', async () => {
    let now = 0;
    const waits: number[] = [];
    const sleep = async (ms: number): Promise<void> => {
      waits.push(ms);
      now += ms;
    };
    const limiter = new RowRateLimiter(1000, () => now, sleep);
    await limiter.take(500); // due at 500 ms
    now += 100;
    await limiter.take(500); // due at 1000 ms
    expect(waits).toEqual([500, 400]);
    const free = new RowRateLimiter(0, () => now, sleep);
    await free.take(1e9);
    expect(waits).toHaveLength(2);
  });
});
