import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createPostgresJobStore } from '../../src/adapters/store/postgres/postgresJobStore.js';
import { loadSqliteDriver } from '../../src/adapters/store/sqlite/sqliteDriver.js';
import { asOrgId, newJobId, newResultId } from '../../src/core/ids.js';
import { dropSchema, requirePostgres, testSchemaName } from '../helpers/services.js';
import { api, startServer, type ServerProc } from '../helpers/proc.js';
import { runUpshift } from '../helpers/upshiftCli.js';

// The dashboard_stats projection across a real crash: a server SIGKILLed while it runs jobs
// and applies events in small batches; after the restart the projection must equal the source
// tables (verify) and a rebuild from the event log — no event applied twice or lost.
const pgUrl = await requirePostgres();
const dir = mkdtempSync(join(tmpdir(), 'upshift-projections-cli-'));
const db = join(dir, 'upshift.db');
const env = { UPSHIFT_DATABASE_URL: `sqlite:${db}`, UPSHIFT_DATA_DIR: join(dir, 'data') };
const procs: ServerProc[] = [];

afterAll(() => {
  for (const p of procs) p.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const cli = async (...args: string[]) => {
  const r = await runUpshift(['projections', ...args, '--database', `sqlite:${db}`]);
  return { ...r, json: r.stdout.trim() === '' ? null : (JSON.parse(r.stdout) as Record<string, any>) };
};

async function until(f: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`${what}: not reached in time`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('upshift projections (crash, verify, rebuild)', () => {
  it('a server killed mid-way leaves a projection that verify and a rebuild agree with', async () => {
    const serverEnv = { ...env, UPSHIFT_PROJECTIONS_ENABLED: 'true', UPSHIFT_PROJECTIONS_BATCH_SIZE: '7', UPSHIFT_PROJECTIONS_POLL_MS: '20', UPSHIFT_WORKER_CONCURRENCY: '4' };
    const first = await startServer(serverEnv);
    procs.push(first);
    const orgs = ['acme', 'globex', 'initech'];
    const submits: Promise<unknown>[] = [];
    for (let i = 0; i < 150; i++) {
      const org = orgs[i % 3] as string;
      submits.push(api(first.url, '/analyze/jobs', { org, body: { analyzer: i % 4 === 0 ? 'sleep' : 'noop', input: i % 4 === 0 ? { ms: 5 } : { i } } }));
    }
    await Promise.all(submits);
    const mid = await cli('status');
    expect(mid.code).toBe(0);
    first.child.kill('SIGKILL');
    await first.exited;

    // Restarted: the old runner's lease has to expire (15 s) before the new one applies.
    const second = await startServer(serverEnv);
    procs.push(second);
    await until(
      async () => {
        const s = await cli('status');
        const q = await api<{ status: string }[] | { jobs: { status: string }[] }>(second.url, '/analyze/jobs?status=queued&limit=1', { org: 'acme' });
        return s.json?.lag_events === 0 && Array.isArray((q.body as { jobs?: unknown[] }).jobs) && (q.body as { jobs: unknown[] }).jobs.length === 0;
      },
      60_000,
      'projection caught up and queue drained',
    );
    const ok = await cli('verify', '--wait-ms', '30000');
    expect(ok.stderr).toBe('');
    expect(ok.json).toMatchObject({ status: 'ok', projection: 'dashboard_stats' });
    expect(ok.json!.jobs_checked).toBeGreaterThanOrEqual(150);
    expect(ok.code).toBe(0);

    const rebuilt = await cli('rebuild');
    expect(rebuilt.code).toBe(0);
    expect(rebuilt.json!.orgs).toBe(3);
    expect((await cli('verify', '--wait-ms', '30000')).code).toBe(0);
    await second.child.kill('SIGTERM');
    await second.exited;
  }, 150_000);

  it('verify exits 1 naming the org whose state differs; a one-org rebuild repairs it; bad flags exit 2', async () => {
    // Tamper with acme's stored state behind the runner's back (no server runs now).
    const Database = loadSqliteDriver();
    const conn = new Database(db);
    try {
      conn.prepare(`UPDATE projection_states SET state = '{"analyzers":{},"completedByMinute":{}}' WHERE projection = 'dashboard_stats' AND org_id = 'acme'`).run();
    } finally {
      conn.close();
    }
    const bad = await cli('verify', '--wait-ms', '0');
    expect(bad.code).toBe(1);
    expect(bad.json!.status).toBe('mismatch');
    expect(bad.json!.differences.map((d: { org_id: string }) => d.org_id)).toEqual(['acme']);
    expect(bad.stderr).toMatch(/differs from the source tables for 1 org/);

    const fix = await cli('rebuild', '--org', 'acme');
    expect(fix.code).toBe(0);
    expect(fix.json).toMatchObject({ org_id: 'acme', orgs: 1 });
    expect((await cli('verify', '--wait-ms', '0')).code).toBe(0);

    expect((await cli('rebuild', '--projection', 'nope')).code).toBe(2);
    expect((await cli('verify', '--org', 'Not An Org!')).code).toBe(2);
  }, 60_000);
});

describe.skipIf(!pgUrl)('upshift projections on PostgreSQL', () => {
  const schema = testSchemaName();
  afterAll(async () => {
    await dropSchema(pgUrl!, schema);
  });
  const pgCli = async (...args: string[]) => {
    const r = await runUpshift(['projections', ...args], { UPSHIFT_DATABASE_URL: pgUrl!, UPSHIFT_DATABASE_SCHEMA: schema });
    return { ...r, json: r.stdout.trim() === '' ? null : (JSON.parse(r.stdout) as Record<string, any>) };
  };

  it('verify catches up and agrees with the job rows; a tampered state is reported and a rebuild repairs it', async () => {
    const store = createPostgresJobStore({ url: pgUrl!, schema, poolSize: 2 });
    try {
      await store.migrate();
      const now = Date.now();
      for (const org of ['acme', 'globex'].map(asOrgId)) {
        for (let i = 0; i < 12; i++) {
          await store.submitJob({ jobId: newJobId(now + i), orgId: org, analyzer: i % 2 ? 'noop' : 'sleep', input: {}, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now });
        }
        const leases = await store.claimJobs({ orgId: org, limit: 8, workerId: 'w', now, leaseMs: 60_000, analyzers: null });
        for (const [i, j] of leases.entries()) {
          const lease = { orgId: org, jobId: j.jobId, attempt: j.attempt, leaseToken: j.leaseToken };
          if (i % 3 === 0) await store.finishJob(lease, { status: 'failed', error: { code: 'ANALYZER_FAILED', message: 'x' } }, now + 5 + i);
          else await store.finishJob(lease, { status: 'completed', resultId: newResultId(now + i), payload: {} }, now + 20 * i);
        }
      }
    } finally {
      await store.close();
    }
    const before = await pgCli('status');
    expect(before.json).toMatchObject({ projection: 'dashboard_stats', position: 0 });
    expect(before.json!.lag_events).toBeGreaterThan(0);
    const ok = await pgCli('verify', '--wait-ms', '10000');
    expect(ok.json).toMatchObject({ status: 'ok', orgs_checked: 2, jobs_checked: 24 });
    expect(ok.code).toBe(0);
    expect((await pgCli('status')).json!.lag_events).toBe(0);

    const c = new pg.Client({ connectionString: pgUrl! });
    await c.connect();
    try {
      await c.query(`UPDATE "${schema}".projection_states SET state = '{"analyzers":{},"completedByMinute":{}}' WHERE org_id = 'globex'`);
    } finally {
      await c.end();
    }
    const bad = await pgCli('verify', '--wait-ms', '0');
    expect(bad.code).toBe(1);
    expect(bad.json!.differences.map((d: { org_id: string }) => d.org_id)).toEqual(['globex']);
    const rebuilt = await pgCli('rebuild');
    expect(rebuilt.code).toBe(0);
    expect(rebuilt.json).toMatchObject({ orgs: 2, jobs_seeded: 0 });
    expect((await pgCli('verify', '--wait-ms', '0')).code).toBe(0);
  }, 90_000);
});
