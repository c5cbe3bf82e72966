import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { api, freePort, repoRoot } from '../helpers/proc.js';
import { requireProgram, requireRedis } from '../helpers/services.js';

// Outages in scale mode (issue 4): a PRIVATE PostgreSQL cluster and a PRIVATE redis-server
// (never the shared ones) are stopped under a running `upshift api` + `upshift worker` (BullMQ
// dispatch). Redis down: submits are still accepted (outbox), /ready says 503, the job runs once
// Redis is back. PostgreSQL down: writes answer 503 STORE_UNAVAILABLE (problem+json) promptly,
// /ready says 503, and the processes recover by themselves when it returns.

const PG_BIN = '/usr/lib/postgresql/15/bin';
// Needs the PostgreSQL server binaries, redis-server and (as root) the postgres user to run initdb.
const canRun = requireProgram('PostgreSQL server binaries', join(PG_BIN, 'initdb')) && (await requireRedis()) !== null;
const asPostgres = (cmd: string, args: string[]): string[] => (process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', cmd, ...args] : [cmd, ...args]);
const run = (argv: string[]): void => {
  execFileSync(argv[0] as string, argv.slice(1), { stdio: 'pipe', timeout: 60_000 });
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Proc {
  readonly child: ChildProcess;
  readonly output: () => string;
}

function spawnProc(args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'upshift.js'), ...args], { env: { ...process.env, UPSHIFT_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-10_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, output: () => out };
}

async function until<T>(what: string, f: () => Promise<T | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => false as const);
    if (v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

describe.skipIf(!canRun)('scale mode outages: private PostgreSQL and Redis stopped under a running API and worker', () => {
  const dir = mkdtempSync(join(tmpdir(), 'upshift-outage-'));
  const pgData = join(dir, 'pg');
  let pgPort: number;
  let redisPort: number;
  let redis: ChildProcess | null = null;
  const procs: Proc[] = [];
  let url: string;
  let workerHealth: string;

  const pgCtl = (action: string, extra: string[] = []): void =>
    run(asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', pgData, '-w', '-t', '30', ...extra, action]));
  const startPg = (): void =>
    pgCtl('start', ['-l', join(dir, 'pg.log'), '-o', `-p ${pgPort} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`]);
  const startRedis = async (): Promise<void> => {
    const child = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await until('redis-server to start', async () => out.includes('Ready to accept connections'), 10_000);
    redis = child;
  };
  const submit = (): Promise<{ status: number; body: { job_id?: string; code?: string } }> =>
    api<{ job_id?: string; code?: string }>(url, '/analyze/jobs', { body: { analyzer: 'noop', input: {} } });
  const jobStatus = async (id: string): Promise<string | false> => {
    const r = await api<{ status: string }>(url, `/analyze/jobs/${id}`);
    return r.status === 200 ? r.body.status : false;
  };

  beforeAll(async () => {
    if (process.getuid?.() === 0) {
      const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
      chownSync(dir, id('-u'), id('-g'));
    }
    run(asPostgres(join(PG_BIN, 'initdb'), ['-D', pgData, '-A', 'trust', '-U', 'postgres', '--no-sync']));
    pgPort = await freePort();
    redisPort = await freePort();
    startPg();
    await startRedis();
    const env = {
      UPSHIFT_DATABASE_URL: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
      UPSHIFT_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      UPSHIFT_DISPATCH_MODE: 'bullmq',
      UPSHIFT_DATA_DIR: dir,
      UPSHIFT_NOTIFICATIONS_ENABLED: 'false',
      UPSHIFT_SHUTDOWN_GRACE_MS: '1000',
    };
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const apiProc = spawnProc(['api', '--port', String(port)], env);
    procs.push(apiProc);
    await until('the API to be healthy', async () => (await fetch(`${url}/health`)).ok || false, 30_000).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${apiProc.output()}`);
    });
    const healthPort = await freePort();
    workerHealth = `http://127.0.0.1:${healthPort}`;
    const worker = spawnProc(['worker'], { ...env, UPSHIFT_HEALTH_PORT: String(healthPort) });
    procs.push(worker);
    await until('the worker health port to answer', async () => (await fetch(`${workerHealth}/ready`)).status === 200 || false, 30_000).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${worker.output()}`);
    });
  }, 90_000);

  afterAll(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    redis?.kill('SIGKILL');
    try {
      pgCtl('stop', ['-m', 'immediate']);
    } catch {
      // already stopped
    }
    await sleep(100);
    rmSync(dir, { recursive: true, force: true });
  });

  it('Redis down: submits are still accepted, /ready is 503, the job runs when Redis is back', async () => {
    const first = await submit();
    expect(first.status).toBe(202);
    await until('the first job to complete', async () => (await jobStatus(first.body.job_id!)) === 'completed' || false, 20_000);

    redis!.kill('SIGKILL');
    await sleep(300);
    const during = await submit();
    expect(during.status).toBe(202);
    const ready = await until(
      '/ready to report the queue',
      async () => {
        const r = await api<{ checks: Record<string, string> }>(url, '/ready');
        return r.status === 503 && r;
      },
      10_000,
    );
    expect(ready.body.checks.store).toBe('ok');
    expect(ready.body.checks.queue).toMatch(/Redis unavailable/);
    expect((ready.body as unknown as { code: string }).code).toBe('QUEUE_UNAVAILABLE');
    // The worker's probe listener reports the same.
    await until('the worker to report Redis down', async () => (await fetch(`${workerHealth}/ready`)).status === 503 || false, 10_000);
    expect((await fetch(`${workerHealth}/health`)).status).toBe(200);
    await sleep(1_000);
    expect(await jobStatus(during.body.job_id!)).toBe('queued');

    await startRedis();
    await until('the job accepted during the outage to complete', async () => (await jobStatus(during.body.job_id!)) === 'completed' || false, 20_000);
    await until('/ready to recover', async () => (await api(url, '/ready')).status === 200 || false, 10_000);
    await until('the worker /ready to recover', async () => (await fetch(`${workerHealth}/ready`)).status === 200 || false, 10_000);

    // The worker's probe listener also serves its own metrics: the API process runs no job, so
    // only here are the slots and the settled attempts (both jobs above) visible.
    const metrics = await fetch(`${workerHealth}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await metrics.text();
    expect(text).toMatch(/^upshift_worker_slots [1-9]\d*$/m);
    const completed = /^upshift_jobs_finished_total\{analyzer="noop",status="completed"\} (\d+)$/m.exec(text);
    expect(Number(completed?.[1])).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('PostgreSQL down: writes answer 503 STORE_UNAVAILABLE promptly; everything recovers without a restart', async () => {
    onTestFailed(() => {
      for (const p of procs) console.log(`--- ${p.child.spawnargs.slice(2, 3).join(' ')} (exit ${p.child.exitCode} ${p.child.signalCode}):\n${p.output()}`);
    });
    pgCtl('stop', ['-m', 'immediate']);
    const t0 = Date.now();
    const post = (): Promise<Response> =>
      fetch(`${url}/analyze/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-org-id': 'acme' }, body: JSON.stringify({ analyzer: 'noop', input: {} }) });
    // One retry on a socket error: a keep-alive connection the server closes for idleness at the
    // moment it is reused fails with "other side closed" (a client race, not an answer).
    const r = await post().catch(() => post());
    const elapsed = Date.now() - t0;
    expect(r.status).toBe(503);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await r.json()) as { code: string }).code).toBe('STORE_UNAVAILABLE');
    expect(elapsed).toBeLessThan(5_000);
    expect((await api(url, '/ready')).status).toBe(503);

    startPg();
    const back = await until(
      'submits to be accepted again',
      async () => {
        const s = await submit();
        return s.status === 202 && s;
      },
      30_000,
    );
    await until('a job submitted after the outage to complete', async () => (await jobStatus(back.body.job_id!)) === 'completed' || false, 30_000);
    expect((await api(url, '/ready')).status).toBe(200);
    for (const p of procs) expect(p.child.exitCode).toBeNull();
  }, 90_000);

  it('a process started while PostgreSQL is down waits for it (UPSHIFT_STARTUP_TIMEOUT_MS) instead of exiting', async () => {
    pgCtl('stop', ['-m', 'immediate']);
    const port = await freePort();
    const late = spawnProc(['api', '--port', String(port)], {
      UPSHIFT_DATABASE_URL: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
      UPSHIFT_DATA_DIR: dir,
      UPSHIFT_NOTIFICATIONS_ENABLED: 'false',
      UPSHIFT_LOG_LEVEL: 'warn',
      UPSHIFT_STARTUP_TIMEOUT_MS: '60000',
    });
    procs.push(late);
    await until('the retry to be logged', async () => late.output().includes('store unavailable at startup; retrying') || false, 30_000);
    expect(late.child.exitCode).toBeNull();
    startPg();
    const lateUrl = `http://127.0.0.1:${port}`;
    await until('the late API to be ready', async () => (await fetch(`${lateUrl}/ready`)).status === 200 || false, 30_000).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${late.output()}`);
    });
    expect((await api<{ job_id: string }>(lateUrl, '/analyze/jobs', { body: { analyzer: 'noop', input: {} } })).status).toBe(202);

    // With the retry off, the same start fails at once, non-zero, saying why.
    pgCtl('stop', ['-m', 'immediate']);
    const fast = spawnProc(['api', '--port', String(await freePort())], {
      UPSHIFT_DATABASE_URL: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
      UPSHIFT_DATA_DIR: dir,
      UPSHIFT_STARTUP_TIMEOUT_MS: '0',
    });
    const code = await new Promise<number | null>((resolve) => fast.child.once('exit', (c) => resolve(c)));
    expect(code).not.toBe(0);
    expect(fast.output()).toMatch(/STORE_UNAVAILABLE/);
    startPg();
  }, 90_000);
});
