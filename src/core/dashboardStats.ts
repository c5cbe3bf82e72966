import { addDuration, emptyHistogram, quantile, type DurationHistogram } from './durationHistogram.js';
import { JOB_STATUSES, type JobStatus } from './jobState.js';
import type { JobFacts, Projection, ProjectionEvent, SeedJob } from './projection.js';

/**
 * The `dashboard_stats` read model (SPEC §5): per org, job counts by status (overall and per
 * analyzer), completions per minute over the last hour, and run-time percentiles per analyzer.
 *
 * Glossary:
 * - run time: `finished_at − started_at` of a completed job, i.e. of its final attempt (a
 *   retried job's earlier attempts are not included). Only completed jobs contribute.
 * - minute: `floor(finished_at / 60 000)`. The state keeps the THROUGHPUT_MINUTES minutes up to the
 *   newest completion it has seen; which minutes survive depends only on the set of
 *   completions, not on their order (see addCompletion).
 */

export type StatusCounts = Readonly<Record<JobStatus, number>>;

export interface AnalyzerStats {
  readonly counts: StatusCounts;
  /** Run times of completed jobs of this analyzer. */
  readonly runTime: DurationHistogram;
}

export interface DashboardState {
  readonly analyzers: Readonly<Record<string, AnalyzerStats>>;
  /** Epoch minute (as a string key) → completions in it. */
  readonly completedByMinute: Readonly<Record<string, number>>;
}

export const THROUGHPUT_MINUTES = 60;
/** The windows the API reports throughput for, in minutes. */
export const THROUGHPUT_WINDOWS = [1, 5, 15, 60] as const;

const zeroCounts = (): Record<JobStatus, number> => ({ queued: 0, running: 0, completed: 0, failed: 0, canceled: 0 });

export const emptyDashboard = (): DashboardState => ({ analyzers: {}, completedByMinute: {} });

/**
 * Which status count an event moves (from → to), derived from its type: the transition table
 * (core/jobState.ts) allows exactly one `from` per event type, except `job.canceled`, which comes
 * from `queued` only for the reason `cancel_before_start`. Progress, partial and cancel-request
 * events change no status.
 */
export function statusChange(e: Pick<ProjectionEvent, 'type' | 'cancelReason'>): { from: JobStatus | null; to: JobStatus } | null {
  switch (e.type) {
    case 'job.queued':
      return { from: null, to: 'queued' };
    case 'job.started':
      return { from: 'queued', to: 'running' };
    case 'job.retrying':
      return { from: 'running', to: 'queued' };
    case 'job.completed':
      return { from: 'running', to: 'completed' };
    case 'job.failed':
      return { from: 'running', to: 'failed' };
    case 'job.canceled':
      return { from: e.cancelReason === 'cancel_before_start' ? 'queued' : 'running', to: 'canceled' };
    default:
      return null;
  }
}

function withCounts(state: DashboardState, analyzer: string, change: (c: Record<JobStatus, number>) => void): DashboardState['analyzers'] {
  const prev = state.analyzers[analyzer];
  const counts = { ...(prev?.counts ?? zeroCounts()) };
  change(counts);
  return { ...state.analyzers, [analyzer]: { counts, runTime: prev?.runTime ?? emptyHistogram() } };
}

function addRunTime(analyzers: DashboardState['analyzers'], analyzer: string, startedAt: number | null, finishedAt: number | null): DashboardState['analyzers'] {
  const a = analyzers[analyzer];
  if (a === undefined || startedAt === null || finishedAt === null) return analyzers;
  return { ...analyzers, [analyzer]: { counts: a.counts, runTime: addDuration(a.runTime, finishedAt - startedAt) } };
}

/**
 * Adds a completion to the minute buckets, keeping the minutes in (max − THROUGHPUT_MINUTES, max]
 * where max is the newest minute seen (this one included). Order-independent: a minute dropped
 * here is also outside the window of the final (larger or equal) max.
 */
function addCompletion(byMinute: DashboardState['completedByMinute'], finishedAt: number | null): DashboardState['completedByMinute'] {
  if (finishedAt === null) return byMinute;
  const minute = Math.floor(finishedAt / 60_000);
  let max = minute;
  for (const k of Object.keys(byMinute)) max = Math.max(max, Number(k));
  if (minute <= max - THROUGHPUT_MINUTES) return byMinute;
  const out: Record<string, number> = {};
  for (const [k, n] of Object.entries(byMinute)) if (Number(k) > max - THROUGHPUT_MINUTES) out[k] = n;
  out[String(minute)] = (out[String(minute)] ?? 0) + 1;
  return out;
}

/** The fold: one event of the state's org (orphans — see ProjectionEvent — change nothing). */
export function applyDashboardEvent(state: DashboardState, e: ProjectionEvent): DashboardState {
  const change = e.orphan ? null : statusChange(e);
  if (change === null) return state;
  let analyzers = withCounts(state, e.analyzer, (c) => {
    if (change.from !== null) c[change.from] -= 1;
    c[change.to] += 1;
  });
  let completedByMinute = state.completedByMinute;
  if (change.to === 'completed') {
    analyzers = addRunTime(analyzers, e.analyzer, e.startedAt, e.finishedAt);
    completedByMinute = addCompletion(completedByMinute, e.finishedAt);
  }
  return { analyzers, completedByMinute };
}

