import { UpshiftError } from '../core/errors.js';
import { classifyForRetention, RETENTION_KINDS, retentionCutoff, type RetentionKind, type RetentionKindReport, type RetentionReport } from '../core/retention.js';
import type { Clock } from '../ports/clock.js';
import type { JobKey, RetentionStore, TerminalJobStats } from '../ports/retentionStore.js';

export interface RetentionOptions {
  /** The instant the TTLs are counted back from (epoch ms). */
  readonly now: number;
  /** Results (partials and final) of jobs finished at least this long ago are deleted. */
  readonly resultsTtlMs: number;
  /** Event logs of jobs finished at least this long ago are deleted. */
  readonly eventsTtlMs: number;
  /**
   * In-app notifications and settled outbox entries (the webhook delivery log) of jobs finished
   * at least this long ago are deleted. Absent or null: kept (counted only).
   */
  readonly notificationsTtlMs?: number | null;
  /** Count only: the store is read, never written. */
  readonly dryRun: boolean;
  /** Jobs examined per scan page and at most per delete transaction. Default 200. */
  readonly batchSize?: number;
  /** Rows (results + events + notifications) deleted at most per transaction. Default 250. */
  readonly maxRowsPerBatch?: number;
  /** Pause between two store calls, so the API sharing the store gets its turn. Default 5 ms. */
  readonly pauseMs?: number;
  /** Stops the run between two store calls; the report then has `completed: false`. */
  readonly signal?: AbortSignal;
}

export interface RetentionDeps {
  readonly store: RetentionStore;
  /** For started_at / finished_at / duration_ms only; the cutoffs come from `now`. */
  readonly clock: Clock;
  /** How to wait between store calls (tests inject a no-op). Default: a timer (0 ms: setImmediate). */
  readonly sleep?: (ms: number) => Promise<void>;
}

export const RETENTION_DEFAULTS = { batchSize: 200, maxRowsPerBatch: 250, pauseMs: 5 } as const;

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => (ms > 0 ? setTimeout(resolve, ms) : setImmediate(resolve)));

interface Tally {
  /** Rows of this kind of the terminal jobs examined. */
  rows: number;
  /** Rows of eligible jobs, as counted by the scan (what a live run deletes). */
  eligibleRows: number;
  eligibleJobs: number;
  deleted: number;
}

/**
 * One retention run (SPEC §4.2): pages through every job, classifies the terminal ones by the
 * core rules, and (unless dry run) deletes the eligible results, events and notifications in transactions
 * of at most `batchSize` jobs and `maxRowsPerBatch` rows, pausing `pauseMs` between store
 * calls. A dry run makes the same scan and reports the row counts a live run at the same
 * `now` deletes; it never writes. A repeated live run deletes nothing more (idempotent).
 * Job rows and their metadata are kept; deleted result ids are recorded as removed (410).
 */
