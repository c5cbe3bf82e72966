import { UpshiftError } from '../../../core/errors.js';
import { isTerminalEvent, type JobEvent, type JobEventType } from '../../../core/events.js';
import { asJobId, asOrgId, type JobId, type OrgId } from '../../../core/ids.js';
import type { Job, JobError, Json } from '../../../core/job.js';
import { assertTransition, isTerminal } from '../../../core/jobState.js';
import type { SubmitJobCommand } from '../../../ports/jobStore.js';
import { jobRowOf, jobRowsOf, toJob, toJson, type JobRow } from './rowMapping.js';
import type { WriteOp } from './sqliteGroupCommit.js';
import { writeOutbox } from './sqliteOutbox.js';
import type { Queries } from './sqliteQueries.js';

/**
 * Tenant- and sweeper-side writes (submit, cancel, lease recovery) as group-commit ops, plus
 * the state-change helpers the worker-side writes share. Every op runs inside the single
 * writer's open transaction, so reading a row and then writing it is an atomic
 * compare-and-set: nobody else can write in between. That is also why the new row can be
 * computed in JS from the row just read instead of being re-read from SQLite.
 */

/**
 * Appends the job's next event (after.last_event_seq, already reserved by the caller's UPDATE).
 * A terminal event also writes the job's notification outbox entries: every terminal path
 * passes here, inside the transaction of its state change.
 */
export function appendEvent(q: Queries, events: JobEvent[], after: JobRow, type: JobEventType, payload: Json, now: number): void {
  const { lastInsertRowid } = q.insertEvent.run(after.job_id, after.last_event_seq, after.org_id, type, after.status, toJson(payload), now);
  if (isTerminalEvent(type)) writeOutbox(q.delivery, q.inAppDelivery, after, now);
  events.push({
    jobId: asJobId(after.job_id),
    orgId: asOrgId(after.org_id),
    eventSeq: after.last_event_seq,
    type,
    status: after.status,
    // Payloads are built fresh by this adapter (never caller-owned objects), so no copy needed.
    payload,
    occurredAt: now,
    position: Number(lastInsertRowid),
  });
}

export const errorJson = (e: JobError): string => JSON.stringify({ code: e.code, message: e.message });

/** running|queued → canceled (finishedAt = now; keeps the first cancel request time). */
export function cancelRow(q: Queries, events: JobEvent[], row: JobRow, reason: string, now: number): JobRow {
  const after: JobRow = {
    ...row,
    status: 'canceled',
    finished_at: now,
    cancel_requested_at: row.cancel_requested_at ?? now,
    lease_token: null,
    lease_expires_at: null,
    last_event_seq: row.last_event_seq + 1,
  };
  q.cancel.run(now, after.cancel_requested_at as number, after.last_event_seq, row.org_id, row.job_id);
  appendEvent(q, events, after, 'job.canceled', { reason, attempt: row.attempt }, now);
  return after;
}

/** running → failed with `error`. */
export function failRow(q: Queries, events: JobEvent[], row: JobRow, error: JobError, now: number): JobRow {
  const err = { code: error.code, message: error.message };
  const text = errorJson(err);
  const after: JobRow = { ...row, status: 'failed', error: text, finished_at: now, lease_token: null, lease_expires_at: null, last_event_seq: row.last_event_seq + 1 };
  q.fail.run(text, now, after.last_event_seq, row.org_id, row.job_id);
  appendEvent(q, events, after, 'job.failed', { error: err, attempt: row.attempt }, now);
  return after;
}

/** running → queued for the next attempt at `runAt`, remembering the error that caused it. */
export function requeueRow(q: Queries, events: JobEvent[], row: JobRow, error: JobError, runAt: number, now: number): JobRow {
  const err = { code: error.code, message: error.message };
  const text = errorJson(err);
  const after: JobRow = {
    ...row,
    status: 'queued',
    attempt: row.attempt + 1,
    run_at: runAt,
    error: text,
    lease_token: null,
    lease_expires_at: null,
    worker_id: null,
    last_event_seq: row.last_event_seq + 1,
  };
  q.requeue.run(after.attempt, runAt, text, after.last_event_seq, row.org_id, row.job_id);
  appendEvent(q, events, after, 'job.retrying', { attempt: after.attempt, run_at: runAt, error: err }, now);
  return after;
}