/** A job counted from its row (seed jobs of a rebuild; the source-table computation). */
export function applyDashboardJob(state: DashboardState, job: JobFacts): DashboardState {
  let analyzers = withCounts(state, job.analyzer, (c) => {
    c[job.status] += 1;
  });
  let completedByMinute = state.completedByMinute;
  if (job.status === 'completed') {
    analyzers = addRunTime(analyzers, job.analyzer, job.startedAt, job.finishedAt);
    completedByMinute = addCompletion(completedByMinute, job.finishedAt);
  }
  return { analyzers, completedByMinute };
}

export const dashboardProjection: Projection<DashboardState> = {
  name: 'dashboard_stats',
  initial: emptyDashboard,
  apply: applyDashboardEvent,
  seed: (s: DashboardState, job: SeedJob) => applyDashboardJob(s, job),
  encode: (s) => JSON.stringify(s),
  decode: (text) => {
    const v = JSON.parse(text) as Partial<DashboardState>;
    return { analyzers: v.analyzers ?? {}, completedByMinute: v.completedByMinute ?? {} };
  },
};

/** Sorted, zero-free form: two states that describe the same stats have the same canonical text. */
export function canonicalDashboard(s: DashboardState): string {
  const analyzers: Record<string, unknown> = {};
  for (const name of Object.keys(s.analyzers).sort()) {
    const a = s.analyzers[name] as AnalyzerStats;
    const counts: Record<string, number> = {};
    for (const st of JOB_STATUSES) if (a.counts[st] !== 0) counts[st] = a.counts[st];
    const buckets: Record<string, number> = {};
    for (const k of Object.keys(a.runTime.buckets).sort((x, y) => Number(x) - Number(y))) buckets[k] = a.runTime.buckets[k] as number;
    if (Object.keys(counts).length === 0 && a.runTime.count === 0) continue;
    analyzers[name] = { counts, runTime: { count: a.runTime.count, buckets, min: a.runTime.minMs, max: a.runTime.maxMs } };
  }
  const minutes: Record<string, number> = {};
  for (const k of Object.keys(s.completedByMinute).sort()) minutes[k] = s.completedByMinute[k] as number;
  return JSON.stringify({ analyzers, minutes });
}

/** What differs between the projection's state and the state recomputed from the source, for humans. */
export function diffDashboard(expected: DashboardState, actual: DashboardState): string[] {
  const out: string[] = [];
  const names = new Set([...Object.keys(expected.analyzers), ...Object.keys(actual.analyzers)]);
  for (const name of [...names].sort()) {
    const e = expected.analyzers[name];
    const a = actual.analyzers[name];
    for (const st of JOB_STATUSES) {
      const ne = e?.counts[st] ?? 0;
      const na = a?.counts[st] ?? 0;
      if (ne !== na) out.push(`${name}: ${st} source ${ne}, projection ${na}`);
    }
    const he = e?.runTime ?? emptyHistogram();
    const ha = a?.runTime ?? emptyHistogram();
    if (he.count !== ha.count || JSON.stringify(sortKeys(he.buckets)) !== JSON.stringify(sortKeys(ha.buckets))) {
      out.push(`${name}: run-time histogram source n=${he.count}, projection n=${ha.count}${he.count === ha.count ? ' (different buckets)' : ''}`);
    }
  }
  if (JSON.stringify(sortKeys(expected.completedByMinute)) !== JSON.stringify(sortKeys(actual.completedByMinute))) {
    out.push('completions per minute differ');
  }
  return out;
}

const sortKeys = (r: Readonly<Record<string, number>>): [string, number][] => Object.entries(r).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));

export interface RunTimeSummary {
  readonly count: number;
  readonly p50Ms: number | null;
  readonly p95Ms: number | null;
  readonly minMs: number | null;
  readonly maxMs: number | null;
  readonly meanMs: number | null;
}

export interface DashboardView {
  readonly counts: StatusCounts & { readonly total: number };
  readonly throughput: readonly { readonly windowMinutes: number; readonly completed: number; readonly perMinute: number }[];
  readonly analyzers: readonly { readonly analyzer: string; readonly counts: StatusCounts; readonly runTime: RunTimeSummary }[];
}

/**
 * What the API shows. Throughput windows end at `now` and include the current (partial) minute:
 * window w counts completions whose minute is in (nowMinute − w, nowMinute], divided by w.
 */
export function dashboardView(s: DashboardState, now: number): DashboardView {
  const total = zeroCounts();
  const analyzers = Object.keys(s.analyzers)
    .sort()
    .map((name) => {
      const a = s.analyzers[name] as AnalyzerStats;
      for (const st of JOB_STATUSES) total[st] += a.counts[st];
      const h = a.runTime;
      return {
        analyzer: name,
        counts: { ...a.counts },
        runTime: {
          count: h.count,
          p50Ms: quantile(h, 0.5),
          p95Ms: quantile(h, 0.95),
          minMs: h.minMs,
          maxMs: h.maxMs,
          meanMs: h.count === 0 ? null : h.sumMs / h.count,
        },
      };
    });
  const nowMinute = Math.floor(now / 60_000);
  const throughput = THROUGHPUT_WINDOWS.map((w) => {
    let completed = 0;
    for (const [k, n] of Object.entries(s.completedByMinute)) {
      const m = Number(k);
      if (m > nowMinute - w && m <= nowMinute) completed += n;
    }
    return { windowMinutes: w, completed, perMinute: completed / w };
  });
  const sum = JOB_STATUSES.reduce((acc, st) => acc + total[st], 0);
  return { counts: { ...total, total: sum }, throughput, analyzers };
}
