import { UpshiftError } from '../../../core/errors.js';
import { asJobId, asOrgId, newToken } from '../../../core/ids.js';
import type { ClaimedJob, Job, JobError } from '../../../core/job.js';
import { assertTransition, isTerminal } from '../../../core/jobState.js';
import type { ApiKeyRecord, ClaimByIdCommand, ClaimByIdResult, ClaimCommand, SubmitJobCommand } from '../../../ports/jobStore.js';
import type { Op, Outcome } from './postgresGroupCommit.js';
import { toClaimedJob, toJob, toJsonText, type JobRow } from './postgresRows.js';
import { writeOutbox } from './postgresOutbox.js';
import { cancelRow, failRow, requeueRow, writeBack } from './postgresRowWrites.js';

/**
 * Submits, claims, lease recovery and API key writes as group-commit ops. Submits of one org
 * queued in the same turn become one multi-row INSERT; a claim is one statement
 * (FOR UPDATE SKIP LOCKED inside an UPDATE … RETURNING).
 */

export function submitOp(cmd: SubmitJobCommand): Op<SubmitJobCommand, { job: Job; created: boolean }> {
  return {
    key: `submit:${cmd.orgId}`,
    jobs: [`${cmd.orgId}:${cmd.jobId}`],
    input: cmd,
    exec: execSubmits,
    // Without idempotency keys nothing is skipped, so no lookup follows the insert.
    pipelined: (cmds) => cmds.every((c) => c.idempotencyKey === null),
  };
}

async function execSubmits(tx: Parameters<Op<SubmitJobCommand, unknown>['exec']>[0], cmds: readonly SubmitJobCommand[]): Promise<Array<Outcome<{ job: Job; created: boolean }>>> {
  assertTransition('new', 'queued', 'submit');
  const org = (cmds[0] as SubmitJobCommand).orgId;
  tx.asTenant(org);
  const runAt = (c: SubmitJobCommand): number => c.runAt ?? c.now;
  // ON CONFLICT on the idempotency index only: a same-key submit (in this statement, or
  // committed/in flight elsewhere — the insert waits for it) is skipped and resolved below.
  const keyed = cmds.some((c) => c.idempotencyKey !== null);
  const rows = await tx.query<{ job_id: string; position: number }>(
    'insertJobs',
    [
      org,
      cmds.map((c) => c.jobId),
      cmds.map((c) => c.analyzer),
      cmds.map((c) => toJsonText(c.input)),
      cmds.map((c) => c.maxAttempts),
      cmds.map((c) => c.priority),
      cmds.map((c) => c.idempotencyKey),
      cmds.map((c) => c.requestHash),
      cmds.map((c) => c.now),
      cmds.map(runAt),
      cmds.map((c) => c.traceContext),
      ...tx.positionArgs(),
    ],
    // Without idempotency keys nothing can be skipped, so no lookup follows.
    !keyed,
  );
  const inserted = new Map(rows.map((r) => [r.job_id, r.position]));
  const skipped = cmds.filter((c) => !inserted.has(c.jobId));
  const byKey = new Map<string, JobRow>();
  if (skipped.length > 0) {
    const rows = await tx.query<JobRow>('jobsByIdempotencyKey', [org, [...new Set(skipped.map((c) => c.idempotencyKey))]]);
    for (const r of rows) if (r.idempotency_key !== null) byKey.set(r.idempotency_key, r);
  }
  return cmds.map((c): Outcome<{ job: Job; created: boolean }> => {
    if (!inserted.has(c.jobId)) {
      const existing = c.idempotencyKey === null ? undefined : byKey.get(c.idempotencyKey);
      if (!existing) return { ok: false, error: new UpshiftError('STORE_CONFLICT', `job ${c.jobId} could not be inserted`) };
      if (existing.request_hash !== c.requestHash) {
        return {
          ok: false,
          error: new UpshiftError('IDEMPOTENCY_CONFLICT', 'this Idempotency-Key was already used with a different request', { details: { job_id: existing.job_id } }),
        };
      }
      return { ok: true, value: { job: toJob(existing), created: false } };
    }
    const input = JSON.parse(toJsonText(c.input)) as JobRow['input'];
    const row: JobRow = {
      job_id: c.jobId, org_id: c.orgId, analyzer: c.analyzer, input, status: 'queued', attempt: 1, max_attempts: c.maxAttempts,
      priority: c.priority, idempotency_key: c.idempotencyKey, request_hash: c.requestHash, progress_fraction: 0, progress_message: null,
      created_at: c.now, run_at: runAt(c), started_at: null, finished_at: null, cancel_requested_at: null, result_id: null, partial_count: 0,
      error: null, trace_context: c.traceContext, lease_token: null, lease_expires_at: null, worker_id: null, last_event_seq: 1,
    };
    tx.written.push({
      jobId: asJobId(row.job_id), orgId: asOrgId(row.org_id), eventSeq: 1, type: 'job.queued', status: 'queued',
      payload: { analyzer: c.analyzer, priority: c.priority, max_attempts: c.maxAttempts, run_at: row.run_at }, occurredAt: c.now,
      position: inserted.get(c.jobId) as number,
    });
    return { ok: true, value: { job: toJob(row), created: true } };
  });
}

