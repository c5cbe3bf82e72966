import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createPostgresJobStore } from '../../src/adapters/store/postgres/postgresJobStore.js';
import { asOrgId, newJobId, newResultId, type OrgId } from '../../src/core/ids.js';
import type { ClaimedJob } from '../../src/core/job.js';
import type { JobStore } from '../../src/ports/jobStore.js';
import { dropSchema, requirePostgres, testSchemaName } from '../helpers/services.js';

/**
 * Two stores on one schema (two scale-mode processes) write to the same jobs at once: one
 * completes them, the other records progress and requests cancels, in the opposite order and
 * mixed across orgs, so every batch transaction locks job rows and takes the commit-order
 * position lock. Before the lock order was defined (position lock first, see docs/postgres.md)
 * PostgreSQL detected deadlocks here in nearly every round (each one a ~1 s wait plus a batch
 * redo); now no batch may need a redo, and the invariants hold.
 */
const url = await requirePostgres();

const ROUNDS = 4;
const JOBS_PER_ORG = 120;
const PER_TURN = 40;

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const shuffle = <T>(xs: readonly T[]): T[] => {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const k = Math.floor(Math.random() * (i + 1));
    [out[i], out[k]] = [out[k] as T, out[i] as T];
  }
  return out;
};
const settle = (p: Promise<unknown>): Promise<unknown> => p.catch((e: unknown) => e);

/** Issues `ops` PER_TURN at a time (each slice lands in one group-commit batch), then waits for all. */
async function burst(ops: Array<() => Promise<unknown>>): Promise<void> {
  const all: Array<Promise<unknown>> = [];
  for (let i = 0; i < ops.length; i += PER_TURN) {
    for (const op of ops.slice(i, i + PER_TURN)) all.push(settle(op()));
    await turn();
  }
  await Promise.all(all);
}

describe.skipIf(!url)('PostgreSQL lock order', () => {
  const schema = testSchemaName();
  const retries: unknown[] = [];
  const mk = (): JobStore =>
    createPostgresJobStore({ url: url!, schema, poolSize: 6, maxConcurrentBatches: 4, onBatchRetry: (e) => retries.push(e) });
  const a = mk();
  const b = mk();
  const admin = new pg.Client({ connectionString: url! });

  afterAll(async () => {
    await a.close();
    await b.close();
    await admin.end().catch(() => undefined);
    await dropSchema(url!, schema);
  });

  it('concurrent mixed batches of two processes on the same jobs never deadlock; one terminal state per job, gap-free event_seq', async () => {
    await a.migrate();
    await admin.connect();
    const orgs: OrgId[] = [asOrgId('org-x'), asOrgId('org-y')];
    let clock = 1_000;
    for (let round = 0; round < ROUNDS; round++) {
      const leases: ClaimedJob[] = [];
      for (const orgId of orgs) {
        await Promise.all(
          Array.from({ length: JOBS_PER_ORG }, () => {
            const now = ++clock;
            return a.submitJob({ jobId: newJobId(now), orgId, analyzer: 'noop', input: null, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now });
          }),
        );
        leases.push(...(await a.claimJobs({ orgId, limit: JOBS_PER_ORG, workerId: 'w', now: ++clock, leaseMs: 600_000, analyzers: null })));
      }
      expect(leases).toHaveLength(orgs.length * JOBS_PER_ORG);
      const lease = (j: ClaimedJob) => ({ orgId: j.orgId, jobId: j.jobId, attempt: j.attempt, leaseToken: j.leaseToken });
      // A completes the jobs (the one-statement path: rows locked in input order, position lock
      // mid-statement), both orgs in every batch (one group each). B records progress and
      // requests cancels (lock rows in id order, events appended at the end) in another order.
      const order = shuffle(leases);
      const now = ++clock;
      const opsA = order.map((j) => () => a.finishJob(lease(j), { status: 'completed', resultId: newResultId(Date.now()), payload: null }, now));
      const opsB = shuffle(leases).map((j, i) => () => (i % 2 === 0 ? b.requestCancel(j.orgId, j.jobId, now) : b.recordProgress(lease(j), 0.25, 'b', now)));
      await Promise.all([burst(opsA), burst(opsB)]);
    }

    expect(retries.map((e) => (e as { code?: string }).code)).toEqual([]);
    const s = `"${schema}"`;
    const jobs = (await admin.query<{ status: string; n: string }>(`SELECT status, count(*) AS n FROM ${s}.jobs GROUP BY status`)).rows;
    expect(jobs.every((r) => r.status === 'completed' || r.status === 'canceled')).toBe(true);
    expect(jobs.reduce((n, r) => n + Number(r.n), 0)).toBe(ROUNDS * orgs.length * JOBS_PER_ORG);
    // Exactly one terminal event per job, and it matches the row.
    const terminal = await admin.query(
      `SELECT j.job_id FROM ${s}.jobs j LEFT JOIN ${s}.job_events e
         ON e.org_id = j.org_id AND e.job_id = j.job_id AND e.type IN ('job.completed', 'job.canceled', 'job.failed')
       GROUP BY j.job_id, j.status HAVING count(e.*) <> 1 OR min(e.status) <> j.status`,
    );
    expect(terminal.rows).toEqual([]);
    // event_seq is 1..last_event_seq without gaps or duplicates; positions are unique.
    const gaps = await admin.query(
      `SELECT j.job_id FROM ${s}.jobs j JOIN ${s}.job_events e ON e.org_id = j.org_id AND e.job_id = j.job_id
       GROUP BY j.job_id, j.last_event_seq
       HAVING count(*) <> j.last_event_seq OR count(DISTINCT e.event_seq) <> j.last_event_seq OR min(e.event_seq) <> 1 OR max(e.event_seq) <> j.last_event_seq`,
    );
    expect(gaps.rows).toEqual([]);
    const pos = (await admin.query<{ n: string; d: string }>(`SELECT count(*) AS n, count(DISTINCT position) AS d FROM ${s}.job_events`)).rows[0];
    expect(pos?.n).toBe(pos?.d);
  }, 60_000);

  it('a claim by id (BullMQ dispatch) waiting for the position lock holds no job row lock', async () => {
    await a.migrate();
    const org = asOrgId('org-byid');
    const { job } = await a.submitJob({ jobId: newJobId(1), orgId: org, analyzer: 'noop', input: 1, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now: 1 });
    const holder = new pg.Client({ connectionString: url! });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`upshift.positions.${schema}`]);
      // From the other store (another process): its batch must wait for the position lock first.
      const claim = b.claimJobsById({ jobs: [{ orgId: org, jobId: job.jobId }], workerId: 'w', leaseMs: 1000, now: 10 });
      // Give the claim time to arrive and block on the position lock.
      await new Promise((r) => setTimeout(r, 300));
      // Its job row is not locked meanwhile: a writer holding the position lock can lock it
      // (a claim that locked the row first and then waited would deadlock with such a writer).
      const locked = await holder.query(`SELECT job_id FROM "${schema}".jobs WHERE org_id = $1 AND job_id = $2 FOR UPDATE NOWAIT`, [org, job.jobId]);
      expect(locked.rows).toHaveLength(1);
      await holder.query('COMMIT');
      const [r] = await claim;
      expect(r?.kind).toBe('claimed');
    } finally {
      await holder.end();
    }
  });
});
