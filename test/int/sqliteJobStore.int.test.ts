import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadSqliteDriver } from '../../src/adapters/store/sqlite/sqliteDriver.js';
import type { Worker } from 'node:worker_threads';
import { openSqliteConnection } from '../../src/adapters/store/sqlite/sqliteConnection.js';
import { createSqliteJobStore } from '../../src/adapters/store/sqlite/sqliteJobStore.js';
import { ThreadWriter } from '../../src/adapters/store/sqlite/sqliteWriter.js';
import { applyMigrations, loadMigrations, migrationsDir, type Migration } from '../../src/adapters/store/sqlite/sqliteMigrator.js';
import { DELIVERY_QUERY_SQL } from '../../src/adapters/store/sqlite/sqliteDeliveryQueries.js';
import { QUERY_SQL } from '../../src/adapters/store/sqlite/sqliteQueries.js';
import { isUpshiftError } from '../../src/core/errors.js';
import { asOrgId, newJobId } from '../../src/core/ids.js';
import type { JobStore } from '../../src/ports/jobStore.js';
import { jobStoreContract } from '../contracts/jobStore.contract.js';

/** The driver the adapter uses on this Node (better-sqlite3 12 on Node 20, 13 on Node >= 22). */
const Database = loadSqliteDriver();

const dir = mkdtempSync(join(tmpdir(), 'upshift-sqlite-'));
let n = 0;
const freshFile = (): string => join(dir, `store-${process.pid}-${++n}.db`);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

// The default: writes run in the writer thread (ThreadWriter).
jobStoreContract('sqlite', async () => {
  const store = createSqliteJobStore({ file: freshFile() });
  return { store, cleanup: () => store.close() };
});

// The same contract with the in-thread writer (InlineWriter; `:memory:` databases use it).
jobStoreContract('sqlite-inline-writer', async () => {
  const store = createSqliteJobStore({ file: freshFile(), writer: 'inline' });
  return { store, cleanup: () => store.close() };
});

