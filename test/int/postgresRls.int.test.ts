import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresJobStore } from '../../src/adapters/store/postgres/postgresJobStore.js';
import { asOrgId, newJobId, newResultId } from '../../src/core/ids.js';
import type { JobStore } from '../../src/ports/jobStore.js';
import { dropSchema, requirePostgres, testSchemaName } from '../helpers/services.js';

const url = await requirePostgres();

/**
 * Row-level security, checked below the store: raw SQL as the application role. The store's
 * own org_id filters are not involved here — this is the second fence on its own.
 */
describe.skipIf(!url)('PostgreSQL row-level security', () => {
  const schema = testSchemaName();
  const A = asOrgId('org-a');
  const B = asOrgId('org-b');
  let store: JobStore;
  let client: pg.Client;
  let jobA: string;
  let jobB: string;
  let resultB: string;

  beforeAll(async () => {
    store = createPostgresJobStore({ url: url!, schema });
    await store.migrate();
    const submit = async (orgId: typeof A) =>
      (await store.submitJob({ jobId: newJobId(1), orgId, analyzer: 'noop', input: {}, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now: 1 })).job.jobId;
    jobA = await submit(A);
    jobB = await submit(B);
    const [claimed] = await store.claimJobs({ orgId: B, limit: 1, workerId: 'w', now: 2, leaseMs: 1000, analyzers: null });
    resultB = newResultId(Date.now());
    await store.finishJob({ orgId: B, jobId: claimed!.jobId, attempt: 1, leaseToken: claimed!.leaseToken }, { status: 'completed', resultId: resultB as never, payload: 1 }, 3);
    await store.createApiKey({ keyId: 'key_b', orgId: B, hash: 'x'.repeat(64), label: null, createdAt: 1, revokedAt: null });
    client = new pg.Client({ connectionString: url! });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
    await store?.close();
    await dropSchema(url!, schema);
  });

  /** Runs `body` in a transaction as upshift_app, optionally bound to an org; always rolls back. */
  const asApp = async <T>(org: string | null, body: () => Promise<T>): Promise<T> => {
    await client.query('BEGIN');
    try {
      await client.query('SET LOCAL ROLE upshift_app');
      if (org !== null) await client.query(`SELECT set_config('upshift.org_id', $1, true)`, [org]);
      return await body();
    } finally {
      await client.query('ROLLBACK');
    }
  };
  const count = async (table: string, where = 'true', values: unknown[] = []): Promise<number> =>
    Number((await client.query(`SELECT count(*) AS n FROM "${schema}".${table} WHERE ${where}`, values)).rows[0].n);
  const TABLES = ['jobs', 'job_events', 'job_results', 'removed_results', 'api_keys', 'webhook_endpoints', 'notification_outbox', 'notifications'];

  it('every tenant table has RLS enabled and forced, and is not owned by the application role', async () => {
    const r = await client.query(
      `SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner) AS owner
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname = ANY($2)`,
      [schema, TABLES],
    );
    expect(r.rows.map((x) => x.relname).sort()).toEqual([...TABLES].sort());
    for (const row of r.rows) {
      expect(row, row.relname).toMatchObject({ relrowsecurity: true, relforcerowsecurity: true });
      expect(row.owner).not.toBe('upshift_app');
    }
  });

  it('with no org setting the application role sees 0 rows in every tenant table', async () => {
    // The store wrote rows for both orgs (superuser view).
    expect(await count('jobs')).toBe(2);
    expect(await count('notification_outbox')).toBe(1);
    await asApp(null, async () => {
      for (const t of TABLES) expect(await count(t), t).toBe(0);
    });
  });

  it("with org A set, org B's rows are invisible, even when asked for by id", async () => {
    await asApp(A, async () => {
      expect(await count('jobs')).toBe(1);
      expect(await count('jobs', 'job_id = $1', [jobA])).toBe(1);
      expect(await count('jobs', 'job_id = $1', [jobB])).toBe(0);
      expect(await count('jobs', 'org_id = $1', [B])).toBe(0);
      expect(await count('job_events', 'job_id = $1', [jobB])).toBe(0);
      expect(await count('job_results', 'result_id = $1', [resultB])).toBe(0);
      expect(await count('api_keys', 'key_id = $1', ['key_b'])).toBe(0);
      // The notification tables too: B's outbox entry is invisible to A.
      expect(await count('notification_outbox', 'job_id = $1', [jobB])).toBe(0);
      // Writes cannot reach them either: the UPDATE matches nothing.
      const upd = await client.query(`UPDATE "${schema}".jobs SET priority = 99 WHERE job_id = $1`, [jobB]);
      expect(upd.rowCount).toBe(0);
    });
    await asApp(B, async () => {
      expect(await count('jobs', 'job_id = $1', [jobB])).toBe(1);
      expect(await count('notification_outbox', 'job_id = $1', [jobB])).toBe(1);
      expect(await count('job_results', 'result_id = $1', [resultB])).toBe(1);
    });
  });

  it("an INSERT carrying another org's id is rejected by the policy (WITH CHECK)", async () => {
    await asApp(A, async () => {
      const err = await client
        .query(`INSERT INTO "${schema}".api_keys (key_id, org_id, hash, created_at) VALUES ('k', $1, 'h', 1)`, [B])
        .then(() => null, (e: unknown) => e as { code?: string; message: string });
      expect(err?.code).toBe('42501');
      expect(err?.message).toMatch(/row-level security/);
    });
    await asApp(A, async () => {
      const err = await client
        .query(`UPDATE "${schema}".jobs SET org_id = $1 WHERE job_id = $2`, [B, jobA])
        .then(() => null, (e: unknown) => e as { code?: string });
      expect(err?.code).toBe('42501');
    });
  });

  it('the application role has no DELETE and no DDL on tenant tables', async () => {
    await asApp(A, async () => {
      const err = await client.query(`ALTER TABLE "${schema}".jobs DISABLE ROW LEVEL SECURITY`).then(() => null, (e: unknown) => e as { code?: string });
      expect(err?.code).toBe('42501');
    });
    await asApp(A, async () => {
      const err = await client.query(`DELETE FROM "${schema}".jobs`).then(() => null, (e: unknown) => e as { code?: string });
      expect(err?.code).toBe('42501');
    });
    // Retention deletes events and results as the internal role; the application role never can.
    for (const t of ['job_events', 'job_results', 'removed_results', 'notifications']) {
      await asApp(A, async () => {
        const err = await client.query(`DELETE FROM "${schema}".${t}`).then(() => null, (e: unknown) => e as { code?: string });
        expect(err?.code, t).toBe('42501');
      });
    }
  });
});

