import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresJobStore, type PostgresJobStoreOptions } from '../../src/adapters/store/postgres/postgresJobStore.js';
import { loadMigrations, migrationsDir } from '../../src/adapters/store/postgres/postgresMigrator.js';
import { buildSql } from '../../src/adapters/store/postgres/postgresSql.js';
import { isUpshiftError } from '../../src/core/errors.js';
import { asOrgId, newJobId, newResultId, type OrgId } from '../../src/core/ids.js';
import type { JobStore } from '../../src/ports/jobStore.js';
import { jobStoreContract } from '../contracts/jobStore.contract.js';
import { dropSchema, freshPostgresStore, requirePostgres, testSchemaName } from '../helpers/services.js';

const url = await requirePostgres();

describe.skipIf(!url)('PostgreSQL store', () => {
  // A fresh schema per test (the contract wants an empty store each time), dropped afterwards.
  jobStoreContract('postgres', async () => {
    const { store, cleanup } = freshPostgresStore(url!, 6);
    return { store, cleanup };
  });
});

describe.skipIf(!url)('PostgreSQL specifics', () => {
  const open: JobStore[] = [];
  const schemas: string[] = [];
  const make = (schema: string, over: Partial<PostgresJobStoreOptions> = {}): JobStore => {
    const s = createPostgresJobStore({ url: url!, schema, poolSize: 4, ...over });
    open.push(s);
    return s;
  };
  const fresh = (): string => {
    const s = testSchemaName();
    schemas.push(s);
    return s;
  };
  let admin: pg.Client;
  beforeAll(async () => {
    admin = new pg.Client({ connectionString: url! });
    await admin.connect();
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });
  afterAll(async () => {
    await admin?.end();
    for (const s of schemas) await dropSchema(url!, s);
  });
  const codeOf = (p: Promise<unknown>): Promise<unknown> =>
    p.then(
      () => 'resolved',
      (e: unknown) => (isUpshiftError(e) ? e.code : e),
    );
  const org = asOrgId('org-a');
  const cmd = (i: number, orgId: OrgId = org) => ({
    jobId: newJobId(i), orgId, analyzer: 'noop', input: i, priority: 0, maxAttempts: 1,
    idempotencyKey: null, requestHash: null, traceContext: null, now: i,
  });

  it('warmUp opens every pool connection ahead of the first job and leaves each idle, outside any transaction', async () => {
    const schema = fresh();
    const app = `warm-${schema}`.slice(0, 63);
    const store = make(schema, { poolSize: 4, applicationName: app });
    await store.migrate();
    const backends = async (): Promise<string[]> =>
      (await admin.query<{ state: string }>('SELECT state FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid', [app])).rows.map((r) => r.state);
    expect((await backends()).length).toBeLessThan(4);
    await store.warmUp!();
    expect(await backends()).toEqual(['idle', 'idle', 'idle', 'idle']);
    // The warmed connections serve: a job goes through on them.
    const { job } = await store.submitJob(cmd(1));
    expect((await store.getJob(org, job.jobId))?.status).toBe('queued');
  });

  it('warmUp is best effort: with the database unreachable it resolves, and a closed store skips it', async () => {
    const unreachable = createPostgresJobStore({ url: 'postgres://postgres@127.0.0.1:1/test', schema: fresh(), poolSize: 2 });
    await expect(unreachable.warmUp!()).resolves.toBeUndefined();
    await unreachable.close();
    await expect(unreachable.warmUp!()).resolves.toBeUndefined();
  });

  it('finds the migrations folder beside the sources', () => {
    expect(migrationsDir().replace(/\\/g, '/')).toMatch(/src\/adapters\/store\/postgres\/migrations$/);
    expect(loadMigrations().map((m) => m.name)).toContain('0001_init');
  });

  it('records migrations in the ledger once; concurrent migrate() from many processes is safe', async () => {
    const schema = fresh();
    const stores = Array.from({ length: 5 }, () => make(schema));
    await expect(codeOf(stores[0]!.ping())).resolves.toBe('STORE_NOT_MIGRATED');
    const results = await Promise.all(stores.map((s) => s.migrate()));
    expect(results.flatMap((r) => r.applied)).toEqual(loadMigrations().map((m) => m.name));
    const rows = (await admin.query(`SELECT version, name, checksum, applied_at FROM "${schema}".upshift_migrations ORDER BY version`)).rows;
    expect(rows.map((r) => [r.version, r.name, r.checksum])).toEqual(loadMigrations().map((m) => [m.version, m.name, m.checksum]));
    for (const s of stores) await s.ping();
  });

  it('refuses a database migrated by newer code, and an edited migration', async () => {
    const schema = fresh();
    await make(schema).migrate();
    await admin.query(`INSERT INTO "${schema}".upshift_migrations (version, name, checksum, applied_at) VALUES (9999, '9999_future', 'x', 1)`);
    const store = make(schema);
    await expect(codeOf(store.migrate())).resolves.toBe('STORE_SCHEMA_TOO_NEW');
    await expect(codeOf(store.ping())).resolves.toBe('STORE_SCHEMA_TOO_NEW');
    await admin.query(`DELETE FROM "${schema}".upshift_migrations WHERE version = 9999`);
    await admin.query(`UPDATE "${schema}".upshift_migrations SET checksum = 'tampered' WHERE version = 1`);
    await expect(codeOf(make(schema).migrate())).resolves.toBe('STORE_CONFLICT');
  });

  it('STORE_NOT_MIGRATED before migrate, STORE_UNAVAILABLE after close and when the server is unreachable', async () => {
    const store = make(fresh());
    await expect(codeOf(store.getJob(org, newJobId(0)))).resolves.toBe('STORE_NOT_MIGRATED');
    await expect(codeOf(store.submitJob(cmd(1)))).resolves.toBe('STORE_NOT_MIGRATED');
    await store.migrate();
    await store.close();
    await expect(codeOf(store.getJob(org, newJobId(0)))).resolves.toBe('STORE_UNAVAILABLE');
    await expect(codeOf(store.submitJob(cmd(1)))).resolves.toBe('STORE_UNAVAILABLE');
    const nowhere = make(fresh(), { url: 'postgres://postgres@127.0.0.1:1/test' });
    await expect(codeOf(nowhere.ping())).resolves.toBe('STORE_UNAVAILABLE');
    await expect(codeOf(nowhere.submitJob(cmd(1)))).resolves.toBe('STORE_UNAVAILABLE');
  });

  it('a write pending at close() is committed before the pool closes', async () => {
    const schema = fresh();
    const store = make(schema);
    await store.migrate();
    const pending = store.submitJob(cmd(1));
    await store.close();
    const { job } = await pending;
    expect((await make(schema).getJob(org, job.jobId))?.status).toBe('queued');
  });

  it('several store instances (processes) claiming concurrently never double-claim', async () => {
    const schema = fresh();
    const stores = Array.from({ length: 3 }, () => make(schema, { poolSize: 4 }));
    await stores[0]!.migrate();
    const N = 600;
    for (let i = 0; i < N; i += 200) await Promise.all(Array.from({ length: 200 }, (_, k) => stores[(i + k) % 3]!.submitJob(cmd(i + k))));
    const claimed: string[] = [];
    await Promise.all(
      stores.map(async (s, w) => {
        for (;;) {
          const batch = await Promise.all(Array.from({ length: 4 }, () => s.claimJobs({ orgId: org, limit: 7, workerId: `w${w}`, now: 10_000, leaseMs: 1000, analyzers: null })));
          const ids = batch.flat().map((j) => j.jobId);
          if (ids.length === 0) return;
          claimed.push(...ids);
        }
      }),
    );
    expect(claimed).toHaveLength(N);
    expect(new Set(claimed).size).toBe(N);
  });

  it('positions are commit-ordered across instances: a reader following "after P" never skips an event', async () => {
    const schema = fresh();
    const writers = Array.from({ length: 3 }, () => make(schema, { poolSize: 4 }));
    await writers[0]!.migrate();
    const orgs = ['o1', 'o2', 'o3'].map(asOrgId);
    let done = false;
    const seen: number[] = [];
    const reader = (async () => {
      const c = new pg.Client({ connectionString: url! });
      await c.connect();
      let after = 0;
      try {
        for (;;) {
          // Read `done` before the query: a query started after it sees every commit.
          const writersDone = done;
          const rows = (await c.query(`SELECT position FROM "${schema}".job_events WHERE position > $1 ORDER BY position`, [after])).rows;
          for (const r of rows) seen.push(Number(r.position));
          if (rows.length > 0) after = Number(rows.at(-1).position);
          if (writersDone && rows.length === 0) break;
        }
      } finally {
        await c.end();
      }
    })();
    await Promise.all(
      writers.map(async (w, k) => {
        for (let round = 0; round < 30; round++) {
          await Promise.all(Array.from({ length: 1 + (round % 7) }, (_, i) => w.submitJob(cmd(round * 100 + i, orgs[(k + i) % 3]))));
        }
      }),
    );
    done = true;
    await reader;
    const all = (await admin.query(`SELECT position FROM "${schema}".job_events ORDER BY position`)).rows.map((r) => Number(r.position));
    expect(seen).toEqual(all);
  });

  it('analyzer output holding U+0000 (which PostgreSQL cannot store) is stored with U+FFFD instead of failing the job', async () => {
    const store = make(fresh());
    await store.migrate();
    const lease = async (i: number) => {
      await store.submitJob(cmd(i));
      const [c] = await store.claimJobs({ orgId: org, limit: 1, workerId: 'w', now: i, leaseMs: 60_000, analyzers: null });
      return { orgId: org, jobId: c!.jobId, attempt: c!.attempt, leaseToken: c!.leaseToken };
    };
    const l = await lease(1);
    await store.recordProgress(l, 0.5, 'half\u0000way', 2);
    const p1 = await store.recordPartial(l, 'chunk\u0000', { 'k\u0000': ['v\u0000'] }, 3);
    const p2 = await store.recordPartial(l, 'chunk\u0000', { other: 1 }, 4);
    expect(p1.created).toBe(true);
    expect(p2).toEqual({ result: p1.result, created: false });
    expect(p1.result).toMatchObject({ chunkKey: 'chunk\uFFFD', payload: { 'k\uFFFD': ['v\uFFFD'] } });
    const done = await store.finishJob(l, { status: 'completed', resultId: newResultId(Date.now()), payload: { s: 'a\u0000b' } }, 5);
    expect((await store.getResult(org, done.resultId!))?.payload).toEqual({ s: 'a\uFFFDb' });
    expect((await store.getJob(org, l.jobId))?.progress.message).toBe('half\uFFFDway');
    const l2 = await lease(10);
    const failed = await store.finishJob(l2, { status: 'failed', error: { code: 'E', message: 'bad\u0000byte' } }, 11);
    expect(failed.error).toEqual({ code: 'E', message: 'bad\uFFFDbyte' });
    const events = await store.listEvents(org, l2.jobId, 0, 10);
    expect(events.at(-1)?.payload).toMatchObject({ error: { message: 'bad\uFFFDbyte' } });
  });

  it('listings work on a database whose default collation is not C (ICU en-US, like most installs)', async () => {
    // Under en-US, punctuation sorts before letters: a "no cursor" bound like '~' would be
    // less than every job id and the first page would be empty.
    const db = `upshift_t_icu_${process.pid}_${Date.now() % 100000}`;
    await admin.query(`CREATE DATABASE ${db} LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8' TEMPLATE template0`);
    const u = new URL(url!);
    u.pathname = `/${db}`;
    const store = createPostgresJobStore({ url: u.toString(), schema: 'upshift', poolSize: 2 });
    try {
      await store.migrate();
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push((await store.submitJob(cmd(1_000 + i))).job.jobId);
      const page1 = await store.listJobs(org, { limit: 3 });
      expect(page1.map((j) => j.jobId)).toEqual([...ids].reverse().slice(0, 3));
      const page2 = await store.listJobs(org, { limit: 3, beforeJobId: page1[2]!.jobId });
      expect(page2.map((j) => j.jobId)).toEqual([...ids].reverse().slice(3));
      expect((await store.listJobs(org, { limit: 10, status: 'queued' })).map((j) => j.jobId)).toEqual([...ids].reverse());
    } finally {
      await store.close();
      await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    }
  });

  it('a statement failing inside a pipelined batch (submits, completions, a claim) fails alone; the others commit', async () => {
    const schema = fresh();
    const store = make(schema);
    await store.migrate();
    const { job: first } = await store.submitJob(cmd(1));
    await store.submitJob(cmd(2));
    const [claimed] = await store.claimJobs({ orgId: org, limit: 1, workerId: 'w', now: 10, leaseMs: 1000, analyzers: null });
    expect(claimed?.jobId).toBe(first.jobId);
    const lease = { orgId: org, jobId: first.jobId, attempt: 1, leaseToken: claimed!.leaseToken };
    // One event-loop turn: a completion, two submits (one reuses a job id: primary key
    // violation inside the submit statement) and a claim, sent back to back in one transaction.
    const dup = { ...cmd(3), jobId: first.jobId };
    const settled = await Promise.all([
      codeOf(store.finishJob(lease, { status: 'completed', resultId: newResultId(20), payload: 1 }, 20)),
      codeOf(store.submitJob(dup)),
      codeOf(store.submitJob(cmd(4))),
      codeOf(store.claimJobs({ orgId: org, limit: 5, workerId: 'w', now: 30, leaseMs: 1000, analyzers: null })),
    ]);
    expect(settled.slice(0, 3)).toEqual(['resolved', 'STORE_CONFLICT', 'resolved']);
    expect(settled[3]).toBe('resolved');
    expect((await store.getJob(org, first.jobId))?.status).toBe('completed');
    expect(await store.listJobs(org, { limit: 10 })).toHaveLength(3);
    const seqs = (await admin.query(`SELECT job_id, array_agg(event_seq ORDER BY event_seq) AS s FROM "${schema}".job_events GROUP BY job_id`)).rows;
    for (const r of seqs as Array<{ s: number[] }>) expect(r.s).toEqual(r.s.map((_, i) => i + 1));
  });

  it('claims and completions reach jobs by key even with a plan cached while the table was tiny (no statistics)', async () => {
    const schema = fresh();
    await make(schema).migrate();
    const sql = buildSql(schema);
    const c = new pg.Client({ connectionString: url! });
    await c.connect();
    try {
      // What a write batch runs with: the application role and org, the settings of the position
      // lock statement, and the generic plan each connection caches after a few executions.
      await c.query('BEGIN');
      await c.query(`SELECT set_config('role', 'upshift_app', true), set_config('upshift.org_id', 'org-a', true)`);
      await c.query(sql.positionLock.replace('$1', `'k'`));
      await c.query(`SET LOCAL plan_cache_mode = force_generic_plan`);
      const generic = async (name: string, text: string, args: string): Promise<string> => {
        await c.query(`PREPARE ${name} AS ${text}`);
        return (await c.query(`EXPLAIN EXECUTE ${name}(${args})`)).rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n');
      };
      const claim = await generic('c', sql.claim, `'org-a', 1, NULL, 10, 't', 2, 'w', 'k', 'ch'`);
      const complete = await generic(
        'd',
        sql.completeJobs,
        `'org-a', ARRAY['job_1'], ARRAY[1], ARRAY['t'], ARRAY['res_1'], ARRAY[1::bigint], ARRAY['1']::json[], 'k', 'ch', ARRAY['e'], ARRAY['x'], true, ARRAY['n']`,
      );
      for (const plan of [claim, complete]) {
        expect(plan).not.toMatch(/Seq Scan on jobs/);
        // Never "every job of the org" through the primary key (the RLS qual as index condition).
        expect(plan).not.toMatch(/Index Cond: \(org_id = current_setting/);
      }
      expect(claim).toMatch(/Index Scan using jobs_pkey on jobs j[^\n]*\n\s*Index Cond: \(\(org_id = picked\.org_id\) AND \(job_id = picked\.job_id\)\)/);
      expect(complete).toMatch(/Index Scan using jobs_pkey on jobs j[^\n]*\n\s*Index Cond: \(\(org_id = i\.org_id\) AND \(job_id = i\.job_id\)\)/);
      await c.query('ROLLBACK');
    } finally {
      await c.end();
    }
  });

  it('a one-tenant job transaction takes the position lock with its tenant switch: BEGIN, lock + switch, the statement, COMMIT', async () => {
    const schema = fresh();
    const store = make(schema);
    await store.migrate();
    const sql = buildSql(schema);
    // What the store's pooled clients send to the real server, in order.
    const sent: string[] = [];
    const query = pg.Client.prototype.query;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const c = args[0];
      sent.push(typeof c === 'string' ? c : (c as { text: string }).text);
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof query;
    try {
      await store.submitJob(cmd(1));
    } finally {
      pg.Client.prototype.query = query;
    }
    expect(sent).toEqual(['BEGIN', sql.positionLockAsTenant, sql.insertJobs, 'COMMIT']);
    expect(await store.listJobs(org, { limit: 10 })).toHaveLength(1);
  });

  it('the claim uses the claim index and the loose index scan walks it', async () => {
    const schema = fresh();
    await make(schema).migrate();
    await admin.query(`SET enable_seqscan = off`);
    try {
      const plan = async (text: string, values: unknown[]): Promise<string> =>
        (await admin.query(`EXPLAIN ${text}`, values)).rows.map((r) => r['QUERY PLAN']).join('\n');
      const sql = buildSql(schema);
      expect(await plan(sql.claim, ['a', 1, null, 10, 't', 2, 'w', 'k', 'c'])).toMatch(/Index Scan using jobs_claim/);
      expect(await plan(sql.readyOrgs, [1, null])).toMatch(/jobs_claim/);
      // Lease recovery reads the running jobs through jobs_running (no index of its own since 0013).
      const recovery = await plan(sql.expiredLeases, [1, 10]);
      expect(recovery).toMatch(/Index Scan using jobs_running/);
      expect(recovery).not.toMatch(/jobs_lease_expiry/);
      const indexes = await admin.query(`SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'jobs' ORDER BY 1`, [schema]);
      expect(indexes.rows.map((r) => r.indexname)).toEqual(['jobs_claim', 'jobs_idempotency', 'jobs_org_unsuccessful', 'jobs_pkey', 'jobs_running']);
    } finally {
      await admin.query(`RESET enable_seqscan`);
    }
  });
});
