// docs/runbook.md, "Staging smoke checklist", executed step by step against a real server
// process (`node bin/upshift.js serve`) and the real `upshift retention` CLI, both from dist/.
// Each `it` is one checklist step, in order; they share the job and the server.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, repoRoot, startServer, type ServerProc } from '../helpers/proc.js';
import { sqliteFingerprint, type SqliteFingerprint } from '../helpers/sqliteFingerprint.js';

const dir = mkdtempSync(join(tmpdir(), 'upshift-runbook-'));
const storeFile = join(dir, 'data', 'upshift.db');
const artifacts = join(dir, 'artifacts', 'async');
const ORG = 'smoke-org';
let server: ServerProc;

/** Environment of the children: ours minus any UPSHIFT_* the developer happens to have set. */
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('UPSHIFT_'))) as Record<string, string>;

beforeAll(async () => {
  server = await startServer({ ...baseEnv, UPSHIFT_DATA_DIR: join(dir, 'data'), UPSHIFT_DATABASE_URL: `sqlite:${storeFile}`, UPSHIFT_POLL_MS: '50' });
});

afterAll(async () => {
  if (server && server.child.exitCode === null) {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `upshift <args>` as an operator runs it. */
function upshift(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(repoRoot, 'bin', 'upshift.js'), ...args], { cwd: dir, env: baseEnv, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function eventually<T>(fn: () => Promise<T | null | undefined | false>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The store's content once the server is quiet (two equal reads in a row). */
async function quietFingerprint(): Promise<SqliteFingerprint> {
  let prev = sqliteFingerprint(storeFile);
  return eventually(async () => {
    await new Promise((r) => setTimeout(r, 200));
    const next = sqliteFingerprint(storeFile);
    const same = next.digest === prev.digest;
    prev = next;
    return same ? next : null;
  }, 'the server to stop writing');
}

interface Job {
  job_id: string;
  status: string;
  result_id: string | null;
  finished_at: string | null;
  partial_count: number;
}

const TERMINAL = ['completed', 'failed', 'canceled'];
const RETENTION = ['--store-file', storeFile, '--results-ttl-seconds', '0', '--events-ttl-seconds', '0'];
let jobId = '';
let job: Job;
let dryReport: Record<string, any>;

describe('runbook: staging smoke checklist', () => {
  it('1. GET /health answers 200', async () => {
    const r = await api(server.url, '/health', { org: ORG });
    expect(r).toEqual({ status: 200, body: { status: 'ok' } });
  });

  it('2. an async job runs to a terminal state', async () => {
    const submitted = await api<{ job_id: string; status: string }>(server.url, '/analyze/jobs', { org: ORG, body: { analyzer: 'sleep', input: { ms: 100, steps: 2 } } });
    expect(submitted.status).toBe(202);
    jobId = submitted.body.job_id;
    job = await eventually(async () => {
      const r = await api<Job>(server.url, `/analyze/jobs/${jobId}`, { org: ORG });
      return TERMINAL.includes(r.body.status) ? r.body : null;
    }, 'a terminal job');
    expect(job.status).toBe('completed');
  });

  it('3. GET /analyze/jobs/{job_id} has result_id', async () => {
    const r = await api<Job>(server.url, `/analyze/jobs/${jobId}`, { org: ORG });
    expect(r.status).toBe(200);
    expect(r.body.result_id).toMatch(/^res_[0-9a-z]{26}$/);
    expect(r.body.partial_count).toBe(2);
  });

  it('4. GET /analyze/results/{result_id}?view=latest answers 200 with projection_mode (other tenant: 404)', async () => {
    const r = await api<Record<string, unknown>>(server.url, `/analyze/results/${job.result_id}?view=latest`, { org: ORG });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ result_id: job.result_id, requested_result_id: job.result_id, projection_mode: 'latest', job_id: jobId, kind: 'final' });
    const foreign = await api<Record<string, unknown>>(server.url, `/analyze/results/${job.result_id}?view=latest`, { org: 'other-org' });
    expect(foreign.status).toBe(404);
  });

  it('5. GET /analyze/jobs/{job_id}/notifications?channel=in_app has the terminal notification', async () => {
    const notifications = await eventually(async () => {
      const r = await api<{ notifications?: Array<{ type: string; job_id: string }> }>(server.url, `/analyze/jobs/${jobId}/notifications?channel=in_app&limit=20`, { org: ORG });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.body.notifications?.some((n) => n.type === `async.job.${job.status}`) ? r.body.notifications : null;
    }, 'the in-app notification');
    expect(notifications[0]).toMatchObject({ type: 'async.job.completed', job_id: jobId });
  });

  it('6. a retention dry run writes the JSON report and changes nothing', async () => {
    const before = await quietFingerprint();
    expect(before.counts).toMatchObject({ jobs: 1, job_results: 3 });
    const output = join(artifacts, 'retention-dry-run.json');
    const run = await upshift(['retention', ...RETENTION, '--dry-run', '--output-json', output]);
    expect(run.code, run.stderr).toBe(0);
    dryReport = JSON.parse(readFileSync(output, 'utf8'));
    expect(JSON.parse(run.stdout)).toEqual(dryReport);
    expect(dryReport).toMatchObject({
      dry_run: true,
      completed: true,
      terminal_job_count: 1,
      results: { delete_count: 3, kept_count: 0 },
      events: { delete_count: before.counts.job_events, kept_count: 0 },
      skipped_missing_timestamp: 0,
    });
    // Verified, not assumed: every table's row count and content digest are unchanged.
    const after = sqliteFingerprint(storeFile);
    expect(after.counts).toEqual(before.counts);
    expect(after.digest).toBe(before.digest);
    expect((await api(server.url, `/analyze/results/${job.result_id}?view=latest`, { org: ORG })).status).toBe(200);
  });

  it('7. a live run deletes what the dry run counted; a second live run deletes nothing', async () => {
    const live = await upshift(['retention', ...RETENTION, '--output-json', join(artifacts, 'retention-live.json')]);
    expect(live.code, live.stderr).toBe(0);
    const report = JSON.parse(live.stdout);
    expect(report).toMatchObject({ dry_run: false, terminal_job_count: 1 });
    expect(report.results).toMatchObject({ delete_count: dryReport.results.delete_count, kept_count: dryReport.results.kept_count });
    expect(report.events).toMatchObject({ delete_count: dryReport.events.delete_count, kept_count: dryReport.events.kept_count });
    expect(sqliteFingerprint(storeFile).counts).toMatchObject({ jobs: 1, job_results: 0, job_events: 0, removed_results: 3 });

    // What tenants see now: the permalink is gone (410) for its own org, still 404 for others; the job stays.
    const gone = await api<Record<string, unknown>>(server.url, `/analyze/results/${job.result_id}?view=latest`, { org: ORG });
    expect(gone).toMatchObject({ status: 410, body: { code: 'RESULT_GONE' } });
    expect((await api(server.url, `/analyze/results/${job.result_id}?view=latest`, { org: 'other-org' })).status).toBe(404);
    const still = await api<Job>(server.url, `/analyze/jobs/${jobId}`, { org: ORG });
    expect(still.status).toBe(200);
    expect(still.body).toMatchObject({ status: 'completed', result_id: job.result_id, finished_at: job.finished_at });

    const second = await upshift(['retention', ...RETENTION, '--output-json', join(artifacts, 'retention-live-2.json')]);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ dry_run: false, results: { delete_count: 0 }, events: { delete_count: 0 } });
  });
});