describe('SQLite specifics', () => {
  const open: JobStore[] = [];
  const make = (file: string): JobStore => {
    const s = createSqliteJobStore({ file });
    open.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });
  const codeOf = (p: Promise<unknown>): Promise<unknown> =>
    p.then(
      () => 'resolved',
      (e: unknown) => (isUpshiftError(e) ? e.code : e),
    );

  it('finds the migrations folder beside the sources', () => {
    expect(migrationsDir().replace(/\\/g, '/')).toMatch(/src\/adapters\/store\/sqlite\/migrations$/);
    expect(loadMigrations().map((m) => m.name)).toContain('0001_init');
  });

  it('records every migration in the ledger with its checksum, once', async () => {
    const file = freshFile();
    const store = make(file);
    await expect(codeOf(store.ping())).resolves.toBe('STORE_NOT_MIGRATED');
    const { applied } = await store.migrate();
    expect(applied).toEqual(loadMigrations().map((m) => m.name));
    await store.ping();
    const db = new Database(file, { readonly: true });
    const rows = db.prepare('SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version').all() as Array<{
      version: number; name: string; checksum: string; applied_at: number;
    }>;
    db.close();
    expect(rows.map((r) => [r.version, r.name, r.checksum])).toEqual(loadMigrations().map((m) => [m.version, m.name, m.checksum]));
    expect(rows.every((r) => r.applied_at > 0)).toBe(true);
    // A second store on the same file sees the schema as current.
    const other = make(file);
    expect((await other.migrate()).applied).toEqual([]);
  });

  it('refuses a database migrated by newer code', async () => {
    const file = freshFile();
    await make(file).migrate();
    const db = new Database(file);
    db.prepare(`INSERT INTO schema_migrations (version, name, applied_at, checksum) VALUES (9999, '9999_future', 1, 'x')`).run();
    db.close();
    const store = make(file);
    await expect(codeOf(store.migrate())).resolves.toBe('STORE_SCHEMA_TOO_NEW');
    await expect(codeOf(store.ping())).resolves.toBe('STORE_SCHEMA_TOO_NEW');
  });

  it('refuses a migration that was edited after it was applied', async () => {
    const file = freshFile();
    await make(file).migrate();
    const db = new Database(file);
    db.prepare(`UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1`).run();
    db.close();
    await expect(codeOf(make(file).migrate())).resolves.toBe('STORE_CONFLICT');
  });

  it('puts the database file in WAL mode', async () => {
    const file = freshFile();
    await make(file).migrate();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('opens its connections with an 8 MiB page cache (a COMMIT after a page split walks every cached page)', () => {
    const db = openSqliteConnection(freshFile(), 0);
    try {
      expect(db.pragma('cache_size', { simple: true })).toBe(-8192);
    } finally {
      db.close();
    }
  });

  it('answers STORE_NOT_MIGRATED for use before migrate and STORE_UNAVAILABLE after close', async () => {
    const store = make(freshFile());
    await expect(codeOf(store.getJob(asOrgId('a'), newJobId(0)))).resolves.toBe('STORE_NOT_MIGRATED');
    await store.migrate();
    await store.close();
    await expect(codeOf(store.getJob(asOrgId('a'), newJobId(0)))).resolves.toBe('STORE_UNAVAILABLE');
  });

  for (const writer of ['thread', 'inline'] as const) {
    it(`${writer} writer: a write whose arguments cannot be serialised fails alone; the writes beside it commit`, async () => {
      const store = createSqliteJobStore({ file: freshFile(), writer });
      open.push(store);
      await store.migrate();
      const cmd = (i: number, input: unknown) => ({
        jobId: newJobId(i), orgId: asOrgId('a'), analyzer: 'noop', input: input as null, priority: 0, maxAttempts: 1,
        idempotencyKey: null, requestHash: null, traceContext: null, now: i,
      });
      const [good, bad, alsoGood] = await Promise.allSettled([
        store.submitJob(cmd(1, { n: 1 })),
        store.submitJob(cmd(2, { n: 10n })),
        store.submitJob(cmd(3, [1, 2])),
      ]);
      expect(good.status).toBe('fulfilled');
      expect(alsoGood.status).toBe('fulfilled');
      expect(bad.status).toBe('rejected');
      expect(isUpshiftError((bad as PromiseRejectedResult).reason)).toBe(true);
      expect((await store.listJobs(asOrgId('a'), { limit: 10 })).map((j) => j.input)).toEqual([[1, 2], { n: 1 }]);
      // The writer goes on: the next write commits.
      await store.submitJob(cmd(4, 'after'));
      expect(await store.listJobs(asOrgId('a'), { limit: 10 })).toHaveLength(3);
    });
  }

  it('thread writer: a dead writer thread fails its in-flight writes with STORE_UNAVAILABLE (all or none committed); the next write starts a new thread', async () => {
    const file = freshFile();
    const setup = make(file);
    await setup.migrate();
    await setup.close();
    const options = { maxOpsPerTransaction: 1000, inAppDelivery: 'outbox' as const };
    const writer = new ThreadWriter({ file, busyTimeoutMs: 5000, ...options }, { listeners: new Set(), onListenerError: () => {}, ...options });
    const threadOf = (): Worker | null => (writer as unknown as { worker: Worker | null }).worker;
    try {
      await writer.run('warm', {});
      const first = threadOf()!;
      const cmd = (i: number) => ({
        jobId: newJobId(i), orgId: asOrgId('a'), analyzer: 'noop', input: { i }, priority: 0, maxAttempts: 1,
        idempotencyKey: null, requestHash: null, traceContext: null, now: i,
      });
      const batch = Array.from({ length: 200 }, (_, i) => cmd(i + 1));
      const inFlight = batch.map((c) => writer.run('submit', c));
      // The writes go to the thread at the end of this synchronous burst (a microtask); kill it then.
      await Promise.resolve();
      await first.terminate();
      const settled = await Promise.allSettled(inFlight);
      const rejected = batch.filter((_, i) => settled[i]!.status === 'rejected');
      for (const s of settled) if (s.status === 'rejected') expect(isUpshiftError(s.reason, 'STORE_UNAVAILABLE')).toBe(true);
      expect(rejected.length).toBeGreaterThan(0);

      // The next write starts a fresh thread and commits.
      await writer.run('submit', cmd(10_000));
      expect(threadOf()).not.toBe(first);
      // One group commit: the killed transaction committed entirely or not at all.
      const db = new Database(file, { readonly: true });
      try {
        const count = (ids: readonly string[]) =>
          ids.filter((id) => db.prepare('SELECT 1 FROM jobs WHERE job_id = ?').get(id) !== undefined).length;
        const found = count(rejected.map((c) => c.jobId));
        expect([0, rejected.length]).toContain(found);
        expect(count(batch.filter((_, i) => settled[i]!.status === 'fulfilled').map((c) => c.jobId))).toBe(batch.length - rejected.length);
        expect((db.prepare('SELECT COUNT(*) AS n FROM jobs').get() as { n: number }).n).toBe(batch.length - rejected.length + found + 1);
      } finally {
        db.close();
      }
    } finally {
      await writer.close();
    }
  });

  it('a write pending at close() is committed before the file closes', async () => {
    const file = freshFile();
    const store = make(file);
    await store.migrate();
    const pending = store.submitJob({
      jobId: newJobId(1), orgId: asOrgId('a'), analyzer: 'noop', input: null, priority: 0, maxAttempts: 1,
      idempotencyKey: null, requestHash: null, traceContext: null, now: 1,
    });
    await store.close();
    const { job } = await pending;
    const again = make(file);
    expect((await again.getJob(asOrgId('a'), job.jobId))?.status).toBe('queued');
  });

  it('two stores on one file (two processes) share the single-writer lock safely', async () => {
    const file = freshFile();
    const s1 = make(file);
    const s2 = make(file);
    await s1.migrate();
    const org = asOrgId('a');
    await Promise.all(Array.from({ length: 100 }, (_, i) =>
      (i % 2 ? s1 : s2).submitJob({
        jobId: newJobId(i), orgId: org, analyzer: 'noop', input: i, priority: 0, maxAttempts: 1,
        idempotencyKey: `k${i % 10}`, requestHash: 'h', traceContext: null, now: i,
      }),
    ));
    expect(await s1.listJobs(org, { limit: 100 })).toHaveLength(10);
    const claims = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      (i % 2 ? s1 : s2).claimJobs({ orgId: org, limit: 3, workerId: `w${i}`, now: 1000, leaseMs: 1000, analyzers: null }),
    ));
    const ids = claims.flat().map((j) => j.jobId);
    expect(ids).toHaveLength(10);
    expect(new Set(ids).size).toBe(10);
  });

  it('an op failing after its first write is undone alone (batch redone with savepoints)', async () => {
    const file = freshFile();
    const store = make(file);
    await store.migrate();
    const org = asOrgId('a');
    const cmd = (i: number) => ({
      jobId: newJobId(i), orgId: org, analyzer: 'noop', input: i, priority: 0, maxAttempts: 1,
      idempotencyKey: null, requestHash: null, traceContext: null, now: i,
    });
    const { job } = await store.submitJob(cmd(1));
    // Plant a conflicting event: the claim's UPDATE succeeds, then its event insert fails.
    const raw = new Database(file);
    raw.prepare(`INSERT INTO job_events (job_id, event_seq, org_id, type, status, payload, occurred_at) VALUES (?, 2, ?, 'job.progress', 'queued', '{}', 1)`).run(job.jobId, org);
    raw.close();
    const events: string[] = [];
    store.onCommitted((evs) => events.push(...evs.map((e) => e.type)));
    const settled = await Promise.allSettled([
      store.submitJob(cmd(2)),
      store.claimJobs({ orgId: org, limit: 1, workerId: 'w', now: 10, leaseMs: 1000, analyzers: null }),
      store.submitJob(cmd(3)),
    ]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    await expect(codeOf(Promise.reject((settled[1] as PromiseRejectedResult).reason))).resolves.toBe('STORE_CONFLICT');
    expect((await store.getJob(org, job.jobId))?.status).toBe('queued');
    expect(events).toEqual(['job.queued', 'job.queued']);
    expect(await store.listJobs(org, { limit: 10 })).toHaveLength(3);
  });

  it('hot queries use the intended indexes, never a scan of the jobs history', async () => {
    const file = freshFile();
    await make(file).migrate();
    const db = new Database(file, { readonly: true });
    const plan = (name: string): string => {
      const sql = QUERY_SQL[name]!;
      const params = (sql.match(/\?/g) ?? []).map(() => null);
      const named = Object.fromEntries([...sql.matchAll(/@(\w+)/g)].map((m) => [m[1], null]));
      const stmt = db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
      const rows = (Object.keys(named).length > 0 ? stmt.all(named) : stmt.all(...params)) as Array<{ detail: string }>;
      return rows.map((r) => r.detail).join(' | ');
    };
    const expectations: Record<string, RegExp> = {
      jobByOrg: /SEARCH jobs USING INDEX sqlite_autoindex_jobs_1 \(org_id=\? AND job_id=\?\)/,
      claimable: /SEARCH jobs USING INDEX jobs_claim \(org_id=\?\)/,
      readyOrgs: /COVERING INDEX jobs_claim \(org_id>\?\)/,
      runningCounts: /COVERING INDEX jobs_running/,
      expiredLeases: /INDEX jobs_running/,
      listJobs: /SEARCH jobs USING INDEX sqlite_autoindex_jobs_1 \(org_id=\? AND job_id<\?\)/,
      listQueued: /INDEX jobs_claim \(org_id=\?\)/,
      listRunning: /INDEX jobs_running \(org_id=\?\)/,
      listCompleted: /INDEX sqlite_autoindex_jobs_1 \(org_id=\? AND job_id<\?\)/,
      listUnsuccessful: /INDEX jobs_org_unsuccessful \(org_id=\? AND status=\? AND job_id<\?\)/,
      markRunning: /SEARCH jobs USING INTEGER PRIMARY KEY \(rowid=\?\)/,
      leaseRow: /SEARCH jobs USING INDEX sqlite_autoindex_jobs_1 \(org_id=\? AND job_id=\?\)/,
      listEvents: /INDEX sqlite_autoindex_job_events_1 \(job_id=\? AND event_seq>\?\)/,
    };
    for (const [name, re] of Object.entries(expectations)) expect(plan(name), name).toMatch(re);
    db.close();
  });

  /** The VDBE opcodes SQLite compiles a statement to (EXPLAIN, every parameter bound to NULL). */
  const opcodesOf = (db: InstanceType<typeof Database>, sql: string): string[] => {
    const named = [...sql.matchAll(/@(\w+)/g)].map((m) => m[1] as string);
    const stmt = db.prepare(`EXPLAIN ${sql}`);
    const rows = (named.length > 0 ? stmt.all(Object.fromEntries(named.map((k) => [k, null]))) : stmt.all(...(sql.match(/\?/g) ?? []).map(() => null))) as Array<{ opcode: string }>;
    return rows.map((r) => r.opcode);
  };

  it('runs no write statement through an ephemeral table (0005: an IN list of a CHECK built one per checked row)', async () => {
    const file = freshFile();
    await make(file).migrate();
    // Read-write: SQLite compiles no constraint checks into the write statements of a read-only connection.
    const db = new Database(file);
    const writes = Object.entries({ ...QUERY_SQL, ...DELIVERY_QUERY_SQL }).filter(([, sql]) => /^\s*(INSERT|UPDATE)\b/i.test(sql));
    expect(writes.map(([name]) => name)).toEqual(expect.arrayContaining(['insertJob', 'markRunning', 'complete', 'fail', 'cancel', 'requeue', 'insertEntry', 'recordAttempt']));
    for (const [name, sql] of writes) expect(opcodesOf(db, sql), name).not.toContain('OpenEphemeral');
    db.close();
  });

  describe('0005_checks_without_in_lists on a database written before it', () => {
    const JOB_STATUSES = ['queued', 'running', 'completed', 'failed', 'canceled'];
    const OUTBOX_STATUSES = ['pending', 'delivered', 'failed'];
    const upTo = (version: number): Migration[] => loadMigrations().filter((m) => m.version <= version);
    const seeded = (): { file: string; db: InstanceType<typeof Database> } => {
      const file = freshFile();
      const db = new Database(file);
      db.pragma('journal_mode = WAL');
      applyMigrations(db, upTo(4));
      JOB_STATUSES.forEach((status, i) => {
        db.prepare(`INSERT INTO jobs (job_id, org_id, analyzer, input, status, attempt, max_attempts, created_at, run_at) VALUES (?, 'a', 'noop', '{}', ?, 1, 3, ?, ?)`).run(`job_${i}`, status, i, i);
      });
      OUTBOX_STATUSES.forEach((status, i) => {
        db.prepare(`INSERT INTO notification_outbox (entry_id, org_id, job_id, type, channel, kind, payload, occurred_at, status, next_attempt_at, created_at, updated_at)
          VALUES (?, 'a', ?, 'job.completed', 'in_app', 'in_app', '{}', 1, ?, 1, 1, 1)`).run(`nte_${i}`, `job_${i}`, status);
      });
      return { file, db };
    };
    const dump = (db: InstanceType<typeof Database>): unknown[] => [
      db.prepare('SELECT * FROM jobs ORDER BY job_id').all(),
      db.prepare('SELECT * FROM notification_outbox ORDER BY entry_id').all(),
    ];
    const definition = (db: InstanceType<typeof Database>, name: string): string => db.prepare('SELECT sql FROM sqlite_schema WHERE name = ?').pluck().get(name) as string;

    it('keeps every row, refuses the same values as before, and other open connections follow', () => {
      const { file, db } = seeded();
      // Opened (and its statement prepared) before the migration, like another process's connection.
      const other = new Database(file);
      const otherUpdate = other.prepare('UPDATE jobs SET status = ? WHERE job_id = ?');
      const rows = dump(db);
      expect(definition(db, 'jobs')).toContain(`CHECK (status IN ('queued', 'running', 'completed', 'failed', 'canceled'))`);

      expect(applyMigrations(db, loadMigrations())).toEqual(['0005_checks_without_in_lists']);

      expect(dump(db)).toEqual(rows);
      expect(definition(db, 'jobs')).not.toMatch(/status IN \(/);
      expect(definition(db, 'jobs')).toContain(`CHECK (status = 'queued' OR status = 'running' OR status = 'completed' OR status = 'failed' OR status = 'canceled')`);
      expect(definition(db, 'notification_outbox')).toContain(`CHECK (status = 'pending' OR status = 'delivered' OR status = 'failed')`);
      expect(definition(db, 'notification_outbox')).toContain(`CHECK (kind IN ('in_app', 'webhook'))`);
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      for (const status of JOB_STATUSES) expect(() => db.prepare('UPDATE jobs SET status = ? WHERE job_id = ?').run(status, 'job_0')).not.toThrow();
      expect(() => db.prepare(`UPDATE jobs SET status = 'paused' WHERE job_id = 'job_0'`).run()).toThrow(/CHECK constraint failed/);
      expect(() => db.prepare(`UPDATE notification_outbox SET status = 'lost' WHERE entry_id = 'nte_0'`).run()).toThrow(/CHECK constraint failed/);
      // The other connection re-read the schema (schema_version moved): it checks the new text.
      expect(() => otherUpdate.run('paused', 'job_1')).toThrow(/CHECK constraint failed: status = 'queued' OR/);
      // Writes to sqlite_schema are forbidden again (defensive mode back on).
      expect(() => db.prepare(`UPDATE sqlite_schema SET sql = sql WHERE name = 'jobs'`).run()).toThrow(/may not be modified/);
      other.close();
      db.close();
    });

    it('an edit that changes no definition, another one than it names, or one that does not parse is refused and changes nothing', () => {
      const { db } = seeded();
      applyMigrations(db, loadMigrations());
      const edit = (sql: string): Migration => ({ version: 9000, name: '9000_edit', sql, checksum: 'test' });
      const jobs = definition(db, 'jobs');
      const ledger = (): unknown => db.prepare('SELECT max(version) FROM schema_migrations').pluck().get();
      const attempts: Array<[string, RegExp]> = [
        [`-- upshift:schema-edit jobs\nUPDATE sqlite_schema SET sql = replace(sql, 'no such text', 'x') WHERE name = 'jobs';`, /change the definitions of jobs but changed none/],
        [`-- upshift:schema-edit jobs\nUPDATE sqlite_schema SET sql = replace(sql, 'enabled IN (0, 1)', 'enabled IN (0, 1, 2)') WHERE name = 'webhook_endpoints';`, /changed webhook_endpoints/],
        [`-- upshift:schema-edit jobs\nUPDATE sqlite_schema SET sql = replace(sql, 'CHECK (status = ''queued'' OR', 'CHECK (status = OR') WHERE name = 'jobs';`, /malformed database schema/],
      ];
      for (const [sql, message] of attempts) {
        expect(() => applyMigrations(db, [...loadMigrations(), edit(sql)])).toThrow(message);
        expect(definition(db, 'jobs')).toBe(jobs);
        expect(ledger()).toBe(5);
        expect(db.inTransaction).toBe(false);
        expect(() => db.prepare(`UPDATE sqlite_schema SET sql = sql WHERE name = 'jobs'`).run()).toThrow(/may not be modified/);
      }
      expect(() => db.prepare(`UPDATE jobs SET status = 'paused' WHERE job_id = 'job_0'`).run()).toThrow(/CHECK constraint failed/);
      db.close();
    });
  });
});
