import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asOrgId } from '../../src/core/ids.js';
import { buildEmbeddedStore, openApp, submitAll } from '../helpers/copyStoreFixture.js';
import { dropSchema, requirePostgres, testSchemaName } from '../helpers/services.js';
import { runUpshift as cli } from '../helpers/upshiftCli.js';
import { recordContract, sampleRequests } from '../helpers/contractRecorder.js';

const pgUrl = await requirePostgres();
const ORGS = ['acme', 'globex', 'initech'];
const JOBS_PER_ORG = Number(process.env.UPSHIFT_COPY_TEST_JOBS ?? 5000);

interface CopyReport {
  mode: string;
  completed: boolean;
  resumedFromCheckpoints: number;
  orgs: Record<string, { copied: Record<string, number>; caughtUp: Record<string, number>; toCopy: Record<string, number> }>;
}
interface VerifyReport {
  ok: boolean;
  rows: { org: string; table: string; sourceRows: number; targetRows: number; sourceChecksum: string; targetChecksum: string; ok: boolean }[];
}

const sum = (r: CopyReport, part: 'copied' | 'caughtUp' | 'toCopy'): number =>
  Object.values(r.orgs).reduce((n, o) => n + Object.values(o[part]).reduce((a, b) => a + b, 0), 0);

/**
 * The MVP → scale move end to end (issue 4 item 6): an embedded store of 3 tenants and more
 * than 100,000 events, built by the real runtime, copied to PostgreSQL by real copy-store
 * processes while the embedded runtime keeps writing; the first copy is SIGKILLed halfway and
 * resumed; a catch-up after writes stop; --verify; and the HTTP contract answers the same on
 * both stores for a sample of ids of every tenant.
 */
