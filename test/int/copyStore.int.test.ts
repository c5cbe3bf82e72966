import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresCopyTarget } from '../../src/adapters/store/postgres/postgresCopyTarget.js';
import { createPostgresJobStore } from '../../src/adapters/store/postgres/postgresJobStore.js';
import { createSqliteCopySource } from '../../src/adapters/store/sqlite/sqliteCopySource.js';
import { loadSqliteDriver } from '../../src/adapters/store/sqlite/sqliteDriver.js';
import { copyStore } from '../../src/app/copyStore.js';
import { verifyCopy } from '../../src/app/verifyCopy.js';
import { isUpshiftError } from '../../src/core/errors.js';
import { asOrgId } from '../../src/core/ids.js';
import { systemClock } from '../../src/ports/clock.js';
import { buildEmbeddedStore, openApp } from '../helpers/copyStoreFixture.js';
import { dropSchema, requirePostgres, testSchemaName } from '../helpers/services.js';

const pgUrl = await requirePostgres();
const ORGS = ['acme', 'globex'];

/**
 * The copy-store use cases over the real adapters (a real SQLite file, a real PostgreSQL
 * schema), on a small store: schema refusals, the dry run, and a catch-up that must
 * reconcile every kind of change (new jobs, reads, a deleted endpoint with its delivery log,
 * a tampered target row), each proven by --verify's checksums.
 */
