import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { api, repoRoot, startServer, type ServerProc } from '../helpers/proc.js';

// Feature flags (SPEC §5) through a real server: legacy_async_default per tenant, a percentage
// rollout, the kill switch applied by editing the flags file (no restart), and a bad flags
// document refused at startup.
const dir = mkdtempSync(join(tmpdir(), 'upshift-flags-'));
const flagsFile = join(dir, 'flags.json');
const procs: ServerProc[] = [];

afterAll(() => {
  for (const p of procs) p.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const legacy = (url: string, org: string, query = '') => api<{ status?: string; job_id?: string; result?: unknown }>(url, `/analyze${query}`, { org, body: { analyzer: 'noop', input: { org } } });

async function until(f: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('feature flags', () => {
  it('legacy_async_default: per tenant, ?mode=sync still waits, and the kill switch in the file takes effect without a restart', async () => {
    writeFileSync(flagsFile, JSON.stringify({ legacy_async_default: { enabled: true, tenants_on: ['acme'] } }));
    const srv = await startServer({ UPSHIFT_DATA_DIR: join(dir, 'a'), UPSHIFT_DATABASE_URL: `sqlite:${join(dir, 'a.db')}`, UPSHIFT_FEATURE_FLAGS_FILE: flagsFile });
    procs.push(srv);
    const acme = await legacy(srv.url, 'acme');
    expect(acme.status).toBe(202);
    expect(acme.body.status).toBe('queued');
    expect(acme.body.job_id).toMatch(/^job_/);
    const globex = await legacy(srv.url, 'globex');
    expect(globex).toMatchObject({ status: 200, body: { status: 'completed', result: { org: 'globex' } } });
    expect(await legacy(srv.url, 'acme', '?mode=sync')).toMatchObject({ status: 200, body: { status: 'completed' } });

    // An invalid edit keeps the previous rules.
    writeFileSync(flagsFile, '{"legacy_async_default": {"enabled": tru');
    await until(async () => srv.output().includes('feature flags file is invalid'), 10_000);
    expect((await legacy(srv.url, 'acme')).status).toBe(202);

    // Kill switch: off for every tenant, applied from the file.
    writeFileSync(flagsFile, JSON.stringify({ legacy_async_default: { enabled: false, tenants_on: ['acme'] } }));
    await until(async () => (await legacy(srv.url, 'acme')).status === 200, 10_000);
    expect((await legacy(srv.url, 'globex')).status).toBe(200);
  }, 60_000);

  it('percentage rollout through UPSHIFT_FEATURE_FLAGS: 100 % is every tenant but tenants_off', async () => {
    const srv = await startServer({
      UPSHIFT_DATA_DIR: join(dir, 'b'),
      UPSHIFT_DATABASE_URL: `sqlite:${join(dir, 'b.db')}`,
      UPSHIFT_FEATURE_FLAGS: JSON.stringify({ legacy_async_default: { enabled: true, percentage: 100, tenants_off: ['globex'] } }),
    });
    procs.push(srv);
    expect((await legacy(srv.url, 'acme')).status).toBe(202);
    expect((await legacy(srv.url, 'initech')).status).toBe(202);
    expect((await legacy(srv.url, 'globex')).status).toBe(200);
  }, 60_000);

  it('a bad flags document is refused at startup with CONFIG_INVALID', () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'upshift.js'), 'serve', '--port', '0'], {
      env: { ...process.env, UPSHIFT_DATA_DIR: join(dir, 'c'), UPSHIFT_DATABASE_URL: `sqlite:${join(dir, 'c.db')}`, UPSHIFT_FEATURE_FLAGS: '{"legacy_async_default": {"enabled": true, "percentage": 250}}' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/CONFIG_INVALID/);
    expect(r.stderr).toMatch(/percentage/);
  });
});