describe.skipIf(!pgUrl)('copy-store: SQLite → PostgreSQL', () => {
  const url = pgUrl as string;
  const schema = testSchemaName();
  const dir = mkdtempSync(join(tmpdir(), 'upshift-copy-'));
  const file = join(dir, 'upshift.db');
  const pgEnv = { UPSHIFT_DATABASE_SCHEMA: schema, UPSHIFT_LOG_LEVEL: 'silent' };
  const copyArgs = ['copy-store', '--from', `sqlite:${file}`, '--to', url, '--schema', schema];

  beforeAll(async () => {
    await buildEmbeddedStore(file, ORGS, JOBS_PER_ORG);
  }, 120_000);
  afterAll(async () => {
    await dropSchema(url, schema);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses an unmigrated target; `upshift migrate` (the same migrator) makes it acceptable', async () => {
    const refused = await cli([...copyArgs, '--no-progress']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('STORE_NOT_MIGRATED');
    const migrated = await cli(['migrate', '--database', url], pgEnv);
    expect(migrated.code, migrated.stderr).toBe(0);

    expect(await targetRows(url, schema)).toBe(0);
  });

  it('copies while the embedded runtime writes, survives a SIGKILL halfway, catches up, verifies', async () => {
    // The embedded runtime keeps serving: new jobs run, notifications are delivered and read.
    const live = await openApp(`sqlite:${file}`);
    let writing = true;
    // Bounded: a steady trickle of writes (about 60 jobs per round), not a race the copy must win.
    const writer = (async () => {
      for (let round = 0; writing && round < 40; round++) {
        await submitAll(live, ORGS, 20, (n) => ({ analyzer: 'sleep', input: { ms: 0, steps: 2 }, cancel: n === 7 }));
        const page = await live.notifications.inbox(asOrgId('globex'), { unreadOnly: true, limit: 5 });
        for (const n of page.items) await live.notifications.markRead(asOrgId('globex'), n.notificationId);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      // Slowed down so that "halfway" is a moment the test can hit: the rate limit at work.
      const killed = await cli([...copyArgs, '--max-rows-per-second', '60000', '--batch-size', '200'], {}, (err) => {
        const m = [...err.matchAll(/copy \S+ \S+: (\d+)\/(\d+) rows/g)].at(-1);
        return m !== undefined && Number(m[1]) >= Number(m[2]) / 2;
      });
      expect(killed.signal, killed.stderr).toBe('SIGKILL');
      expect(await targetRows(url, schema)).toBeGreaterThan(0);

      const resumed = await cli([...copyArgs, '--output-json', join(dir, 'resume.json')]);
      expect(resumed.code, resumed.stderr).toBe(0);
      const r = JSON.parse(readFileSync(join(dir, 'resume.json'), 'utf8')) as CopyReport;
      expect(r.completed).toBe(true);
      expect(r.resumedFromCheckpoints).toBeGreaterThan(0);
      const total = await sourceTotal(file);
      // It resumed: the bulk pass of the second run copied clearly less than everything.
      expect(sum(r, 'copied')).toBeLessThan(total * 0.75);
    } finally {
      writing = false;
      await writer;
      await live.close();
    }
    // Writes have stopped. A queued job (no worker runs it) that the next pass copies as it is.
    const quietApp = () => openApp(`sqlite:${file}`, { UPSHIFT_WORKER_ENABLED: 'false', UPSHIFT_NOTIFICATIONS_ENABLED: 'false' });
    let quiet = await quietApp();
    const { job: parked } = await quiet.service.submit(asOrgId('acme'), { analyzer: 'sleep', input: { ms: 1 } }).finally(() => quiet.close());
    // The catch-up pass re-copies what changed since.
    const catchUp = await cli([...copyArgs, '--output-json', join(dir, 'catchup.json')]);
    expect(catchUp.code, catchUp.stderr).toBe(0);
    const c = JSON.parse(readFileSync(join(dir, 'catchup.json'), 'utf8')) as CopyReport;
    expect(c.completed).toBe(true);
    expect(c.orgs['acme']?.copied['jobs'] ?? 0).toBeGreaterThanOrEqual(1);
    // How much the trickle changed behind the copies depends on the machine's pace (it can be
    // nothing); changes to rows the copies have written, made while nothing else writes, do not:
    // the parked job is canceled (job row + event), 7 inbox entries are marked read.
    quiet = await quietApp();
    try {
      expect((await quiet.service.cancel(asOrgId('acme'), parked.jobId)).changed).toBe(true);
      const unread = await quiet.notifications.inbox(asOrgId('acme'), { unreadOnly: true, limit: 7 });
      expect(unread.items).toHaveLength(7);
      for (const n of unread.items) await quiet.notifications.markRead(asOrgId('acme'), n.notificationId);
    } finally {
      await quiet.close();
    }
    const again = await cli([...copyArgs, '--output-json', join(dir, 'catchup2.json')]);
    expect(again.code, again.stderr).toBe(0);
    const c2 = JSON.parse(readFileSync(join(dir, 'catchup2.json'), 'utf8')) as CopyReport;
    expect(c2.completed).toBe(true);
    expect(sum(c2, 'copied')).toBe(0);
    // Exactly those: the job row, its job.canceled event, its two outbox entries (in-app, and
    // the webhook of acme's endpoint for failures and cancels), the 7 inbox rows — no other org.
    expect(c2.orgs).toEqual({ acme: { copied: {}, caughtUp: { jobs: 1, job_events: 1, notification_outbox: 2, notifications: 7 }, removed: {}, toCopy: {} } });

    const verify = await cli([...copyArgs, '--verify', '--output-json', join(dir, 'verify.json')]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    const v = JSON.parse(readFileSync(join(dir, 'verify.json'), 'utf8')) as VerifyReport;
    expect(v.ok).toBe(true);
    expect(new Set(v.rows.map((x) => x.org))).toEqual(new Set(ORGS));
    const events = v.rows.filter((x) => x.table === 'job_events').reduce((n, x) => n + x.targetRows, 0);
    expect(events).toBeGreaterThanOrEqual(100_000);
    for (const org of ORGS) {
      for (const table of ['jobs', 'job_events', 'job_results', 'api_keys', 'notifications', 'notification_outbox', 'removed_results']) {
        const row = v.rows.find((x) => x.org === org && x.table === table);
        expect(row, `${org} ${table}`).toMatchObject({ ok: true });
        expect(row?.sourceChecksum).toBe(row?.targetChecksum);
      }
    }
    expect(v.rows.filter((x) => x.table === 'webhook_endpoints').map((x) => x.org)).toEqual(['acme', 'globex']);
    expect(verify.stdout).toMatch(/verify: OK/);
  }, 180_000);

  it('the HTTP contract answers the same for the same ids on both stores', async () => {
    const before = await withServer(`sqlite:${file}`, {}, (u) => recordContract(u, sampleRequests(file, ORGS), true));
    const after = await withServer(url, { UPSHIFT_DATABASE_SCHEMA: schema }, (u) => recordContract(u, before.paths, false));
    expect(before.paths.length).toBeGreaterThan(ORGS.length * 100);
    // The sample covers every kind of answer: found, gone (410), and the listings.
    expect(new Set(before.responses.map((r) => r.status))).toEqual(new Set([200, 410]));
    const streams = before.paths.filter((p) => p.endsWith('/stream'));
    expect(streams.length).toBe(ORGS.length * 3);
    for (const [i, path] of before.paths.entries()) {
      expect({ path, ...after.responses[i] }).toEqual({ path, ...before.responses[i] });
    }
  }, 60_000);
});

async function withServer<T>(database: string, overrides: Record<string, string>, use: (url: string) => Promise<T>): Promise<T> {
  // A server that only answers: no worker, no dispatcher, no retention, so nothing changes under the recording.
  const app = await openApp(database, { UPSHIFT_WORKER_ENABLED: 'false', UPSHIFT_NOTIFICATIONS_ENABLED: 'false', ...overrides }, true);
  try {
    const addr = app.http?.server.address();
    if (!addr || typeof addr !== 'object') throw new Error('server did not listen');
    return await use(`http://127.0.0.1:${addr.port}`);
  } finally {
    await app.close();
  }
}

async function targetRows(url: string, schema: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ n: string }>(`SELECT (SELECT count(*) FROM "${schema}".jobs) + (SELECT count(*) FROM "${schema}".job_events) AS n`);
    return Number(r.rows[0]?.n);
  } finally {
    await c.end();
  }
}

async function sourceTotal(file: string): Promise<number> {
  const { loadSqliteDriver } = await import('../../src/adapters/store/sqlite/sqliteDriver.js');
  const Db = loadSqliteDriver();
  const db = new Db(file, { readonly: true });
  try {
    const tables = ['jobs', 'job_events', 'job_results', 'removed_results', 'api_keys', 'webhook_endpoints', 'notification_outbox', 'notifications'];
    return tables.reduce((n, t) => n + (db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n, 0);
  } finally {
    db.close();
  }
}