describe.skipIf(!pgUrl)('copy-store use cases on SQLite → PostgreSQL', () => {
  const url = pgUrl as string;
  const schema = testSchemaName();
  const dir = mkdtempSync(join(tmpdir(), 'upshift-copy-int-'));
  const file = join(dir, 'upshift.db');
  const opts = { sourceId: file, batchSize: 7, maxRowsPerSecond: 0, dryRun: false };
  const run = async (dryRun = false, into = schema, maxRowsPerSecond = 0) => {
    const source = createSqliteCopySource(file);
    const target = createPostgresCopyTarget({ url, schema: into });
    try {
      return await copyStore({ source, target, clock: systemClock }, { ...opts, dryRun, maxRowsPerSecond });
    } finally {
      await source.close();
      await target.close();
    }
  };
  const verify = async (into = schema) => {
    const source = createSqliteCopySource(file);
    const target = createPostgresCopyTarget({ url, schema: into });
    try {
      return await verifyCopy({ source, target, now: () => Date.now() }, { batchSize: 7 });
    } finally {
      await source.close();
      await target.close();
    }
  };
  const sql = async (text: string): Promise<void> => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(text);
    } finally {
      await c.end();
    }
  };

  beforeAll(async () => {
    await buildEmbeddedStore(file, ORGS, 40);
  }, 60_000);
  const second = testSchemaName();
  afterAll(async () => {
    await dropSchema(url, schema);
    await dropSchema(url, second);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses an unmigrated target, one migrated by a newer Upshift, and an unmigrated source', async () => {
    await expect(run()).rejects.toSatisfy((e) => isUpshiftError(e, 'STORE_NOT_MIGRATED'));
    const store = createPostgresJobStore({ url, schema });
    await store.migrate();
    await store.close();
    await sql(`INSERT INTO "${schema}".upshift_migrations (version, name, checksum, applied_at) VALUES (9999, '9999_future', 'x', 0)`);
    await expect(run()).rejects.toSatisfy((e) => isUpshiftError(e, 'STORE_SCHEMA_TOO_NEW'));
    await sql(`DELETE FROM "${schema}".upshift_migrations WHERE version = 9999`);

    const empty = join(dir, 'empty.db');
    new (loadSqliteDriver())(empty).close();
    const source = createSqliteCopySource(empty);
    await expect(source.checkSchema()).rejects.toSatisfy((e) => isUpshiftError(e, 'STORE_NOT_MIGRATED'));
    await source.close();
  });

  it('a dry run counts every source row and writes nothing', async () => {
    const report = await run(true);
    expect(report.completed).toBe(true);
    const source = createSqliteCopySource(file);
    const counts = await source.countRows();
    await source.close();
    for (const org of ORGS) expect(report.orgs[org]?.toCopy).toEqual(counts[org]);
    const target = createPostgresCopyTarget({ url, schema });
    expect(await target.countRows()).toEqual({});
    expect(await target.checkpoints(file)).toEqual([]);
    await target.close();
  });

  it('copies, then catches up new jobs, reads, a deleted endpoint and a tampered row; verify proves each step', async () => {
    const first = await run();
    expect(first.completed).toBe(true);
    expect((await verify()).ok).toBe(true);

    // Changes on the source after the copy…
    const app = await openApp(`sqlite:${file}`, { UPSHIFT_WORKER_ENABLED: 'false', UPSHIFT_NOTIFICATIONS_ENABLED: 'false' });
    try {
      const globex = asOrgId('globex');
      const [endpoint] = await app.notifications.listWebhooks(globex);
      expect(endpoint).toBeDefined();
      await app.notifications.deleteWebhook(globex, (endpoint as { endpointId: string }).endpointId);
      const inbox = await app.notifications.inbox(asOrgId('acme'), { unreadOnly: true, limit: 3 });
      for (const n of inbox.items) await app.notifications.markRead(asOrgId('acme'), n.notificationId);
      await app.service.submit(asOrgId('acme'), { analyzer: 'noop', input: {} });
    } finally {
      await app.close();
    }
    // …and on the target: same row count, other content.
    await sql(`UPDATE "${schema}".jobs SET progress_message = 'tampered' WHERE job_id = (SELECT min(job_id) FROM "${schema}".jobs WHERE org_id = 'globex')`);

    const stale = await verify();
    expect(stale.ok).toBe(false);
    const bad = stale.rows.filter((r) => !r.ok).map((r) => `${r.org}/${r.table}`);
    expect(bad).toEqual(expect.arrayContaining(['acme/jobs', 'acme/job_events', 'acme/notifications', 'globex/jobs', 'globex/webhook_endpoints', 'globex/notification_outbox']));
    const tampered = stale.rows.find((r) => r.org === 'globex' && r.table === 'jobs');
    expect(tampered?.sourceRows).toBe(tampered?.targetRows);

    const second = await run();
    expect(second.resumedFromCheckpoints).toBeGreaterThan(0);
    expect(second.orgs.acme?.copied).toMatchObject({ jobs: 1, job_events: 1 }); // the new job, after the checkpoint
    expect(second.orgs.acme?.caughtUp.notifications).toBe(3);
    expect(second.orgs.globex?.caughtUp.jobs).toBe(1);
    expect(second.orgs.globex?.removed.webhook_endpoints).toBe(1);
    expect(second.orgs.globex?.removed.notification_outbox).toBeGreaterThan(0);
    expect((await verify()).ok).toBe(true);

    // Idempotent: a third run finds nothing to do.
    const third = await run();
    expect(third.orgs).toEqual({});
  }, 60_000);

  it('a target connection killed mid-copy fails the run with STORE_UNAVAILABLE (no crash); the next run resumes and verifies; new events get positions above the copied ones', async () => {
    const store = createPostgresJobStore({ url, schema: second });
    await store.migrate();
    await store.close();
    // Rate-limited so the copy is still running when its backend is terminated.
    const copying = run(false, second, 1500);
    copying.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 600));
    await sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'upshift-copy-store' AND pid <> pg_backend_pid()`);
    await expect(copying).rejects.toSatisfy((e) => isUpshiftError(e, 'STORE_UNAVAILABLE'));
    const resumed = await run(false, second);
    expect(resumed.completed).toBe(true);
    expect(resumed.resumedFromCheckpoints).toBeGreaterThan(0);
    expect((await verify(second)).ok).toBe(true);

    // Positions were kept; the store's next event is drawn above every copied one.
    const db = new (loadSqliteDriver())(file, { readonly: true });
    const maxCopied = db.prepare('SELECT max(position) AS m FROM job_events').pluck().get() as number;
    db.close();
    const app = await openApp(url, { UPSHIFT_DATABASE_SCHEMA: second, UPSHIFT_WORKER_ENABLED: 'false', UPSHIFT_NOTIFICATIONS_ENABLED: 'false' });
    try {
      const { job } = await app.service.submit(asOrgId('acme'), { analyzer: 'noop', input: {} });
      const [queued] = await app.service.events(asOrgId('acme'), job.jobId, 0, 10);
      expect(queued?.position).toBeGreaterThan(maxCopied);
    } finally {
      await app.close();
    }
  }, 60_000);
});
