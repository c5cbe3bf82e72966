import { emptyHistogram, mutableCopy, quantile, recordDuration, type DurationHistogram, type MutableHistogram } from './durationHistogram.js';
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

/** A private, mutable copy of a state: a batch folds into one draft instead of copying per event. */
interface Draft {
  analyzers: Record<string, { counts: Record<JobStatus, number>; runTime: MutableHistogram }>;
  completedByMinute: Record<string, number>;
  /** Newest minute in completedByMinute (or -Infinity). */
  maxMinute: number;
}

function draftOf(s: DashboardState): Draft {
  const analyzers: Draft['analyzers'] = {};
  for (const [name, a] of Object.entries(s.analyzers)) {
    analyzers[name] = { counts: { ...a.counts }, runTime: mutableCopy(a.runTime) };
  }
  let maxMinute = -Infinity;
  for (const k of Object.keys(s.completedByMinute)) maxMinute = Math.max(maxMinute, Number(k));
  return { analyzers, completedByMinute: { ...s.completedByMinute }, maxMinute };
}

const stateOf = (d: Draft): DashboardState => ({ analyzers: d.analyzers, completedByMinute: d.completedByMinute });

function analyzerOf(d: Draft, name: string): Draft['analyzers'][string] {
  let a = d.analyzers[name];
  if (a === undefined) {
    a = { counts: zeroCounts(), runTime: mutableCopy(emptyHistogram()) };
    d.analyzers[name] = a;
  }
  return a;
}

function addRunTime(a: Draft['analyzers'][string], startedAt: number | null, finishedAt: number | null): void {
  if (startedAt !== null && finishedAt !== null) recordDuration(a.runTime, finishedAt - startedAt);
}

/**
 * Adds a completion to the minute buckets, keeping the minutes in (max − THROUGHPUT_MINUTES, max]
 * where max is the newest minute seen (this one included). Order-independent: a minute dropped
 * here is also outside the window of the final (larger or equal) max.
 */
function addCompletion(d: Draft, finishedAt: number | null): void {
  if (finishedAt === null) return;
  const minute = Math.floor(finishedAt / 60_000);
  if (minute > d.maxMinute) {
    d.maxMinute = minute;
    for (const k of Object.keys(d.completedByMinute)) if (Number(k) <= minute - THROUGHPUT_MINUTES) delete d.completedByMinute[k];
  } else if (minute <= d.maxMinute - THROUGHPUT_MINUTES) {
    return;
  }
  const key = String(minute);
  d.completedByMinute[key] = (d.completedByMinute[key] ?? 0) + 1;
}

function foldEvent(d: Draft, e: ProjectionEvent): void {
  const change = e.orphan ? null : statusChange(e);
  if (change === null) return;
  const a = analyzerOf(d, e.analyzer);
  if (change.from !== null) a.counts[change.from] -= 1;
  a.counts[change.to] += 1;
  if (change.to === 'completed') {
    addRunTime(a, e.startedAt, e.finishedAt);
    addCompletion(d, e.finishedAt);
  }
}

function foldJob(d: Draft, job: JobFacts): void {
  const a = analyzerOf(d, job.analyzer);
  a.counts[job.status] += 1;
  if (job.status === 'completed') {
    addRunTime(a, job.startedAt, job.finishedAt);
    addCompletion(d, job.finishedAt);
  }
}

/** The fold: one event of the state's org (orphans — see ProjectionEvent — change nothing). Pure. */
export function applyDashboardEvent(state: DashboardState, e: ProjectionEvent): DashboardState {
  const d = draftOf(state);
  foldEvent(d, e);
  return stateOf(d);
}

/** The same fold over many events of one org, copying the state once (what runners use). Pure. */
export function applyDashboardEvents(state: DashboardState, events: readonly ProjectionEvent[]): DashboardState {
  const d = draftOf(state);
  for (const e of events) foldEvent(d, e);
  return stateOf(d);
}

/** A job counted from its row (seed jobs of a rebuild; the source-table computation). Pure. */
export function applyDashboardJob(state: DashboardState, job: JobFacts): DashboardState {
  const d = draftOf(state);
  foldJob(d, job);
  return stateOf(d);
}

/** Many job rows at once, copying the state once. Pure. */
export function applyDashboardJobs(state: DashboardState, jobs: readonly JobFacts[]): DashboardState {
  const d = draftOf(state);
  for (const j of jobs) foldJob(d, j);
  return stateOf(d);
}

export const dashboardProjection: Projection<DashboardState> = {
  name: 'dashboard_stats',
  initial: emptyDashboard,
  apply: applyDashboardEvent,
  applyAll: applyDashboardEvents,
  seed: (s: DashboardState, job: SeedJob) => applyDashboardJob(s, job),
  seedAll: (s: DashboardState, jobs: readonly SeedJob[]) => applyDashboardJobs(s, jobs),
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