const claimOrder = (a: JobRow, b: JobRow): number =>
  b.priority - a.priority || a.run_at - b.run_at || (a.job_id < b.job_id ? -1 : a.job_id > b.job_id ? 1 : 0);

/** started_at is set on every claim: it is the start of the current (latest) attempt. */
export function claimOp(cmd: ClaimCommand): Op<ClaimCommand, ClaimedJob[]> {
  return {
    key: null,
    jobs: null,
    input: cmd,
    pipelined: () => true,
    exec: async (tx, [c]) => {
      const cmd = c as ClaimCommand;
      if (cmd.limit <= 0 || (cmd.analyzers !== null && cmd.analyzers.length === 0)) return [{ ok: true, value: [] }];
      // The statement selects only queued rows and moves them to running.
      assertTransition('queued', 'running', 'claim');
      tx.asTenant(cmd.orgId);
      // One random draw per claim, suffixed per job: unique and unguessable tokens.
      const rows = await tx.query<JobRow & { event_position: number }>(
        'claim',
        [cmd.orgId, cmd.now, cmd.analyzers === null ? null : [...cmd.analyzers], Math.floor(cmd.limit), newToken('lse_'), cmd.now + cmd.leaseMs, cmd.workerId, ...tx.positionArgs()],
        true,
      );
      rows.sort(claimOrder);
      for (const row of rows) {
        tx.written.push({
          jobId: asJobId(row.job_id), orgId: asOrgId(row.org_id), eventSeq: row.last_event_seq, type: 'job.started', status: 'running',
          payload: { attempt: row.attempt, worker_id: cmd.workerId }, occurredAt: cmd.now, position: row.event_position,
        });
      }
      return [{ ok: true, value: rows.map(toClaimedJob) }];
    },
  };
}

/**
 * Claims by id of one turn with the same worker and lease length run together: one statement
 * per org (tenant-bound, so RLS checks it too), all sent before the first result is read, in
 * the group-commit transaction of the completions and submits of that turn.
 */
export function claimByIdOp(cmd: ClaimByIdCommand): Op<ClaimByIdCommand, ClaimByIdResult[]> {
  return {
    key: `claimById:${cmd.workerId}:${cmd.leaseMs}`,
    jobs: cmd.jobs.map((j) => `${j.orgId}:${j.jobId}`),
    input: cmd,
    pipelined: () => true,
    exec: execClaimsById,
  };
}

type ClaimByIdRow = JobRow & { asked_job_id: string; seen_status: string | null; seen_run_at: number | null; event_position: number | null };

