// `upshift` as users run it: real processes from bin/upshift.js (built dist/), a real SQLite
// file per server, HTTP over a real socket. Covers serve (flags, custom analyzers, listening
// log, graceful shutdown and release), migrate, keys + api-key auth, and the jobs client.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSqliteDriver } from '../../src/adapters/store/sqlite/sqliteDriver.js';

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'upshift.js');
const dir = mkdtempSync(join(tmpdir(), 'upshift-cli-'));
/** The environment of every child: ours minus any UPSHIFT_* the developer happens to have set. */
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('UPSHIFT_')));
const children = new Set<ChildProcess>();

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

interface Started {
  readonly child: ChildProcess;
  readonly exited: Promise<Run>;
}

function start(args: string[], env: Record<string, string> = {}): Started & { readonly output: () => Run } {
  const child = spawn(process.execPath, [bin, ...args], { cwd: root, env: { ...baseEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<Run>((resolve) =>
    child.on('close', (code) => {
      children.delete(child);
      resolve({ code, stdout, stderr });
    }),
  );
  return { child, exited, output: () => ({ code: child.exitCode, stdout, stderr }) };
}

/** Runs one CLI command to completion. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const p = start(args, env);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 60_000);
  const r = await p.exited;
  clearTimeout(timer);
  return r;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const addr = s.address();
  await new Promise((r) => s.close(r));
  return typeof addr === 'object' && addr ? addr.port : 0;
}

interface Server extends Started {
  readonly url: string;
  readonly output: () => Run;
}

/** `upshift serve` on a free port; resolves once its one-line JSON "listening" log appears. */
async function serve(args: string[], env: Record<string, string> = {}): Promise<Server> {
  const port = await freePort();
  const p = start(['serve', '--port', String(port), ...args], env);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const out = p.output();
    const line = out.stdout.split('\n').find((l) => l.includes('"listening"'));
    if (line) {
      const log = JSON.parse(line) as { msg: string; url: string; level: number; store: string; sqlite_writer?: string };
      expect(log.msg).toBe('listening');
      expect(log.url).toBe(`http://127.0.0.1:${port}`);
      // A process that answers HTTP keeps SQLite's write batches off its event loop.
      if (log.store === 'sqlite') expect(log.sqlite_writer).toBe(env.UPSHIFT_SQLITE_WRITER ?? 'thread');
      return { ...p, url: log.url };
    }
    if (out.code !== null || Date.now() > deadline) {
      p.child.kill('SIGKILL');
      throw new Error(`serve did not start (exit ${out.code}):\n${out.stdout}\n${out.stderr}`);
    }
    await sleep(50);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface JobJson {
  job_id: string;
  status: string;
  attempt: number;
  result_id: string | null;
  error: { code: string; message: string } | null;
}

async function getJob(url: string, jobId: string, org = 'acme'): Promise<JobJson> {
  const r = await fetch(`${url}/analyze/jobs/${jobId}`, { headers: { 'x-org-id': org } });
  expect(r.status).toBe(200);
  return (await r.json()) as JobJson;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const wordCount = join(root, 'examples', 'wordCount.mjs');

beforeAll(() => {
  if (!existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))) {
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: root });
  }
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await Promise.all([...children].map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('close', r)))));
  rmSync(dir, { recursive: true, force: true });
});

