import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSqliteDriver } from '../../src/adapters/store/sqlite/sqliteDriver.js';
import { api, startServer, type ServerProc } from '../helpers/proc.js';
import { runUpshift } from '../helpers/upshiftCli.js';

// The dashboard_stats projection across a real crash: a server SIGKILLed while it runs jobs
// and applies events in small batches; after the restart the projection must equal the source
// tables (verify) and a rebuild from the event log — no event applied twice or lost.
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
    const serverEnv = { ...env, UPSHIFT_PROJECTIONS_BATCH_SIZE: '7', UPSHIFT_PROJECTIONS_POLL_MS: '20', UPSHIFT_WORKER_CONCURRENCY: '4' };
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
