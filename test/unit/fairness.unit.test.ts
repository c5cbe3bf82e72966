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
});
