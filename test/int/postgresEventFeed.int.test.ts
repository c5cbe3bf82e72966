import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresEventFeed, type PostgresEventFeed } from '../../src/adapters/feed/postgresEventFeed.js';
import { createPostgresJobStore } from '../../src/adapters/store/postgres/postgresJobStore.js';
import type { JobEvent } from '../../src/core/events.js';
import { asOrgId, newJobId, newResultId } from '../../src/core/ids.js';
import type { JobStore } from '../../src/ports/jobStore.js';
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
  let s1: JobStore;
  let s2: JobStore;
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
      await Promise.all(jobs.map((j) => store.finishJob({ orgId: org, jobId: j.jobId, attempt: j.attempt, leaseToken: j.leaseToken }, { status: 'completed', resultId: newResultId(), payload: null }, 1e6)));
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
});