export async function runRetention(deps: RetentionDeps, opts: RetentionOptions): Promise<RetentionReport> {
  const batchSize = positiveInt('batchSize', opts.batchSize ?? RETENTION_DEFAULTS.batchSize);
  const maxRows = positiveInt('maxRowsPerBatch', opts.maxRowsPerBatch ?? RETENTION_DEFAULTS.maxRowsPerBatch);
  const pauseMs = opts.pauseMs ?? RETENTION_DEFAULTS.pauseMs;
  if (!Number.isFinite(pauseMs) || pauseMs < 0) throw new UpshiftError('VALIDATION_FAILED', 'pauseMs must be >= 0');
  const notificationsTtlMs = opts.notificationsTtlMs ?? null;
  for (const [name, v] of [['resultsTtlMs', opts.resultsTtlMs], ['eventsTtlMs', opts.eventsTtlMs], ['notificationsTtlMs', notificationsTtlMs ?? 0], ['now', opts.now]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new UpshiftError('VALIDATION_FAILED', `${name} must be a non-negative integer`);
  }
  const { store, clock } = deps;
  const sleep = deps.sleep ?? defaultSleep;
  const startedAt = clock.now();
  const cutoff = {
    results: retentionCutoff(opts.now, opts.resultsTtlMs),
    events: retentionCutoff(opts.now, opts.eventsTtlMs),
    notifications: retentionCutoff(opts.now, notificationsTtlMs),
  };
  const tally: Record<RetentionKind, Tally> = {
    results: { rows: 0, eligibleRows: 0, eligibleJobs: 0, deleted: 0 },
    events: { rows: 0, eligibleRows: 0, eligibleJobs: 0, deleted: 0 },
    notifications: { rows: 0, eligibleRows: 0, eligibleJobs: 0, deleted: 0 },
  };
  const rowsOf: Record<RetentionKind, (job: TerminalJobStats) => number> = {
    results: (j) => j.resultCount,
    events: (j) => j.eventCount,
    notifications: (j) => j.notificationCount,
  };
  let terminal = 0;
  let missing = 0;
  let transactions = 0;
  let completed = true;
  const stopped = (): boolean => {
    if (opts.signal?.aborted) completed = false;
    return !completed;
  };

  const count = (job: TerminalJobStats): boolean => {
    terminal++;
    let eligible = false;
    for (const kind of RETENTION_KINDS) {
      const rows = rowsOf[kind](job);
      const t = tally[kind];
      t.rows += rows;
      const cls = classifyForRetention(job, cutoff[kind]);
      if (kind === 'results' && cls === 'missing_timestamp') missing++;
      if (cls === 'eligible' && rows > 0) {
        t.eligibleRows += rows;
        t.eligibleJobs++;
        eligible = true;
      }
    }
    return eligible;
  };

  let after: JobKey | null = null;
  do {
    if (stopped()) break;
    const page = await store.scanTerminalJobs(after, batchSize);
    after = page.next;
    let targets: readonly JobKey[] = page.jobs.filter(count).map((j) => ({ orgId: j.orgId, jobId: j.jobId }));
    while (!opts.dryRun && targets.length > 0) {
      await sleep(pauseMs);
      if (stopped()) break;
      const out = await store.purgeJobData({
        jobs: targets,
        resultsCutoff: cutoff.results,
        eventsCutoff: cutoff.events,
        notificationsCutoff: cutoff.notifications,
        maxRows,
        now: opts.now,
      });
      transactions++;
      tally.results.deleted += out.resultsDeleted;
      tally.events.deleted += out.eventsDeleted;
      tally.notifications.deleted += out.notificationsDeleted;
      if (out.jobsDone === 0 && out.resultsDeleted + out.eventsDeleted + out.notificationsDeleted === 0) {
        throw new UpshiftError('INTERNAL', 'retention made no progress: the store deleted nothing and finished no job');
      }
      targets = targets.slice(out.jobsDone);
    }
    if (after !== null) await sleep(pauseMs);
  } while (after !== null);

  const finishedAt = clock.now();
  const kindReport = (kind: RetentionKind, ttlMs: number | null): RetentionKindReport => {
    const t = tally[kind];
    const deleteCount = opts.dryRun ? t.eligibleRows : t.deleted;
    const at = cutoff[kind];
    return {
      delete_count: deleteCount,
      kept_count: Math.max(0, t.rows - deleteCount),
      job_count: t.eligibleJobs,
      ttl_seconds: ttlMs === null ? null : ttlMs / 1000,
      cutoff: at === null ? null : new Date(at).toISOString(),
    };
  };
  return {
    dry_run: opts.dryRun,
    terminal_job_count: terminal,
    results: kindReport('results', opts.resultsTtlMs),
    events: kindReport('events', opts.eventsTtlMs),
    notifications: kindReport('notifications', notificationsTtlMs),
    skipped_missing_timestamp: missing,
    completed,
    now: new Date(opts.now).toISOString(),
    started_at: new Date(startedAt).toISOString(),
    finished_at: new Date(finishedAt).toISOString(),
    duration_ms: Math.max(0, finishedAt - startedAt),
    transactions,
  };
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new UpshiftError('VALIDATION_FAILED', `${name} must be a positive integer`);
  return v;
}