describe('configuration errors', () => {
  const cases: [string[], string, string][] = [
    [['--port', '99999'], 'UPSHIFT_PORT', '--port'],
    [['--concurrency', '0'], 'UPSHIFT_WORKER_CONCURRENCY', '--concurrency'],
    [['--auth-mode', 'open'], 'UPSHIFT_AUTH_MODE', '--auth-mode'],
    [['--log-level', 'loud'], 'UPSHIFT_LOG_LEVEL', '--log-level'],
    [['--database', 'mysql://db/x'], 'UPSHIFT_DATABASE_URL', '--database'],
    [['--host', '0.0.0.0'], 'UPSHIFT_HOST', 'UPSHIFT_ALLOW_TRUSTED_HEADER_ON_PUBLIC_BIND'],
  ];
  for (const [flags, key, mention] of cases) {
    it(`serve ${flags.join(' ')} exits 2 naming ${key}`, async () => {
      const r = await cli(['serve', ...flags, '--data-dir', join(dir, 'never')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^upshift: CONFIG_INVALID: ${key}=`));
      expect(r.stderr).toContain(mention);
      expect(r.stderr.trim().split('\n')).toHaveLength(1); // one line, no stack trace
      expect(existsSync(join(dir, 'never'))).toBe(false); // failed before touching anything
    });
  }

  it('an environment value is checked like a flag; a flag overrides it', async () => {
    const bad = await cli(['serve', '--data-dir', join(dir, 'never')], { UPSHIFT_WORKER_CONCURRENCY: 'lots' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('UPSHIFT_WORKER_CONCURRENCY="lots"');
    expect(bad.stderr).not.toContain('set by');
  });

  it('an analyzer module that cannot be loaded is a configuration error', async () => {
    const r = await cli(['serve', '--analyzers', join(dir, 'missing.mjs'), '--data-dir', join(dir, 'badmod')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('CONFIG_INVALID: cannot load analyzer module');
  });
});

describe('upshift migrate', () => {
  it('applies migrations once, then reports the schema up to date (exit 0 both times)', async () => {
    const db = `sqlite:${join(dir, 'migrate', 'm.db')}`;
    const first = await cli(['migrate', '--database', db]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^applied \S+/m);
    const second = await cli(['migrate', '--database', db]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe('schema is up to date; no migrations applied\n');
  });

  it('refuses a database migrated by a newer Upshift (exit 1, STORE_SCHEMA_TOO_NEW), for migrate and serve', async () => {
    const file = join(dir, 'migrate', 'future.db');
    expect((await cli(['migrate', '--database', `sqlite:${file}`])).code).toBe(0);
    // Pretend a newer release applied one more migration (the SQLite adapter's ledger table).
    // The driver this Node runs (better-sqlite3 13 on Node >= 22), as the store loads it.
    const Database = loadSqliteDriver();
    const db = new Database(file);
    db.prepare('INSERT INTO schema_migrations (version, name, applied_at, checksum) VALUES (9999, ?, ?, ?)').run('9999_from_the_future', Date.now(), 'x');
    db.close();
    for (const cmd of ['migrate', 'serve']) {
      const r = await cli([cmd, '--database', `sqlite:${file}`]);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^upshift: STORE_SCHEMA_TOO_NEW: .*9999/);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('serve with a custom analyzer, and the jobs client', () => {
  let server: Server;
  const dataDir = join(dir, 'a');
  const target = (): string[] => ['--url', server.url, '--org', 'acme'];

  beforeAll(async () => {
    server = await serve(['--data-dir', dataDir, '--analyzers', wordCount, '--log-level', 'info']);
  });
  afterAll(async () => {
    server.child.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });

  it('keeps the SQLite file in --data-dir', () => {
    expect(existsSync(join(dataDir, 'upshift.db'))).toBe(true);
  });

  it('jobs submit --wait runs the custom analyzer to completion (exit 0) and prints the job', async () => {
    const r = await cli(['jobs', 'submit', 'word-count', '--input', '{"text":"the cat and the hat"}', '--wait', ...target()]);
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout) as JobJson;
    expect(job.status).toBe('completed');
    expect(r.stderr).toContain(`submitted ${job.job_id}`);
    expect(r.stderr).toContain('job.completed completed');
    const permalink = await fetch(`${server.url}/analyze/results/${job.result_id}`, { headers: { 'x-org-id': 'acme' } });
    expect(permalink.status).toBe(200);
    const body = (await permalink.json()) as { kind: string; payload: { words: number; top: { word: string; count: number }[] } };
    expect(body.kind).toBe('final');
    expect(body.payload.words).toBe(5);
    expect(body.payload.top[0]).toEqual({ word: 'the', count: 2 });
  });

  it('jobs get / submit print JSON; idempotency keys return the same job', async () => {
    const a = await cli(['jobs', 'submit', 'noop', '--input', '{"x":1}', '--idempotency-key', 'same', ...target()]);
    const b = await cli(['jobs', 'submit', 'noop', '--input', '{"x":1}', '--idempotency-key', 'same', ...target()]);
    expect(a.code, a.stderr).toBe(0);
    const ref = JSON.parse(a.stdout) as { job_id: string; stream_url: string };
    expect(JSON.parse(b.stdout).job_id).toBe(ref.job_id);
    expect(ref.stream_url).toBe(`/analyze/jobs/${ref.job_id}/stream`);
    const got = await cli(['jobs', 'get', ref.job_id, ...target()]);
    expect(got.code).toBe(0);
    expect(JSON.parse(got.stdout).job_id).toBe(ref.job_id);
  });

  it('jobs tail prints the org\'s events as JSON lines from a position; bad flags exit 2', async () => {
    const org = ['--url', server.url, '--org', 'tail-org'];
    const sub = await cli(['jobs', 'submit', 'noop', '--input', '{"t":1}', '--wait', ...org]);
    expect(sub.code, sub.stderr).toBe(0);
    const jobId = (JSON.parse(sub.stdout) as JobJson).job_id;
    // The org's whole history from position 0: this job's three events, in order.
    const r = await cli(['jobs', 'tail', '--after', '0', '--count', '3', ...org]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { job_id: string; type: string; position: number });
    expect(lines.map((e) => [e.job_id, e.type])).toEqual([[jobId, 'job.queued'], [jobId, 'job.started'], [jobId, 'job.completed']]);
    expect(lines[0]!.position).toBeLessThan(lines[1]!.position);
    // Resuming after the second event's position yields the third.
    const rest = await cli(['jobs', 'tail', '--after', String(lines[1]!.position), '--count', '1', ...org]);
    expect((JSON.parse(rest.stdout) as { type: string }).type).toBe('job.completed');
    for (const bad of [['--after', '-1'], ['--count', '0'], ['--after', 'x']]) {
      const u = await cli(['jobs', 'tail', ...bad, ...org]);
      expect(u.code, bad.join(' ')).toBe(2);
    }
  });

  it('jobs wait exits 1 for a failed job', async () => {
    const sub = await cli(['jobs', 'submit', 'sleep', '--input', '{"ms":50,"fail":"permanent"}', ...target()]);
    const jobId = (JSON.parse(sub.stdout) as JobJson).job_id;
    const r = await cli(['jobs', 'wait', jobId, ...target()]);
    expect(r.code).toBe(1);
    const job = JSON.parse(r.stdout) as JobJson;
    expect(job.status).toBe('failed');
    expect(r.stderr).toContain('job.failed failed');
  });

  it('jobs wait exits 3 when the job is canceled while it waits', async () => {
    const sub = await cli(['jobs', 'submit', 'sleep', '--input', '{"ms":30000,"steps":300}', ...target()]);
    const jobId = (JSON.parse(sub.stdout) as JobJson).job_id;
    const waiting = start(['jobs', 'wait', jobId, ...target()]);
    await until('the waiter to see progress', async () => waiting.output().stderr.includes('job.progress'));
    const cancel = await cli(['jobs', 'cancel', jobId, ...target()]);
    expect(cancel.code, cancel.stderr).toBe(0);
    const r = await waiting.exited;
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).status).toBe('canceled');
    // Cancel is idempotent: again on a terminal job answers its state, exit 0.
    expect((await cli(['jobs', 'cancel', jobId, ...target()])).code).toBe(0);
  });

  it('jobs submit --file uploads a CSV and profiles it', async () => {
    const csv = join(dir, 'cities.csv');
    writeFileSync(csv, 'city,temp\nOslo,3\nLima,19\nCairo,25\n');
    const r = await cli(['jobs', 'submit', 'dataset-profile', '--file', csv, '--format', 'csv', '--wait', ...target()]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).status).toBe('completed');
  });

  it('a problem answer prints `code: detail` and exits 1', async () => {
    const r = await cli(['jobs', 'get', 'job_00000000000000000000000000', ...target()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^JOB_NOT_FOUND: /);
    const other = await cli(['jobs', 'submit', 'no-such-analyzer', '--input', '{}', ...target()]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/^ANALYZER_NOT_FOUND: /);
  });
});

describe('keys and api-key mode', () => {
  const dataDir = join(dir, 'keys');
  let server: Server;
  let key = '';
  let keyId = '';

  beforeAll(async () => {
    const created = await cli(['keys', 'create', '--org', 'acme', '--label', 'ci', '--json', '--data-dir', dataDir]);
    expect(created.code, created.stderr).toBe(0);
    ({ key, key_id: keyId } = JSON.parse(created.stdout) as { key: string; key_id: string });
    expect(key).toMatch(/^upk_/);
    server = await serve(['--data-dir', dataDir, '--auth-mode', 'api-key', '--analyzers', wordCount]);
  });
  afterAll(async () => {
    server.child.kill('SIGTERM');
    await server.exited;
  });

  it('keys create (text) prints the key once, with its id', async () => {
    const r = await cli(['keys', 'create', '--org', 'globex', '--data-dir', dataDir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^key_id: key_\w+\norg_id: globex\nkey: +upk_\S+\n$/);
  });

  it('keys list shows ids and orgs, never a secret or hash', async () => {
    const r = await cli(['keys', 'list', '--org', 'acme', '--data-dir', dataDir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(keyId);
    expect(r.stdout).toContain('ci');
    expect(r.stdout).not.toContain(key.split('.')[1]);
    expect(r.stdout).not.toMatch(/[0-9a-f]{64}/);
    const json = await cli(['keys', 'list', '--json', '--data-dir', dataDir]);
    const rows = JSON.parse(json.stdout) as Record<string, unknown>[];
    expect(rows.map((k) => k.org_id).sort()).toEqual(['acme', 'globex']);
    for (const row of rows) expect(Object.keys(row).sort()).toEqual(['created_at', 'key_id', 'label', 'org_id', 'revoked_at']);
  });

  it('the key authenticates client commands; no key is refused', async () => {
    const ok = await cli(['jobs', 'submit', 'word-count', '--input', '{"text":"a b"}', '--wait', '--url', server.url, '--org', 'acme', '--api-key', key]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).status).toBe('completed');
    const viaEnv = await cli(['jobs', 'get', JSON.parse(ok.stdout).job_id], { UPSHIFT_URL: server.url, UPSHIFT_API_KEY: key, UPSHIFT_ORG: 'acme' });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    const none = await cli(['jobs', 'submit', 'word-count', '--input', '{"text":"a"}', '--url', server.url, '--org', 'acme']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^AUTH_REQUIRED: /);
    const otherOrg = await cli(['jobs', 'submit', 'word-count', '--input', '{"text":"a"}', '--url', server.url, '--org', 'globex', '--api-key', key]);
    expect(otherOrg.code).toBe(1);
    expect(otherOrg.stderr).toMatch(/^TENANT_MISMATCH: /);
  });

  it('a revoked key stops working', async () => {
    const r = await cli(['keys', 'revoke', keyId, '--data-dir', dataDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`revoked ${keyId}\n`);
    const denied = await cli(['jobs', 'submit', 'word-count', '--input', '{"text":"a"}', '--url', server.url, '--org', 'acme', '--api-key', key]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^AUTH_INVALID: /);
    const again = await cli(['keys', 'revoke', keyId, '--data-dir', dataDir]);
    expect(again.code, 'revoke is idempotent').toBe(0);
    const unknown = await cli(['keys', 'revoke', 'key_0000000000000000', '--data-dir', dataDir]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('upshift: key key_0000000000000000 not found\n');
  });
});

describe('graceful shutdown', () => {
  it('SIGTERM mid-job exits 0 within the grace period; after restart the released job completes', async () => {
    const dataDir = join(dir, 'graceful');
    const env = { UPSHIFT_SHUTDOWN_GRACE_MS: '1000', UPSHIFT_LOG_LEVEL: 'info' };
    const first = await serve(['--data-dir', dataDir], env);
    const sub = await cli(['jobs', 'submit', 'sleep', '--input', '{"ms":3000,"steps":6}', '--url', first.url, '--org', 'acme']);
    const jobId = (JSON.parse(sub.stdout) as JobJson).job_id;
    await until('the job to run', async () => (await getJob(first.url, jobId)).status === 'running');

    const t0 = Date.now();
    first.child.kill('SIGTERM');
    const stopped = await first.exited;
    const tookMs = Date.now() - t0;
    expect(stopped.code, stopped.stdout + stopped.stderr).toBe(0);
    expect(tookMs).toBeLessThan(1000 + 3000); // the grace, plus the release and closing the store
    expect(stopped.stdout).toContain('"msg":"stopped"');

    const second = await serve(['--data-dir', dataDir], env);
    const waited = await cli(['jobs', 'wait', jobId, '--url', second.url, '--org', 'acme']);
    expect(waited.code, waited.stderr).toBe(0);
    const job = JSON.parse(waited.stdout) as JobJson;
    expect(job.status).toBe('completed');
    expect(job.attempt).toBeGreaterThanOrEqual(2); // released at shutdown, run again after restart
    second.child.kill('SIGINT');
    expect((await second.exited).code).toBe(0);
  });

  it('a second signal exits at once without draining', async () => {
    const dataDir = join(dir, 'impatient');
    const server = await serve(['--data-dir', dataDir], { UPSHIFT_SHUTDOWN_GRACE_MS: '60000' });
    const sub = await cli(['jobs', 'submit', 'sleep', '--input', '{"ms":60000}', '--url', server.url, '--org', 'acme']);
    const jobId = (JSON.parse(sub.stdout) as JobJson).job_id;
    await until('the job to run', async () => (await getJob(server.url, jobId)).status === 'running');
    server.child.kill('SIGTERM');
    await until('shutdown to begin', async () => server.output().stdout.includes('shutting down'));
    const t0 = Date.now();
    server.child.kill('SIGTERM');
    const r = await server.exited;
    expect(r.code).toBe(143);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});