async function execClaimsById(tx: Parameters<Op<ClaimByIdCommand, unknown>['exec']>[0], cmds: readonly ClaimByIdCommand[]): Promise<Array<Outcome<ClaimByIdResult[]>>> {
  assertTransition('queued', 'running', 'claim');
  const first = cmds[0] as ClaimByIdCommand;
  const now = Math.max(...cmds.map((c) => c.now));
  // Distinct names per org: a job named twice (a duplicated queue entry) is claimed once.
  const byOrg = new Map<string, Set<string>>();
  for (const c of cmds) {
    for (const { orgId, jobId } of c.jobs) {
      const ids = byOrg.get(orgId);
      if (ids) ids.add(jobId);
      else byOrg.set(orgId, new Set([jobId]));
    }
  }
  const token = newToken('lse_');
  const orgs = [...byOrg];
  const statements = orgs.map(([org, ids], i) => {
    tx.asTenant(org);
    return tx.query<ClaimByIdRow>('claimById', [[...ids].map(() => org), [...ids], now, token, now + first.leaseMs, first.workerId, ...tx.positionArgs()], i === orgs.length - 1);
  });
  const seen = new Map<string, ClaimByIdResult>();
  for (const [k, rows] of (await Promise.all(statements)).entries()) {
    const org = (orgs[k] as [string, Set<string>])[0];
    for (const row of rows) {
      let r: ClaimByIdResult;
      if (row.event_position !== null) {
        tx.written.push({
          jobId: asJobId(row.job_id), orgId: asOrgId(row.org_id), eventSeq: row.last_event_seq, type: 'job.started', status: 'running',
          payload: { attempt: row.attempt, worker_id: first.workerId }, occurredAt: now, position: Number(row.event_position),
        });
        r = { kind: 'claimed', job: toClaimedJob(row) };
      } else if (row.seen_status !== 'queued') r = { kind: 'gone' };
      else if (Number(row.seen_run_at) > now) r = { kind: 'not_due', runAt: Number(row.seen_run_at) };
      else r = { kind: 'busy' };
      seen.set(`${org}:${row.asked_job_id}`, r);
    }
  }
  // Each name's result goes to its first mention; a repeated mention finds the job taken.
  return cmds.map((c) => ({
    ok: true,
    value: c.jobs.map(({ orgId, jobId }) => {
      const key = `${orgId}:${jobId}`;
      const r = seen.get(key) ?? { kind: 'gone' };
      if (r.kind === 'claimed') seen.set(key, { kind: 'gone' });
      return r;
    }),
  }));
}

const LEASE_EXPIRED: JobError = { code: 'LEASE_EXPIRED', message: 'the worker holding the job stopped heartbeating; the lease expired' };

/**
 * Cross-tenant (internal role). SKIP LOCKED: concurrent sweepers in other processes take
 * disjoint rows. Every retryAt is computed before anything is written, so a throwing callback
 * fails this op alone and writes nothing.
 */
export function recoverOp(now: number, limit: number, retryAt: (job: Job) => number): Op<null, Job[]> {
  return {
    key: null,
    jobs: null,
    input: null,
    exec: async (tx) => {
      if (limit <= 0) return [{ ok: true, value: [] }];
      tx.asInternal();
      const rows = await tx.query<JobRow>('expiredLeases', [now, Math.floor(limit)]);
      const plans: Array<{ row: JobRow; runAt: number | null }> = [];
      try {
        for (const row of rows) {
          const requeue = row.cancel_requested_at === null && row.attempt < row.max_attempts;
          plans.push({ row, runAt: requeue ? retryAt(toJob(row)) : null });
        }
      } catch (e) {
        return [{ ok: false, error: e }];
      }
      const after = plans.map(({ row, runAt }) => {
        if (row.cancel_requested_at !== null) {
          assertTransition('running', 'canceled', 'lease_expired');
          return cancelRow(tx, row, 'lease_expired', now);
        }
        if (runAt !== null) {
          assertTransition('running', 'queued', 'lease_expired');
          return requeueRow(tx, row, LEASE_EXPIRED, runAt, now);
        }
        assertTransition('running', 'failed', 'lease_expired');
        return failRow(tx, row, LEASE_EXPIRED, now);
      });
      await writeBack(tx, after);
      // The outbox (and inline notifications) as each job's own tenant: the internal role
      // writes no inbox, and RLS checks every entry's org.
      const byOrg = new Map<string, JobRow[]>();
      for (const r of after) if (isTerminal(r.status)) byOrg.set(r.org_id, [...(byOrg.get(r.org_id) ?? []), r]);
      for (const [org, list] of byOrg) {
        tx.asTenant(org);
        await writeOutbox(tx, list);
      }
      return [{ ok: true, value: after.map(toJob) }];
    },
  };
}

export function createApiKeyOp(record: ApiKeyRecord): Op<ApiKeyRecord, void> {
  return {
    key: null,
    jobs: [],
    input: record,
    exec: async (tx, [r]) => {
      const rec = r as ApiKeyRecord;
      tx.asTenant(rec.orgId);
      await tx.query('insertApiKey', [rec.keyId, rec.orgId, rec.hash, rec.label, rec.createdAt, rec.revokedAt]);
      return [{ ok: true, value: undefined }];
    },
  };
}

/** Revocation by key id (an operator action, not tenant-bound): internal role. */
export function revokeApiKeyOp(keyId: string, now: number): Op<null, boolean> {
  return {
    key: null,
    jobs: [],
    input: null,
    exec: async (tx) => {
      tx.asInternal();
      const rows = await tx.query('revokeApiKey', [keyId, now]);
      return [{ ok: true, value: rows.length > 0 }];
    },
  };
}
