import { completedRow } from '../jobRowTransitions.js';
import { UpshiftError } from '../../../core/errors.js';
import { asJobId, asOrgId, newResultId, type JobId, type OrgId } from '../../../core/ids.js';
import type { JobResult, Json, LeaseRef } from '../../../core/job.js';
import { assertTransition, isTerminal } from '../../../core/jobState.js';
import { IN_APP_CHANNEL, notificationIdOf, outboxEntryId } from '../../../core/notifications.js';
import type { FinishOutcome, HeartbeatCommand, HeartbeatResult } from '../../../ports/jobStore.js';
import type { Op, Outcome } from './postgresGroupCommit.js';
import type { Tx } from './postgresTx.js';
import { toJob, toResult, type JobRow, type ResultRow } from './postgresRows.js';
import { writeOutbox } from './postgresOutbox.js';
import { cancelRow, emitEvent, failRow, insertResults, requeueRow, writeBack, type NewResult } from './postgresRowWrites.js';

/**
 * Tenant-side writes on existing jobs (progress, partial, finish, cancel). All of one org
 * queued in the same event-loop turn run as one group: one statement locks and reads every
 * job they touch (FOR UPDATE, in job id order), the ops are applied in JS in queue order,
 * then one statement writes the changed rows back and one inserts the new results. Because
 * the rows are locked, read-decide-write is a compare-and-set, and ops on the same job in
 * one group see each other's effects exactly as if run one by one.
 */
export type Mutation =
  | { readonly kind: 'progress'; readonly lease: LeaseRef; readonly fraction: number; readonly message: string | null; readonly now: number }
  | { readonly kind: 'partial'; readonly lease: LeaseRef; readonly chunkKey: string; readonly payload: Json; readonly now: number }
  | { readonly kind: 'finish'; readonly lease: LeaseRef; readonly outcome: FinishOutcome; readonly now: number }
  | { readonly kind: 'cancel'; readonly orgId: OrgId; readonly jobId: JobId; readonly now: number };

const orgOf = (m: Mutation): string => (m.kind === 'cancel' ? m.orgId : m.lease.orgId);
const jobOf = (m: Mutation): string => (m.kind === 'cancel' ? m.jobId : m.lease.jobId);

export function mutationOp<T>(m: Mutation): Op<Mutation, T> {
  return {
    key: `mut:${orgOf(m)}`,
    jobs: [`${orgOf(m)}:${jobOf(m)}`],
    input: m,
    exec: execMutations as unknown as Op<Mutation, T>['exec'],
    pipelined: isCompleteMany,
  };
}

/** Plain completions of distinct jobs: execMutations runs them as one statement (completeMany). */
const isCompleteMany = (muts: readonly Mutation[]): boolean => muts.every(isCompletion) && new Set(muts.map(jobOf)).size === muts.length;

function leaseLost(lease: LeaseRef): UpshiftError {
  return new UpshiftError('JOB_LEASE_LOST', `lease of job ${lease.jobId} attempt ${lease.attempt} is not held`, {
    details: { job_id: lease.jobId, attempt: lease.attempt },
  });
}

const holds = (row: JobRow | undefined, lease: LeaseRef): row is JobRow =>
  row !== undefined && row.status === 'running' && row.attempt === lease.attempt && row.lease_token === lease.leaseToken && row.org_id === lease.orgId;

export async function lockRows(tx: Tx, org: string, jobIds: readonly string[]): Promise<Map<string, JobRow>> {
  tx.asTenant(org);
  const rows = await tx.query<JobRow>('lockJobs', [org, [...new Set(jobIds)]]);
  return new Map(rows.map((r) => [r.job_id, r]));
}

type Completion = Mutation & { kind: 'finish'; outcome: { status: 'completed' } };
const isCompletion = (m: Mutation): m is Completion => m.kind === 'finish' && m.outcome.status === 'completed';

