import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresEventFeed, type PostgresEventFeed } from '../../src/adapters/feed/postgresEventFeed.js';
import { createPostgresJobStore } from '../../src/adapters/store/postgres/postgresJobStore.js';
import type { JobEvent } from '../../src/core/events.js';
import { asOrgId, newJobId, newResultId, newToken } from '../../src/core/ids.js';
import { noopAnalyzer, sleepAnalyzer } from '../../src/analyzers/index.js';
import { AnalyzerRegistry } from '../../src/app/analyzerRegistry.js';
import { WorkerRuntime } from '../../src/app/workerRuntime.js';
import { systemClock } from '../../src/ports/clock.js';
import type { DeliveryStore } from '../../src/ports/deliveryStore.js';
import type { JobStore } from '../../src/ports/jobStore.js';
import { silentLogger } from '../../src/ports/logger.js';
import { dropSchema, requirePostgres, testSchemaName } from '../helpers/services.js';

const url = await requirePostgres();

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Two store instances stand in for two processes; each has its own feed. */
describe.skipIf(!url)('PostgreSQL event feed (LISTEN/NOTIFY)', () => {
  const schema = testSchemaName();
  let s1: JobStore & DeliveryStore;
  let s2: JobStore & DeliveryStore;
  let feed2: PostgresEventFeed;
  const got: JobEvent[] = [];
  const errors: unknown[] = [];

  beforeAll(async () => {
    s1 = createPostgresJobStore({ url: url!, schema, poolSize: 4 });
    s2 = createPostgresJobStore({ url: url!, schema, poolSize: 4 });
    await s1.migrate();
    feed2 = createPostgresEventFeed({ url: url!, schema, pollMs: 60_000, onError: (e) => errors.push(e) });
    feed2.subscribe((evs) => got.push(...evs));
    await feed2.ready();
  });
  afterAll(async () => {
    await feed2?.close();
    await s1?.close();
    await s2?.close();
    await dropSchema(url!, schema);
  });

  const run = async (store: JobStore, n: number, orgName: string): Promise<void> => {
    const org = asOrgId(orgName);
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        store.submitJob({ jobId: newJobId(i), orgId: org, analyzer: 'noop', input: i, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now: i }),
      ),
    );
    for (;;) {
      const jobs = await store.claimJobs({ orgId: org, limit: 25, workerId: 'w', now: 1e6, leaseMs: 1000, analyzers: null });
      if (jobs.length === 0) break;
      await Promise.all(jobs.map((j) => store.finishJob({ orgId: org, jobId: j.jobId, attempt: j.attempt, leaseToken: j.leaseToken }, { status: 'completed', resultId: newResultId(Date.now()), payload: null }, 1e6)));
    }
  };

  const allEvents = async (): Promise<number[]> => {
    const c = new pg.Client({ connectionString: url! });
    await c.connect();
    try {
      return (await c.query(`SELECT position FROM "${schema}".job_events ORDER BY position`)).rows.map((r) => Number(r.position));
    } finally {
      await c.end();
    }
  };

  it("delivers another process's committed events in position order, without gaps or duplicates", async () => {
    // Writes from both "processes" interleave; the feed of process 2 must see all of them.
    await Promise.all([run(s1, 120, 'org-1'), run(s2, 80, 'org-2'), run(s1, 50, 'org-3')]);
    const all = await allEvents();
    await waitFor(() => got.length >= all.length);
    expect(got.map((e) => e.position)).toEqual(all);
    const one = got.find((e) => e.type === 'job.completed');
    expect(one).toMatchObject({ status: 'completed', payload: { attempt: 1 } });
  });

  it('reconnects after the connection is killed and catches up from the last delivered position', async () => {
    const admin = new pg.Client({ connectionString: url! });
    await admin.connect();
    try {
      const killed = await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()`, [`upshift-feed:${schema}`]);
      expect(killed.rowCount).toBeGreaterThan(0);
    } finally {
      await admin.end();
    }
    // Committed while the feed is (probably) disconnected.
    await run(s1, 40, 'org-4');
    const all = await allEvents();
    await waitFor(() => got.length >= all.length);
    expect(got.map((e) => e.position)).toEqual(all);
    expect(errors.length).toBeGreaterThan(0);
  });

  it("signals another process's committed webhook endpoint changes with their org, none for a failed write, and null after a reconnect", async () => {
    const signals: (string | null)[] = [];
    const off = feed2.onEndpointsChanged((org) => signals.push(org));
    try {
      const endpoint = { endpointId: newToken('whe_'), orgId: asOrgId('org-hooks'), url: 'https://example.com/hook', description: null, eventTypes: ['async.job.completed' as const], secret: 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=', now: 1 };
      await s1.createWebhookEndpoint(endpoint);
      await waitFor(() => signals.length === 1);
      expect(signals).toEqual(['org-hooks']);
      // The same id again: the insert fails, its transaction (or savepoint) rolls back, and the
      // NOTIFY with it. An update by the other store, then a delete, signal one each.
      await expect(s1.createWebhookEndpoint(endpoint)).rejects.toThrow();
      expect(await s2.updateWebhookEndpoint(endpoint.orgId, endpoint.endpointId, { enabled: false }, 2)).toMatchObject({ enabled: false });
      expect(await s2.deleteWebhookEndpoint(endpoint.orgId, endpoint.endpointId)).toBe(true);
      await waitFor(() => signals.length >= 3);
      await new Promise((r) => setTimeout(r, 100));
      expect(signals).toEqual(['org-hooks', 'org-hooks', 'org-hooks']);

      // Changes committed while the feed reconnects may be missed: it says so with null.
      const admin = new pg.Client({ connectionString: url! });
      await admin.connect();
      try {
        await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()`, [`upshift-feed:${schema}`]);
      } finally {
        await admin.end();
      }
      await waitFor(() => signals.length === 4);
      expect(signals[3]).toBeNull();
    } finally {
      off();
    }
  });
});

