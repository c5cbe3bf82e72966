import { describe, expect, it } from 'vitest';
import { DeficitRoundRobin } from '../../src/core/fairness.js';

const total = (plan: { limit: number }[]) => plan.reduce((s, p) => s + p.limit, 0);

describe('DeficitRoundRobin', () => {
  it('splits capacity evenly between equal-weight orgs regardless of backlog', () => {
    const drr = new DeficitRoundRobin();
    const plan = drr.plan([{ orgId: 'big', running: 0 }, { orgId: 'small', running: 0 }], 10);
    expect(total(plan)).toBe(10);
    expect(plan.find((p) => p.orgId === 'big')?.limit).toBe(5);
    expect(plan.find((p) => p.orgId === 'small')?.limit).toBe(5);
  });

  it('gives a newly ready org a claim in the very next plan even with capacity 1', () => {
    const drr = new DeficitRoundRobin();
    for (let i = 0; i < 5; i++) expect(drr.plan([{ orgId: 'big', running: 0 }], 1)).toEqual([{ orgId: 'big', limit: 1 }]);
    const seen = new Set<string>();
    for (let i = 0; i < 2; i++) for (const p of drr.plan([{ orgId: 'big', running: 0 }, { orgId: 'new', running: 0 }], 1)) seen.add(p.orgId);
    expect(seen.has('new')).toBe(true);
  });

  it('honours weights over many rounds', () => {
    const drr = new DeficitRoundRobin({ defaultWeight: 1, weights: { gold: 3 }, defaultMaxRunning: 0, maxRunning: {} });
    const got: Record<string, number> = { gold: 0, basic: 0 };
    for (let i = 0; i < 100; i++) {
      for (const p of drr.plan([{ orgId: 'gold', running: 0 }, { orgId: 'basic', running: 0 }], 4)) got[p.orgId] = (got[p.orgId] ?? 0) + p.limit;
    }
    expect(got.gold).toBe(300);
    expect(got.basic).toBe(100);
  });

  it('never plans past a per-org running cap and hands the rest to others', () => {
    const drr = new DeficitRoundRobin({ defaultWeight: 1, weights: {}, defaultMaxRunning: 0, maxRunning: { capped: 2 } });
    const plan = drr.plan([{ orgId: 'capped', running: 1 }, { orgId: 'free', running: 0 }], 10);
    expect(plan.find((p) => p.orgId === 'capped')?.limit).toBe(1);
    expect(plan.find((p) => p.orgId === 'free')?.limit).toBe(9);
    expect(drr.plan([{ orgId: 'capped', running: 2 }], 10)).toEqual([]);
  });

  it('supports fractional weights without looping forever', () => {
    const drr = new DeficitRoundRobin({ defaultWeight: 0.25, weights: {}, defaultMaxRunning: 0, maxRunning: {} });
    expect(total(drr.plan([{ orgId: 'a', running: 0 }], 3))).toBe(3);
  });

  it('drops the credit of an org that ran dry', () => {
    const drr = new DeficitRoundRobin({ defaultWeight: 1, weights: { a: 0.5 }, defaultMaxRunning: 0, maxRunning: {} });
    drr.plan([{ orgId: 'a', running: 0 }], 1);
    drr.settle('a', 1, 0);
    expect(drr.plan([], 5)).toEqual([]);
  });
  it('plans a single ready org exactly as the general rounds do (same limits, same credit carried over)', () => {
    // Alone, an org always gets min(room, capacity); the credit it keeps matters once it shares.
    // The general path, forced: a second org that can never take a job (at its cap) leaves the
    // first org's rounds exactly as if it were alone.
    let seed = 42;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (const weight of [0.3, 0.5, 1, 1.5, 2, 3]) {
      for (const cap of [0, 1, 7, 20]) {
        const policy = { defaultWeight: 1, weights: { a: weight }, defaultMaxRunning: 0, maxRunning: { a: cap, full: 1 } };
        const alone = new DeficitRoundRobin(policy);
        const general = new DeficitRoundRobin(policy);
        for (let step = 0; step < 200; step++) {
          const capacity = 1 + rnd(60);
          const running = rnd(cap + 3);
          const one = alone.plan([{ orgId: 'a', running }], capacity);
          const both = general.plan([{ orgId: 'a', running }, { orgId: 'full', running: 1 }], capacity);
          expect(one).toEqual(both);
          // The credit carried over shows in a later plan shared with another org.
          if (rnd(5) === 0) {
            const shared = [{ orgId: 'a', running }, { orgId: 'b', running: 0 }];
            expect(alone.plan(shared, capacity)).toEqual(general.plan(shared, capacity));
          }
          const planned = one[0]?.limit ?? 0;
          if (planned > 0 && rnd(4) === 0) {
            const claimed = rnd(planned + 1);
            alone.settle('a', planned, claimed);
            general.settle('a', planned, claimed);
          }
        }
      }
    }
  });
});