export function submitOp(q: Queries, cmd: SubmitJobCommand): WriteOp<{ job: Job; created: boolean }> {
  return (events) => {
    if (cmd.idempotencyKey !== null) {
      // Runs under the write lock, so two submits with the same key (even in one batch, or
      // from two processes) see each other: the second finds the first's row.
      const existing = jobRowOf(q.jobByIdempotencyKey.get(cmd.orgId, cmd.idempotencyKey));
      if (existing) {
        if (existing.request_hash !== cmd.requestHash) {
          throw new UpshiftError('IDEMPOTENCY_CONFLICT', 'this Idempotency-Key was already used with a different request', {
            details: { job_id: existing.job_id },
          });
        }
        return { job: toJob(existing), created: false };
      }
    }
    assertTransition('new', 'queued', 'submit');
    const runAt = cmd.runAt ?? cmd.now;
    const input = toJson(cmd.input);
    q.insertJob.run(cmd.jobId, cmd.orgId, cmd.analyzer, input, cmd.maxAttempts, cmd.priority, cmd.idempotencyKey, cmd.requestHash, cmd.now, runAt, cmd.traceContext);
    const row: JobRow = {
      job_id: cmd.jobId,
      org_id: cmd.orgId,
      analyzer: cmd.analyzer,
      input,
      status: 'queued',
      attempt: 1,
      max_attempts: cmd.maxAttempts,
      priority: cmd.priority,
      idempotency_key: cmd.idempotencyKey,
      request_hash: cmd.requestHash,
      progress_fraction: 0,
      progress_message: null,
      created_at: cmd.now,
      run_at: runAt,
      started_at: null,
      finished_at: null,
      cancel_requested_at: null,
      result_id: null,
      partial_count: 0,
      error: null,
      trace_context: cmd.traceContext,
      lease_token: null,
      lease_expires_at: null,
      worker_id: null,
      last_event_seq: 1,
    };
    appendEvent(q, events, row, 'job.queued', { analyzer: cmd.analyzer, priority: cmd.priority, max_attempts: cmd.maxAttempts, run_at: runAt }, cmd.now);
    return { job: toJob(row), created: true };
  };
}

export function requestCancelOp(q: Queries, orgId: OrgId, jobId: JobId, now: number): WriteOp<{ job: Job; changed: boolean } | undefined> {
  return (events) => {
    const row = jobRowOf(q.jobByOrg.get(orgId, jobId));
    if (!row) return undefined;
    if (isTerminal(row.status) || (row.status === 'running' && row.cancel_requested_at !== null)) {
      return { job: toJob(row), changed: false };
    }
    if (row.status === 'queued') {
      assertTransition('queued', 'canceled', 'cancel_before_start');
      return { job: toJob(cancelRow(q, events, row, 'cancel_before_start', now)), changed: true };
    }
    // Running: the worker observes the request (live signal or heartbeat) and finishes as canceled.
    const after: JobRow = { ...row, cancel_requested_at: now, last_event_seq: row.last_event_seq + 1 };
    q.markCancelRequested.run(now, after.last_event_seq, row.org_id, row.job_id);
    appendEvent(q, events, after, 'job.cancel_requested', { attempt: row.attempt }, now);
    return { job: toJob(after), changed: true };
  };
}

const LEASE_EXPIRED: JobError = { code: 'LEASE_EXPIRED', message: 'the worker holding the job stopped heartbeating; the lease expired' };

/** The key of a lease-recovery decision: a job at one attempt. */
export const attemptKey = (jobId: string, attempt: number): string => `${jobId}#${attempt}`;

/**
 * `plan` holds, by attemptKey, the expired jobs the caller saw, each with its next run time if
 * it is to be requeued (computed with the caller's retry policy before queueing the op:
 * callbacks cannot cross to the writer thread), else null. Rows expired since then, or at
 * another attempt, are left for the next sweep.
 */
export function recoverExpiredLeasesOp(q: Queries, now: number, limit: number, plan: Readonly<Record<string, number | null>>): WriteOp<Job[]> {
  return (events) => {
    if (limit <= 0) return [];
    const moved: Job[] = [];
    for (const row of jobRowsOf(q.expiredLeases.all(now, Math.floor(limit)))) {
      const runAt = plan[attemptKey(row.job_id, row.attempt)];
      if (runAt === undefined) continue;
      let after: JobRow;
      if (row.cancel_requested_at !== null) {
        assertTransition('running', 'canceled', 'lease_expired');
        after = cancelRow(q, events, row, 'lease_expired', now);
      } else if (row.attempt < row.max_attempts && runAt !== null) {
        assertTransition('running', 'queued', 'lease_expired');
        after = requeueRow(q, events, row, LEASE_EXPIRED, runAt, now);
      } else {
        assertTransition('running', 'failed', 'lease_expired');
        after = failRow(q, events, row, LEASE_EXPIRED, now);
      }
      moved.push(toJob(after));
    }
    return moved;
  };
}