async function execMutations(tx: Tx, muts: readonly Mutation[]): Promise<Array<Outcome<unknown>>> {
  const org = orgOf(muts[0] as Mutation);
  if (isCompleteMany(muts)) return completeMany(tx, org, muts as readonly Completion[]);
  const rows = await lockRows(tx, org, muts.map(jobOf));
  const changed = new Set<string>();
  const results: NewResult[] = [];
  const chunks = new Map<string, JobResult>();
  const partials = muts.filter((m) => m.kind === 'partial');
  if (partials.length > 0) {
    const existing = await tx.query<ResultRow>('resultsByChunk', [org, partials.map((m) => m.lease.jobId), partials.map((m) => m.chunkKey)]);
    for (const r of existing) chunks.set(`${r.job_id}:${r.chunk_key ?? ''}`, toResult(r));
  }
  const set = (after: JobRow): JobRow => {
    rows.set(after.job_id, after);
    changed.add(after.job_id);
    return after;
  };
  const requireLease = (lease: LeaseRef): JobRow => {
    const row = rows.get(lease.jobId);
    if (!holds(row, lease)) throw leaseLost(lease);
    return row;
  };

  const apply = (m: Mutation): unknown => {
    switch (m.kind) {
      case 'progress': {
        if (!Number.isFinite(m.fraction)) throw new UpshiftError('VALIDATION_FAILED', 'progress fraction must be a finite number');
        const row = requireLease(m.lease);
        const f = Math.min(1, Math.max(0, m.fraction));
        const after = set({ ...row, progress_fraction: f, progress_message: m.message, last_event_seq: row.last_event_seq + 1 });
        emitEvent(tx, after, 'job.progress', { fraction: f, message: m.message }, m.now);
        return undefined;
      }
      case 'partial': {
        const row = requireLease(m.lease);
        const existing = chunks.get(`${row.job_id}:${m.chunkKey}`);
        if (existing) return { result: existing, created: false };
        const resultId = newResultId(m.now);
        // partial_count never decreases (retention keeps it), so partial_count + 1 is a fresh seq.
        const seq = row.partial_count + 1;
        const payload = JSON.parse(JSON.stringify(m.payload) ?? 'null') as Json;
        const result: JobResult = { resultId, jobId: asJobId(row.job_id), orgId: asOrgId(row.org_id), kind: 'partial', chunkKey: m.chunkKey, seq, payload, createdAt: m.now };
        results.push({ result_id: resultId, job_id: row.job_id, org_id: row.org_id, kind: 'partial', chunk_key: m.chunkKey, seq, payload, created_at: m.now });
        chunks.set(`${row.job_id}:${m.chunkKey}`, result);
        const after = set({ ...row, result_id: resultId, partial_count: seq, last_event_seq: row.last_event_seq + 1 });
        emitEvent(tx, after, 'job.partial', { result_id: resultId, chunk_key: m.chunkKey, seq }, m.now);
        return { result, created: true };
      }
      case 'finish':
        return toJob(set(finish(tx, requireLease(m.lease), m.outcome, m.now, results)));
      case 'cancel': {
        const row = rows.get(m.jobId);
        if (row === undefined || row.org_id !== m.orgId) return undefined;
        if (isTerminal(row.status) || (row.status === 'running' && row.cancel_requested_at !== null)) return { job: toJob(row), changed: false };
        if (row.status === 'queued') {
          assertTransition('queued', 'canceled', 'cancel_before_start');
          return { job: toJob(set(cancelRow(tx, row, 'cancel_before_start', m.now))), changed: true };
        }
        // Running: the worker observes the request (live signal or heartbeat) and finishes as canceled.
        const after = set({ ...row, cancel_requested_at: m.now, last_event_seq: row.last_event_seq + 1 });
        emitEvent(tx, after, 'job.cancel_requested', { attempt: row.attempt }, m.now);
        return { job: toJob(after), changed: true };
      }
    }
  };

  const outs: Array<Outcome<unknown>> = muts.map((m) => {
    try {
      return { ok: true, value: apply(m) };
    } catch (e) {
      // Guards throw before anything changed, so a failed op leaves no trace.
      if (e instanceof UpshiftError) return { ok: false, error: e };
      throw e;
    }
  });
  const written = [...changed].map((id) => rows.get(id) as JobRow);
  await writeBack(tx, written);
  await insertResults(tx, results);
  // A row written back with a terminal status became terminal in this group (terminal rows
  // never change again), so its outbox entries are due now, in this transaction.
  await writeOutbox(tx, written);
  return outs;
}

