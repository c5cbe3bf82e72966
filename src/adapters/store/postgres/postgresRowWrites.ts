import type { JobEventType } from '../../../core/events.js';
import type { JobError, Json } from '../../../core/job.js';
import type { Tx } from './postgresTx.js';
import type { JobRow } from './postgresRows.js';

/**
 * The state-change helpers every writer shares. Writers lock and read the job rows first (in
 * the batch transaction, FOR UPDATE), compute the new row in JS after the core transition
 * table allowed it, emit the event, and write all changed rows back in one statement.
 */

/** Emits the job's next event (after.last_event_seq, already incremented by the caller). */
export function emitEvent(tx: Tx, after: JobRow, type: JobEventType, payload: Json, now: number): void {
  tx.emit({ jobId: after.job_id, orgId: after.org_id, eventSeq: after.last_event_seq, type, status: after.status, payload, occurredAt: now });
}

/** running|queued → canceled (finishedAt = now; keeps the first cancel request time). */
export function cancelRow(tx: Tx, row: JobRow, reason: string, now: number): JobRow {
  const after: JobRow = {
    ...row,
    status: 'canceled',
    finished_at: now,
    cancel_requested_at: row.cancel_requested_at ?? now,
    lease_token: null,
    lease_expires_at: null,
    last_event_seq: row.last_event_seq + 1,
  };
  emitEvent(tx, after, 'job.canceled', { reason, attempt: row.attempt }, now);
  return after;
}

/** running → failed with `error`. */
export function failRow(tx: Tx, row: JobRow, error: JobError, now: number): JobRow {
  const err = { code: error.code, message: error.message };
  const after: JobRow = { ...row, status: 'failed', error: err, finished_at: now, lease_token: null, lease_expires_at: null, last_event_seq: row.last_event_seq + 1 };
  emitEvent(tx, after, 'job.failed', { error: err, attempt: row.attempt }, now);
  return after;
}

/** running → queued for the next attempt at `runAt`, remembering the error that caused it. */
export function requeueRow(tx: Tx, row: JobRow, error: JobError, runAt: number, now: number): JobRow {
  const err = { code: error.code, message: error.message };
  const after: JobRow = {
    ...row,
    status: 'queued',
    attempt: row.attempt + 1,
    run_at: runAt,
    error: err,
    lease_token: null,
    lease_expires_at: null,
    worker_id: null,
    last_event_seq: row.last_event_seq + 1,
  };
  emitEvent(tx, after, 'job.retrying', { attempt: after.attempt, run_at: runAt, error: err }, now);
  return after;
}

/** Writes the mutable columns of `rows` back in one multi-row UPDATE. */
export async function writeBack(tx: Tx, rows: readonly JobRow[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.query('writeBack', [
    rows.map((r) => r.org_id),
    rows.map((r) => r.job_id),
    rows.map((r) => r.status),
    rows.map((r) => r.attempt),
    rows.map((r) => r.run_at),
    rows.map((r) => r.progress_fraction),
    rows.map((r) => r.progress_message),
    rows.map((r) => r.started_at),
    rows.map((r) => r.finished_at),
    rows.map((r) => r.cancel_requested_at),
    rows.map((r) => r.result_id),
    rows.map((r) => r.partial_count),
    rows.map((r) => (r.error === null ? null : JSON.stringify(r.error))),
    rows.map((r) => r.lease_token),
    rows.map((r) => r.lease_expires_at),
    rows.map((r) => r.worker_id),
    rows.map((r) => r.last_event_seq),
  ]);
}

export interface NewResult {
  readonly result_id: string;
  readonly job_id: string;
  readonly org_id: string;
  readonly kind: 'partial' | 'final';
  readonly chunk_key: string | null;
  readonly seq: number;
  readonly payload: Json;
  readonly created_at: number;
}

export async function insertResults(tx: Tx, rows: readonly NewResult[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.query('insertResults', [
    rows.map((r) => r.result_id),
    rows.map((r) => r.job_id),
    rows.map((r) => r.org_id),
    rows.map((r) => r.kind),
    rows.map((r) => r.chunk_key),
    rows.map((r) => r.seq),
    rows.map((r) => JSON.stringify(r.payload) ?? 'null'),
    rows.map((r) => r.created_at),
  ]);
}