/**
 * The feed of the process that owns store 1 takes store 1's commits from memory when they
 * continue the feed without a gap; store 2's commits and a rolled-back position (a gap no
 * commit will ever fill) are read from the database. Same result as reading everything.
 */
describe.skipIf(!url)('PostgreSQL event feed with local commits', () => {
  const schema = testSchemaName();
  let s1: JobStore;
  let s2: JobStore;
  let feed1: PostgresEventFeed;
  const got: JobEvent[] = [];

  beforeAll(async () => {
    s1 = createPostgresJobStore({ url: url!, schema, poolSize: 4 });
    s2 = createPostgresJobStore({ url: url!, schema, poolSize: 4 });
    await s1.migrate();
    feed1 = createPostgresEventFeed({ url: url!, schema, pollMs: 60_000, local: s1 });
    feed1.subscribe((evs) => got.push(...evs));
    await feed1.ready();
  });
  afterAll(async () => {
    await feed1?.close();
    await s1?.close();
    await s2?.close();
    await dropSchema(url!, schema);
  });

  const run = async (store: JobStore, n: number, orgName: string): Promise<void> => {
    const org = asOrgId(orgName);
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        store.submitJob({ jobId: newJobId(i), orgId: org, analyzer: 'noop', input: i, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now: i }),
      ),
    );
    for (;;) {
      const jobs = await store.claimJobs({ orgId: org, limit: 20, workerId: 'w', now: 1e6, leaseMs: 1000, analyzers: null });
      if (jobs.length === 0) break;
      await Promise.all(jobs.map((j) => store.finishJob({ orgId: org, jobId: j.jobId, attempt: j.attempt, leaseToken: j.leaseToken }, { status: 'completed', resultId: newResultId(Date.now()), payload: null }, 1e6)));
    }
  };

  it('delivers local and remote commits in position order, across a rolled-back gap, without duplicates', async () => {
    const admin = new pg.Client({ connectionString: url! });
    await admin.connect();
    try {
      await run(s1, 30, 'org-a');
      // A transaction that draws a position and rolls back: a gap nothing will ever fill.
      await admin.query('BEGIN');
      await admin.query(`INSERT INTO "${schema}".job_events (job_id, event_seq, org_id, type, status, payload, occurred_at) VALUES ('job_x', 1, 'org-x', 'job.queued', 'queued', '{}', 0)`);
      await admin.query('ROLLBACK');
      await run(s1, 5, 'org-a');
      // Another writer's commit that sends no NOTIFY: the feed learns of it only by reading,
      // which the next local commit (behind it) must trigger instead of skipping it.
      await admin.query(
        `INSERT INTO "${schema}".job_events (job_id, event_seq, org_id, type, status, payload, occurred_at) VALUES ('job_y', 1, 'org-y', 'job.queued', 'queued', '{}', 0)`,
      );
      await run(s1, 5, 'org-a');
      await Promise.all([run(s1, 60, 'org-b'), run(s2, 40, 'org-c'), run(s1, 25, 'org-d')]);
      await run(s1, 10, 'org-e');
      const all = (await admin.query(`SELECT position FROM "${schema}".job_events ORDER BY position`)).rows.map((r) => Number(r.position));
      await waitFor(() => got.length >= all.length);
      await new Promise((r) => setTimeout(r, 50));
      expect(got.map((e) => e.position)).toEqual(all);
      expect(got.filter((e) => e.type === 'job.completed' && e.orgId === 'org-c')).toHaveLength(40);
      expect(got.filter((e) => e.jobId === 'job_y')).toHaveLength(1);
    } finally {
      await admin.end();
    }
  });
});

