import { completedRow } from '../jobRowTransitions.js';
import { UpshiftError } from '../../../core/errors.js';
import type { JobEvent } from '../../../core/events.js';
import { asJobId, newResultId, newToken } from '../../../core/ids.js';
import type { ClaimedJob, Job, JobResult, Json, LeaseRef } from '../../../core/job.js';
import { assertTransition } from '../../../core/jobState.js';
import type { ClaimByIdCommand, ClaimByIdResult, ClaimCommand, FinishOutcome, HeartbeatCommand, HeartbeatResult } from '../../../ports/jobStore.js';
import { JOB_COLUMNS, jobRowOf, toClaimedJob, toJob, toJson, toResult, type JobRow } from './rowMapping.js';
import type { WriteOp } from './sqliteGroupCommit.js';
import { appendEvent, cancelRow, failRow, requeueRow } from './sqliteJobWrites.js';
import type { Queries } from './sqliteQueries.js';

/**
 * Worker-side writes as group-commit ops: claim, heartbeat, progress, partial, finish. All but
 * claim are fenced by (job, org, status=running, attempt, lease token): the check and the write
 * run in the single writer's transaction, so they form one compare-and-set.
 */

function leaseLost(lease: LeaseRef): UpshiftError {
  return new UpshiftError('JOB_LEASE_LOST', `lease of job ${lease.jobId} attempt ${lease.attempt} is not held`, {
    details: { job_id: lease.jobId, attempt: lease.attempt },
  });
}

function holds(row: JobRow | undefined, lease: LeaseRef): row is JobRow {
  return row !== undefined && row.status === 'running' && row.attempt === lease.attempt && row.lease_token === lease.leaseToken;
}

function requireLease(q: Queries, lease: LeaseRef): JobRow {
  const row = jobRowOf(q.jobByOrg.get(lease.orgId, lease.jobId));
  if (!holds(row, lease)) throw leaseLost(lease);
  return row;
}

/**
 * queued → running with the given lease token; appends `job.started`. started_at is set on
 * every claim: it is the start of the current (latest) attempt.
 */
function startRow(q: Queries, events: JobEvent[], row: JobRow, rowid: number, leaseToken: string, cmd: { workerId: string; now: number; leaseMs: number }): ClaimedJob {
  assertTransition('queued', 'running', 'claim');
  const expires = cmd.now + cmd.leaseMs;
  const after: JobRow = {
    ...row,
    status: 'running',
    lease_token: leaseToken,
    lease_expires_at: expires,
    worker_id: cmd.workerId,
    started_at: cmd.now,
    last_event_seq: row.last_event_seq + 1,
  };
  q.markRunning.run(leaseToken, expires, cmd.workerId, cmd.now, after.last_event_seq, rowid);
  appendEvent(q, events, after, 'job.started', { attempt: row.attempt, worker_id: cmd.workerId }, cmd.now);
  return toClaimedJob(after);
}

export function claimOp(q: Queries, cmd: ClaimCommand): WriteOp<ClaimedJob[]> {
  return (events) => {
    if (cmd.limit <= 0 || (cmd.analyzers !== null && cmd.analyzers.length === 0)) return [];
    const limit = Math.floor(cmd.limit);
    const raw =
      cmd.analyzers === null
        ? q.claimable.all(cmd.orgId, cmd.now, limit)
        : q.claimableFiltered.all(cmd.orgId, cmd.now, JSON.stringify(cmd.analyzers), limit);
    // One random draw per claim batch, suffixed per job: tokens stay unique and unguessable
    // while the batch pays for a single randomBytes call.
    const batchToken = newToken('lse_');
    return raw.map((v, i) => startRow(q, events, jobRowOf(v) as JobRow, v[JOB_COLUMNS.length] as number, `${batchToken}.${i}`, cmd));
  };
}

/** Each named job: one key lookup, then the claim's compare-and-set (the single writer's transaction). */
export function claimByIdOp(q: Queries, cmd: ClaimByIdCommand): WriteOp<ClaimByIdResult[]> {
  return (events) => {
    const batchToken = newToken('lse_');
    return cmd.jobs.map((ref, i): ClaimByIdResult => {
      const v = q.leaseRow.get(ref.orgId, ref.jobId);
      const row = jobRowOf(v);
      // A job named twice was claimed by its first mention: running now, so gone.
      if (row === undefined || row.status !== 'queued') return { kind: 'gone' };
      if (row.run_at > cmd.now) return { kind: 'not_due', runAt: row.run_at };
      return { kind: 'claimed', job: startRow(q, events, row, (v as unknown[])[JOB_COLUMNS.length] as number, `${batchToken}.${i}`, cmd) };
    });
  };
}

