import { isTerminal, type JobStatus } from './jobState.js';

/**
 * Retention rules (SPEC §4.2). Pure: the use case (`app/retention.ts`) applies them to the
 * jobs a `RetentionStore` pages through, the store re-checks them before it deletes.
 *
 * Glossary
 * - kind: what retention removes per job — its `results` (partial and final result rows), its
 *   `events` (the job's event log) or its `notifications` (its in-app inbox entries and the
 *   settled entries of its notification outbox: delivered or failed webhook deliveries, the
 *   delivery log). Each kind has its own TTL; the notifications TTL is optional (none: kept).
 *   A pending outbox entry (a delivery still being attempted) is never a retention row.
 * - cutoff: `now - ttl`. A terminal job is eligible for a kind when `finished_at <= cutoff`,
 *   i.e. it finished at least `ttl` ago (TTL 0: every job finished by `now`).
 * - missing timestamp: a terminal job without `finished_at` (data written by an older or
 *   foreign tool). Its age is unknown, so retention counts it and never touches it.
 * The job row itself (status, timestamps, attempt, error, partial_count, result_id) is never
 * removed: it is the aggregated metadata that outlives the payloads.
 */
export type RetentionKind = 'results' | 'events' | 'notifications';

export const RETENTION_KINDS: readonly RetentionKind[] = ['results', 'events', 'notifications'];

export type RetentionClass = 'eligible' | 'kept' | 'missing_timestamp' | 'not_terminal';

export function retentionCutoff(now: number, ttlMs: number): number;
export function retentionCutoff(now: number, ttlMs: number | null): number | null;
/** `now - ttl`; no TTL (null): no cutoff, nothing of that kind is eligible. */
export function retentionCutoff(now: number, ttlMs: number | null): number | null {
  return ttlMs === null ? null : now - ttlMs;
}

export function classifyForRetention(job: { readonly status: JobStatus; readonly finishedAt: number | null }, cutoff: number | null): RetentionClass {
  if (!isTerminal(job.status)) return 'not_terminal';
  if (job.finishedAt === null) return 'missing_timestamp';
  return cutoff !== null && job.finishedAt <= cutoff ? 'eligible' : 'kept';
}

/** Per kind: rows a live run deletes (dry run: would delete) and rows that stay. */
export interface RetentionKindReport {
  /** Rows deleted (live) or that a live run at the same `now` would delete (dry run). */
  readonly delete_count: number;
  /**
   * Rows of this kind that remain, after the run, for the terminal jobs it examined
   * (`terminal_job_count`): rows of jobs not yet eligible and of jobs without `finished_at`.
   * A dry run reports what would remain, which is what the live run then reports.
   */
  readonly kept_count: number;
  /** Terminal jobs whose rows of this kind were (or would be) deleted (with at least one row). */
  readonly job_count: number;
  /** null: no TTL for this kind (notifications without one are kept). */
  readonly ttl_seconds: number | null;
  /** ISO-8601: jobs that finished at or before this instant are eligible; null without a TTL. */
  readonly cutoff: string | null;
}

/**
 * The JSON report of one retention run (the `--output-json` artifact, SPEC §4.2). Field names
 * are part of the operations contract: dashboards and runbook checks read them.
 */
export interface RetentionReport {
  readonly dry_run: boolean;
  /** Terminal jobs examined (completed, failed, canceled), with or without `finished_at`. */
  readonly terminal_job_count: number;
  readonly results: RetentionKindReport;
  readonly events: RetentionKindReport;
  /** In-app inbox entries and settled outbox entries (delivery log) of the examined jobs. */
  readonly notifications: RetentionKindReport;
  /** Terminal jobs without `finished_at`: counted, never touched. */
  readonly skipped_missing_timestamp: number;
  /** false when the run was stopped (shutdown, signal) before it examined every job. */
  readonly completed: boolean;
  /** The `now` the cutoffs were computed from (ISO-8601). */
  readonly now: string;
  readonly started_at: string;
  readonly finished_at: string;
  readonly duration_ms: number;
  /** Store transactions that deleted rows (0 for a dry run). */
  readonly transactions: number;
}