/**
 * Process A (a store, no worker) submits and cancels; process B (its own store, its own feed,
 * a worker that never polls) runs the jobs: the NOTIFY feed is the wake-up and the cancel signal.
 */
describe.skipIf(!url)('PostgreSQL feed as cross-process worker wake-up and cancel signal', () => {
  const schema = testSchemaName();
  let api: JobStore;
  let workerStore: JobStore;
  let feed: PostgresEventFeed;
  let worker: WorkerRuntime;
  const org = asOrgId('org-w');

  beforeAll(async () => {
    api = createPostgresJobStore({ url: url!, schema, poolSize: 3 });
    workerStore = createPostgresJobStore({ url: url!, schema, poolSize: 3 });
    await api.migrate();
    feed = createPostgresEventFeed({ url: url!, schema, pollMs: 60_000 });
    await feed.ready();
    const registry = new AnalyzerRegistry();
    registry.register(noopAnalyzer);
    registry.register(sleepAnalyzer);
    worker = new WorkerRuntime({
      store: workerStore, feed, registry, clock: systemClock, logger: silentLogger, workerId: 'wb', concurrency: 4,
      leaseMs: 30_000, heartbeatMs: 10_000, pollMs: 60_000, cancelGraceMs: 1_000, defaultTimeoutMs: 60_000,
      backoff: { baseMs: 1000, maxMs: 60_000, jitter: 0 }, fairness: { defaultWeight: 1, weights: {}, defaultMaxRunning: 0, maxRunning: {} },
    });
    worker.start();
    // The worker's first claim round runs at start; give it time to go idle (it then sleeps 60 s).
    await new Promise((r) => setTimeout(r, 200));
  });
  afterAll(async () => {
    await worker?.stop(1_000);
    await feed?.close();
    await api?.close();
    await workerStore?.close();
    await dropSchema(url!, schema);
  });

  const submit = async (analyzer: string, input: unknown) =>
    (await api.submitJob({ jobId: newJobId(Date.now()), orgId: org, analyzer, input: input as never, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now: Date.now() })).job;

  it('a job submitted by another process starts without polling', async () => {
    const started = Date.now();
    const job = await submit('noop', {});
    let status = '';
    for (;;) {
      status = (await api.getJob(org, job.jobId))!.status;
      if (status === 'completed' || Date.now() - started > 5_000) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(status).toBe('completed');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('a cancel requested by another process aborts the running job', async () => {
    const job = await submit('sleep', { ms: 30_000 });
    for (let i = 0; i < 500 && (await api.getJob(org, job.jobId))!.status !== 'running'; i++) await new Promise((r) => setTimeout(r, 10));
    const t = Date.now();
    await api.requestCancel(org, job.jobId, Date.now());
    let status = '';
    for (let i = 0; i < 500 && status !== 'canceled'; i++) {
      status = (await api.getJob(org, job.jobId))!.status;
      if (status !== 'canceled') await new Promise((r) => setTimeout(r, 10));
    }
    expect(status).toBe('canceled');
    expect(Date.now() - t).toBeLessThan(5_000);
  });
});