/** Extends only leases still held (never shortens one); no events. */
export function heartbeatOp(q: Queries, cmd: HeartbeatCommand): WriteOp<HeartbeatResult[]> {
  return () =>
    cmd.leases.map((lease) => {
      const row = jobRowOf(q.jobByOrg.get(lease.orgId, lease.jobId));
      if (!holds(row, lease)) return { jobId: lease.jobId, held: false, cancelRequested: false };
      q.extendLease.run(Math.max(row.lease_expires_at ?? 0, cmd.now + cmd.leaseMs), row.org_id, row.job_id);
      return { jobId: lease.jobId, held: true, cancelRequested: row.cancel_requested_at !== null };
    });
}

export function progressOp(q: Queries, lease: LeaseRef, fraction: number, message: string | null, now: number): WriteOp<void> {
  return (events) => {
    if (!Number.isFinite(fraction)) throw new UpshiftError('VALIDATION_FAILED', 'progress fraction must be a finite number');
    const row = requireLease(q, lease);
    const f = Math.min(1, Math.max(0, fraction));
    const after: JobRow = { ...row, progress_fraction: f, progress_message: message, last_event_seq: row.last_event_seq + 1 };
    q.setProgress.run(f, message, after.last_event_seq, row.org_id, row.job_id);
    appendEvent(q, events, after, 'job.progress', { fraction: f, message }, now);
  };
}

export function partialOp(
  q: Queries,
  lease: LeaseRef,
  chunkKey: string,
  payload: Json,
  now: number,
): WriteOp<{ result: JobResult; created: boolean }> {
  return (events) => {
    const row = requireLease(q, lease);
    const existing = q.resultByChunk.get(row.job_id, chunkKey);
    if (existing) return { result: toResult(existing), created: false };
    const resultId = newResultId(now);
    // partial_count never decreases (retention keeps it), so partial_count + 1 is a fresh seq.
    const seq = row.partial_count + 1;
    const text = toJson(payload);
    q.insertResult.run(resultId, row.job_id, row.org_id, 'partial', chunkKey, seq, text, now);
    const after: JobRow = { ...row, result_id: resultId, partial_count: seq, last_event_seq: row.last_event_seq + 1 };
    q.addPartial.run(resultId, seq, after.last_event_seq, row.org_id, row.job_id);
    appendEvent(q, events, after, 'job.partial', { result_id: resultId, chunk_key: chunkKey, seq }, now);
    const result: JobResult = {
      resultId,
      jobId: asJobId(row.job_id),
      orgId: lease.orgId,
      kind: 'partial',
      chunkKey,
      seq,
      payload: JSON.parse(text) as Json,
      createdAt: now,
    };
    return { result, created: true };
  };
}

export function finishOp(q: Queries, lease: LeaseRef, outcome: FinishOutcome, now: number): WriteOp<Job> {
  return (events) => {
    if (outcome.status === 'completed') {
      // The hot path: the lease check on the row just read, then one update by rowid. Atomic:
      // nothing else writes between the two (the single writer's transaction).
      assertTransition('running', 'completed', 'analyzer_returned');
      const v = q.leaseRow.get(lease.orgId, lease.jobId);
      const row = jobRowOf(v);
      if (!holds(row, lease)) throw leaseLost(lease);
      const after = completedRow(row, outcome.resultId, now);
      q.complete.run(outcome.resultId, now, after.last_event_seq, (v as unknown[])[JOB_COLUMNS.length] as number);
      q.insertResult.run(outcome.resultId, after.job_id, after.org_id, 'final', null, after.partial_count + 1, toJson(outcome.payload), now);
      appendEvent(q, events, after, 'job.completed', { result_id: outcome.resultId, attempt: after.attempt }, now);
      return toJob(after);
    }
    const row = requireLease(q, lease);
    switch (outcome.status) {
      case 'failed':
        assertTransition('running', 'failed', row.attempt >= row.max_attempts ? 'attempts_exhausted' : 'analyzer_failed');
        return toJob(failRow(q, events, row, outcome.error, now));
      case 'retry':
        if (row.cancel_requested_at !== null) {
          // A job the tenant asked to cancel never goes back to the queue.
          assertTransition('running', 'canceled', 'cancel_observed');
          return toJob(cancelRow(q, events, row, 'cancel_observed', now));
        }
        assertTransition('running', 'queued', 'retry');
        return toJob(requeueRow(q, events, row, outcome.error, outcome.retryAt, now));
      case 'canceled':
        assertTransition('running', 'canceled', outcome.reason);
        return toJob(cancelRow(q, events, row, outcome.reason, now));
    }
  };
}