/** Managed PostgreSQL gives no superuser: an owner with only CREATEROLE must be enough. */
describe.skipIf(!url)('PostgreSQL store owned by a non-superuser', () => {
  const owner = `upshift_t_owner_${process.pid}`;
  const schema = testSchemaName();
  let admin: pg.Client;

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: url! });
    await admin.connect();
    await admin.query(`CREATE ROLE ${owner} LOGIN CREATEROLE`);
    await admin.query(`GRANT CREATE ON DATABASE ${admin.database ?? 'test'} TO ${owner}`);
  });
  afterAll(async () => {
    await dropSchema(url!, schema);
    await admin.query(`REVOKE CREATE ON DATABASE ${admin.database ?? 'test'} FROM ${owner}`).catch(() => undefined);
    await admin.query(`DROP OWNED BY ${owner}`).catch(() => undefined);
    await admin.query(`DROP ROLE IF EXISTS ${owner}`);
    await admin.end();
  });

  it('migrates, and the whole job lifecycle works under RLS with FORCE on the owner', async () => {
    const u = new URL(url!);
    u.username = owner;
    u.password = '';
    const store = createPostgresJobStore({ url: u.toString(), schema });
    try {
      expect((await store.migrate()).applied).toContain('0001_init');
      const org = asOrgId('org-o');
      const { job } = await store.submitJob({ jobId: newJobId(1), orgId: org, analyzer: 'noop', input: {}, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now: 1 });
      expect(await store.readyOrgs(2, null)).toEqual([{ orgId: 'org-o', running: 0 }]);
      const [claimed] = await store.claimJobs({ orgId: org, limit: 5, workerId: 'w', now: 2, leaseMs: 100, analyzers: null });
      const done = await store.finishJob({ orgId: org, jobId: job.jobId, attempt: 1, leaseToken: claimed!.leaseToken }, { status: 'completed', resultId: newResultId(Date.now()), payload: 1 }, 3);
      expect(done.status).toBe('completed');
      expect((await store.listEvents(org, job.jobId, 0, 10)).map((e) => e.type)).toEqual(['job.queued', 'job.started', 'job.completed']);
      expect(await store.getJob(asOrgId('org-x'), job.jobId)).toBeUndefined();
      const owned = await admin.query(`SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE oid = $1::regclass`, [`"${schema}".jobs`]);
      expect(owned.rows[0].owner).toBe(owner);
    } finally {
      await store.close();
    }
  });
});
