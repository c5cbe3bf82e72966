import { describe, expect, it } from 'vitest';
import {
  applyDashboardEvent,
  applyDashboardJob,
  canonicalDashboard,
  dashboardProjection,
  dashboardView,
  diffDashboard,
  emptyDashboard,
  statusChange,
  THROUGHPUT_MINUTES,
  type DashboardState,
} from '../../src/core/dashboardStats.js';
import { addDuration, bucketOf, bucketUpperBound, emptyHistogram, quantile } from '../../src/core/durationHistogram.js';
import type { JobEventType } from '../../src/core/events.js';
import { asJobId, asOrgId } from '../../src/core/ids.js';
import type { JobStatus } from '../../src/core/jobState.js';
import { TRANSITIONS } from '../../src/core/jobState.js';
import type { JobFacts, ProjectionEvent } from '../../src/core/projection.js';

const ORG = asOrgId('org-a');
const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 1, 12);
let pos = 0;

function ev(type: JobEventType, job: string, extra: Partial<ProjectionEvent> = {}): ProjectionEvent {
  return {
    position: ++pos,
    orgId: ORG,
    jobId: asJobId(job),
    eventSeq: 1,
    type,
    occurredAt: T0,
    analyzer: 'noop',
    startedAt: null,
    finishedAt: null,
    cancelReason: null,
    orphan: false,
    ...extra,
  };
}

const fold = (events: ProjectionEvent[], s: DashboardState = emptyDashboard()): DashboardState => events.reduce(applyDashboardEvent, s);
const counts = (s: DashboardState, analyzer = 'noop') => s.analyzers[analyzer]?.counts;

describe('durationHistogram', () => {
  it('puts a value in the bucket whose upper bound is the first at or above it, at most ~9 % above', () => {
    for (const v of [1, 1.5, 2, 10, 99.9, 1000, 12_345, 86_400_000]) {
      const i = bucketOf(v);
      expect(bucketUpperBound(i)).toBeGreaterThanOrEqual(v * (1 - 1e-9));
      expect(bucketUpperBound(i)).toBeLessThanOrEqual(v * 2 ** (1 / 8) * (1 + 1e-9));
      if (i > 1) expect(bucketUpperBound(i - 1)).toBeLessThan(v);
    }
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(0.4)).toBe(0);
  });

  it('p50/p95 are within one bucket above the exact order statistic', () => {
    let h = emptyHistogram();
    const values: number[] = [];
    for (let i = 1; i <= 1000; i++) {
      const v = (i * 37) % 1000 + 5; // 5 … 1004, shuffled
      values.push(v);
      h = addDuration(h, v);
    }
    values.sort((a, b) => a - b);
    for (const q of [0.5, 0.95]) {
      const exact = values[Math.ceil(q * values.length) - 1] as number;
      const est = quantile(h, q) as number;
      expect(est).toBeGreaterThanOrEqual(exact);
      expect(est).toBeLessThanOrEqual(exact * 2 ** (1 / 8) * (1 + 1e-9));
    }
    expect(h.count).toBe(1000);
    expect(h.minMs).toBe(5);
    expect(h.maxMs).toBe(1004);
  });

  it('is exact for constant values and empty for no values; negative durations count as 0', () => {
    let h = emptyHistogram();
    for (let i = 0; i < 10; i++) h = addDuration(h, 250);
    expect(quantile(h, 0.5)).toBe(250);
    expect(quantile(h, 0.95)).toBe(250);
    expect(quantile(emptyHistogram(), 0.5)).toBeNull();
    expect(quantile(addDuration(emptyHistogram(), -5), 0.5)).toBe(0);
  });
});