/** Plain completions of distinct jobs: one statement, no separate lock/read round trip. */
async function completeMany(tx: Tx, org: string, muts: readonly Completion[]): Promise<Array<Outcome<unknown>>> {
  assertTransition('running', 'completed', 'analyzer_returned');
  tx.asTenant(org);
  const rows = await tx.query<JobRow & { event_position: number }>(
    'completeJobs',
    [
      org,
      muts.map((m) => m.lease.jobId),
      muts.map((m) => m.lease.attempt),
      muts.map((m) => m.lease.leaseToken),
      muts.map((m) => m.outcome.resultId),
      muts.map((m) => m.now),
      muts.map((m) => JSON.stringify(m.outcome.payload) ?? 'null'),
      ...tx.positionArgs(),
      muts.map((m) => outboxEntryId(m.lease.jobId, 'async.job.completed', IN_APP_CHANNEL)),
      muts.map((m) => new Date(m.now).toISOString()),
      tx.inlineInApp,
      muts.map((m) => notificationIdOf(m.lease.jobId, 'async.job.completed')),
    ],
    true,
  );
  const won = new Map(rows.map((r) => [r.job_id, r]));
  return muts.map((m): Outcome<unknown> => {
    const row = won.get(m.lease.jobId);
    if (!row) return { ok: false, error: leaseLost(m.lease) };
    tx.written.push({
      jobId: asJobId(row.job_id), orgId: asOrgId(row.org_id), eventSeq: row.last_event_seq, type: 'job.completed', status: 'completed',
      payload: { result_id: m.outcome.resultId, attempt: row.attempt }, occurredAt: m.now, position: row.event_position,
    });
    const { event_position: _, ...job } = row;
    return { ok: true, value: toJob(job) };
  });
}

function finish(tx: Tx, row: JobRow, outcome: FinishOutcome, now: number, results: NewResult[]): JobRow {
  switch (outcome.status) {
    case 'completed': {
      assertTransition('running', 'completed', 'analyzer_returned');
      const payload = JSON.parse(JSON.stringify(outcome.payload) ?? 'null') as Json;
      results.push({ result_id: outcome.resultId, job_id: row.job_id, org_id: row.org_id, kind: 'final', chunk_key: null, seq: row.partial_count + 1, payload, created_at: now });
      const after = completedRow(row, outcome.resultId, now);
      emitEvent(tx, after, 'job.completed', { result_id: outcome.resultId, attempt: row.attempt }, now);
      return after;
    }
    case 'failed':
      assertTransition('running', 'failed', row.attempt >= row.max_attempts ? 'attempts_exhausted' : 'analyzer_failed');
      return failRow(tx, row, outcome.error, now);
    case 'retry':
      if (row.cancel_requested_at !== null) {
        // A job the tenant asked to cancel never goes back to the queue.
        assertTransition('running', 'canceled', 'cancel_observed');
        return cancelRow(tx, row, 'cancel_observed', now);
      }
      assertTransition('running', 'queued', 'retry');
      return requeueRow(tx, row, outcome.error, outcome.retryAt, now);
    case 'canceled':
      assertTransition('running', 'canceled', outcome.reason);
      return cancelRow(tx, row, outcome.reason, now);
  }
}

/** Extends only leases still held (never shortens one); no events. One statement pair per org. */
export function heartbeatOp(cmd: HeartbeatCommand): Op<HeartbeatCommand, HeartbeatResult[]> {
  return {
    key: null,
    jobs: cmd.leases.map((l) => `${l.orgId}:${l.jobId}`),
    input: cmd,
    exec: async (tx, [c]) => {
      const cmd = c as HeartbeatCommand;
      const byOrg = new Map<string, LeaseRef[]>();
      for (const l of cmd.leases) byOrg.set(l.orgId, [...(byOrg.get(l.orgId) ?? []), l]);
      const held = new Map<LeaseRef, JobRow>();
      const extended: JobRow[] = [];
      for (const [org, leases] of byOrg) {
        const rows = await lockRows(tx, org, leases.map((l) => l.jobId));
        for (const l of leases) {
          const row = rows.get(l.jobId);
          if (!holds(row, l) || extended.some((r) => r.org_id === org && r.job_id === l.jobId)) {
            if (holds(row, l)) held.set(l, row);
            continue;
          }
          held.set(l, row);
          extended.push({ ...row, lease_expires_at: Math.max(row.lease_expires_at ?? 0, cmd.now + cmd.leaseMs) });
        }
        await writeBack(tx, extended.filter((r) => r.org_id === org));
      }
      const value = cmd.leases.map((l) => {
        const row = held.get(l);
        return { jobId: l.jobId, held: row !== undefined, cancelRequested: row !== undefined && row.cancel_requested_at !== null };
      });
      return [{ ok: true, value }];
    },
  };
}