describe('dashboard_stats fold', () => {
  it('derives each event type’s status change from the transition table', () => {
    const allowed = (from: JobStatus | null, to: JobStatus) => TRANSITIONS.some((t) => t.from === (from ?? 'new') && t.to === to);
    for (const type of ['job.queued', 'job.started', 'job.retrying', 'job.completed', 'job.failed', 'job.canceled'] as const) {
      for (const reason of [null, 'cancel_before_start', 'cancel_observed']) {
        const c = statusChange({ type, cancelReason: reason });
        expect(c).not.toBeNull();
        expect(allowed(c!.from, c!.to)).toBe(true);
      }
    }
    for (const type of ['job.progress', 'job.partial', 'job.cancel_requested'] as const) expect(statusChange({ type, cancelReason: null })).toBeNull();
  });

  it('counts jobs by their current status through the whole lifecycle', () => {
    const s = fold([
      ev('job.queued', 'j1'),
      ev('job.queued', 'j2'),
      ev('job.queued', 'j3'),
      ev('job.queued', 'j4'),
      ev('job.started', 'j1', { eventSeq: 2 }),
      ev('job.progress', 'j1', { eventSeq: 3 }),
      ev('job.completed', 'j1', { eventSeq: 4, startedAt: T0, finishedAt: T0 + 120 }),
      ev('job.started', 'j2', { eventSeq: 2 }),
      ev('job.retrying', 'j2', { eventSeq: 3 }),
      ev('job.started', 'j2', { eventSeq: 4 }),
      ev('job.failed', 'j2', { eventSeq: 5, startedAt: T0, finishedAt: T0 + 50 }),
      ev('job.canceled', 'j3', { eventSeq: 2, cancelReason: 'cancel_before_start' }),
      ev('job.started', 'j4', { eventSeq: 2 }),
      ev('job.cancel_requested', 'j4', { eventSeq: 3 }),
    ]);
    expect(counts(s)).toEqual({ queued: 0, running: 1, completed: 1, failed: 1, canceled: 1 });
    // Only completed jobs contribute run times.
    expect(s.analyzers.noop?.runTime.count).toBe(1);
    expect(s.analyzers.noop?.runTime.sumMs).toBe(120);
    const s2 = fold([ev('job.canceled', 'j4', { eventSeq: 4, cancelReason: 'cancel_observed', startedAt: T0, finishedAt: T0 + 9 })], s);
    expect(counts(s2)).toEqual({ queued: 0, running: 0, completed: 1, failed: 1, canceled: 2 });
  });

  it('skips orphan events (a log retention is deleting) and counts a seed job from its row instead', () => {
    const s = fold([ev('job.completed', 'j1', { eventSeq: 4, orphan: true, startedAt: T0, finishedAt: T0 + 5 })]);
    expect(s).toEqual(emptyDashboard());
    const seeded = dashboardProjection.seed(s, { orgId: ORG, jobId: asJobId('j1'), analyzer: 'noop', status: 'completed', startedAt: T0, finishedAt: T0 + 5 });
    expect(counts(seeded)).toEqual({ queued: 0, running: 0, completed: 1, failed: 0, canceled: 0 });
  });

  it('the events of a job and its final row give the same state (what verify compares)', () => {
    const fromEvents = fold([
      ev('job.queued', 'j1', { analyzer: 'sleep' }),
      ev('job.started', 'j1', { eventSeq: 2, analyzer: 'sleep' }),
      ev('job.completed', 'j1', { eventSeq: 3, analyzer: 'sleep', startedAt: T0 + 10, finishedAt: T0 + 1000 }),
    ]);
    const row: JobFacts = { orgId: ORG, jobId: asJobId('j1'), analyzer: 'sleep', status: 'completed', startedAt: T0 + 10, finishedAt: T0 + 1000 };
    expect(canonicalDashboard(applyDashboardJob(emptyDashboard(), row))).toBe(canonicalDashboard(fromEvents));
  });

  it('keeps the last hour of completions whatever their order', () => {
    const rows: JobFacts[] = [];
    for (let m = 0; m < 90; m++) rows.push({ orgId: ORG, jobId: asJobId(`j${m}`), analyzer: 'noop', status: 'completed', startedAt: T0 + m * MIN, finishedAt: T0 + m * MIN + 1 });
    const forward = rows.reduce(applyDashboardJob, emptyDashboard());
    const backward = [...rows].reverse().reduce(applyDashboardJob, emptyDashboard());
    const shuffled = [...rows].sort((a, b) => ((a.finishedAt! * 7919) % 97) - ((b.finishedAt! * 7919) % 97)).reduce(applyDashboardJob, emptyDashboard());
    expect(canonicalDashboard(backward)).toBe(canonicalDashboard(forward));
    expect(canonicalDashboard(shuffled)).toBe(canonicalDashboard(forward));
    expect(Object.keys(forward.completedByMinute)).toHaveLength(THROUGHPUT_MINUTES);
    // Counts are not windowed: every completion stays counted.
    expect(forward.analyzers.noop?.counts.completed).toBe(90);
  });

  it('reports throughput per window ending now, totals and percentiles', () => {
    let s = emptyDashboard();
    const now = T0 + 30 * MIN + 30_000;
    for (let i = 0; i < 10; i++) s = applyDashboardJob(s, { orgId: ORG, jobId: asJobId(`a${i}`), analyzer: 'noop', status: 'completed', startedAt: now - 1000, finishedAt: now - 1000 + 100 * (i + 1) - 1000 });
    for (let i = 0; i < 4; i++) s = applyDashboardJob(s, { orgId: ORG, jobId: asJobId(`b${i}`), analyzer: 'noop', status: 'completed', startedAt: T0, finishedAt: T0 + 10 * MIN });
    s = applyDashboardJob(s, { orgId: ORG, jobId: asJobId('q'), analyzer: 'sleep', status: 'queued', startedAt: null, finishedAt: null });
    const v = dashboardView(s, now);
    expect(v.counts).toEqual({ queued: 1, running: 0, completed: 14, failed: 0, canceled: 0, total: 15 });
    const w = Object.fromEntries(v.throughput.map((t) => [t.windowMinutes, t.completed]));
    expect(w).toEqual({ 1: 10, 5: 10, 15: 10, 60: 14 });
    expect(v.throughput.find((t) => t.windowMinutes === 60)?.perMinute).toBeCloseTo(14 / 60);
    expect(v.analyzers.map((a) => a.analyzer)).toEqual(['noop', 'sleep']);
    expect(v.analyzers[1]?.runTime.p50Ms).toBeNull();
  });

  it('folding a batch at once equals folding event by event, and leaves the input state unchanged', () => {
    const events: ProjectionEvent[] = [];
    for (let i = 0; i < 200; i++) {
      const job = `b${i}`;
      const analyzer = i % 3 === 0 ? 'sleep' : 'noop';
      events.push(ev('job.queued', job, { analyzer }), ev('job.started', job, { eventSeq: 2, analyzer }));
      if (i % 4 !== 3) events.push(ev('job.completed', job, { eventSeq: 3, analyzer, startedAt: T0 + i * 1000, finishedAt: T0 + i * 1000 + (i % 17) * 13 }));
    }
    const base = fold(events.slice(0, 30));
    const before = canonicalDashboard(base);
    const oneByOne = fold(events.slice(30), base);
    const batch = dashboardProjection.applyAll(base, events.slice(30));
    expect(canonicalDashboard(batch)).toBe(canonicalDashboard(oneByOne));
    expect(canonicalDashboard(base)).toBe(before);
  });

  it('diff names what differs; canonical form ignores key order and zero counts', () => {
    const a = fold([ev('job.queued', 'x1'), ev('job.started', 'x1', { eventSeq: 2 })]);
    const b = fold([ev('job.queued', 'x1')]);
    expect(diffDashboard(a, b)).toEqual(['noop: queued source 0, projection 1', 'noop: running source 1, projection 0']);
    expect(diffDashboard(a, a)).toEqual([]);
    expect(canonicalDashboard(dashboardProjection.decode(dashboardProjection.encode(a)))).toBe(canonicalDashboard(a));
  });
});
