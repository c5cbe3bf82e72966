import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createSqliteJobStore } from '../../src/adapters/store/sqlite/sqliteJobStore.js';
import { runCli } from '../../src/cli/main.js';
import { asOrgId, newJobId, newResultId } from '../../src/core/ids.js';
import { sqliteFingerprint } from '../helpers/sqliteFingerprint.js';

// `upshift retention` in-process (runCli with injected streams) against real SQLite files:
// exit codes, refusals, the JSON report on stdout and in --output-json.

const dir = mkdtempSync(join(tmpdir(), 'upshift-retention-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const collect = () => {
    const s = new PassThrough();
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString()));
    return { s, text: () => text };
  };
  const out = collect();
  const err = collect();
  const code = await runCli(args, { env: {}, stdout: out.s, stderr: err.s });
  return { code, stdout: out.text(), stderr: err.text() };
}

/**
 * A migrated store file with `n` completed jobs (2 results, 4 events each) finished at `at`;
 * with `inbox`, each also has its in-app notification (written inline, as `serve` does).
 */
async function storeWithJobs(name: string, n: number, at = Date.UTC(2026, 0, 1), inbox = false): Promise<string> {
  const file = join(dir, name);
  const store = createSqliteJobStore({ file, inAppDelivery: inbox ? 'inline' : 'outbox' });
  await store.migrate();
  const org = asOrgId('acme');
  for (let i = 0; i < n; i++) {
    const { job } = await store.submitJob({ jobId: newJobId(at), orgId: org, analyzer: 'noop', input: i, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now: at });
    const [c] = await store.claimJobs({ orgId: org, limit: 1, workerId: 'w', now: at, leaseMs: 1000, analyzers: null });
    const lease = { orgId: org, jobId: job.jobId, attempt: 1, leaseToken: c!.leaseToken };
    await store.recordPartial(lease, 'c', { i }, at);
    await store.finishJob(lease, { status: 'completed', resultId: newResultId(Date.now()), payload: { i } }, at);
  }
  await store.close();
  return file;
}

const pick = (k: object) => {
  const { delete_count, kept_count, job_count } = k as Record<string, number>;
  return { delete_count, kept_count, job_count };
};

const TTL = ['--results-ttl-seconds', '3600', '--events-ttl-seconds', '3600'];

describe('upshift retention', () => {
  it('dry run writes the report to stdout and --output-json and changes nothing; live deletes the same; a rerun deletes 0', async () => {
    const file = await storeWithJobs('happy.db', 5);
    const before = sqliteFingerprint(file);
    const output = join(dir, 'artifacts', 'async', 'retention-dry-run.json');
    const dry = await cli(['retention', '--store-file', file, ...TTL, '--dry-run', '--output-json', output]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).toBe('');
    const report = JSON.parse(dry.stdout);
    expect(JSON.parse(readFileSync(output, 'utf8'))).toEqual(report);
    expect(report).toMatchObject({
      dry_run: true,
      completed: true,
      terminal_job_count: 5,
      results: { delete_count: 10, kept_count: 0 },
      events: { delete_count: 20, kept_count: 0 },
      skipped_missing_timestamp: 0,
    });
    for (const k of ['started_at', 'finished_at', 'duration_ms']) expect(report).toHaveProperty(k);
    expect(sqliteFingerprint(file)).toEqual(before);

    const live = await cli(['retention', '--store-file', file, ...TTL, '--batch-size', '2']);
    expect(live.code, live.stderr).toBe(0);
    const liveReport = JSON.parse(live.stdout);
    const counts = (r: { results: object; events: object }) => ({ results: pick(r.results), events: pick(r.events) });
    expect(liveReport).toMatchObject({ dry_run: false, terminal_job_count: 5 });
    expect(counts(liveReport)).toEqual(counts(report));
    const after = sqliteFingerprint(file);
    expect(after.counts).toMatchObject({ jobs: 5, job_results: 0, job_events: 0, removed_results: 10 });

    const again = await cli(['retention', '--database', `sqlite:${file}`, ...TTL]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ results: { delete_count: 0 }, events: { delete_count: 0 } });
    expect(sqliteFingerprint(file)).toEqual(after);
  });

  it('--notifications-ttl-seconds deletes inbox entries of old jobs; without it they are kept and counted', async () => {
    const file = await storeWithJobs('inbox.db', 3, Date.UTC(2026, 0, 1), true);
    expect(sqliteFingerprint(file).counts).toMatchObject({ notifications: 3 });
    const kept = await cli(['retention', '--store-file', file, ...TTL]);
    expect(kept.code, kept.stderr).toBe(0);
    expect(JSON.parse(kept.stdout).notifications).toEqual({ delete_count: 0, kept_count: 3, job_count: 0, ttl_seconds: null, cutoff: null });
    expect(sqliteFingerprint(file).counts).toMatchObject({ notifications: 3, job_results: 0, job_events: 0 });
    const live = await cli(['retention', '--store-file', file, ...TTL, '--notifications-ttl-seconds', '60']);
    expect(live.code, live.stderr).toBe(0);
    expect(JSON.parse(live.stdout).notifications).toMatchObject({ delete_count: 3, kept_count: 0, job_count: 3, ttl_seconds: 60 });
    expect(sqliteFingerprint(file).counts).toMatchObject({ jobs: 3, notifications: 0 });
  });

  it('--now pins the cutoffs: jobs younger than the TTL at that instant are kept', async () => {
    const at = Date.UTC(2026, 0, 1);
    const file = await storeWithJobs('now.db', 2, at);
    const r = await cli(['retention', '--store-file', file, ...TTL, '--dry-run', '--now', new Date(at + 1000).toISOString()]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ results: { delete_count: 0, kept_count: 4 }, events: { delete_count: 0, kept_count: 8 } });
  });

  it('refuses a missing store file without creating it (exit 1)', async () => {
    const missing = join(dir, 'nope', 'missing.db');
    const r = await cli(['retention', '--store-file', missing, ...TTL, '--dry-run']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/does not exist; refusing to create an empty database/);
    expect(r.stdout).toBe('');
    expect(existsSync(missing)).toBe(false);
    expect(existsSync(join(dir, 'nope'))).toBe(false);
  });

  it('refuses an unmigrated database and never migrates it (exit 1)', async () => {
    const file = join(dir, 'empty.db');
    writeFileSync(file, '');
    const r = await cli(['retention', '--store-file', file, ...TTL]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/STORE_NOT_MIGRATED/);
    expect(Object.keys(sqliteFingerprint(file).counts)).toEqual([]);
  });

  it('usage errors exit 2 with a clear message', async () => {
    const file = await storeWithJobs('usage.db', 0);
    const cases: Array<[string[], RegExp]> = [
      [['retention', '--store-file', file, '--events-ttl-seconds', '1'], /--results-ttl-seconds/],
      [['retention', '--store-file', file, '--results-ttl-seconds', '-1', '--events-ttl-seconds', '1'], /--results-ttl-seconds must be an integer/],
      [['retention', '--store-file', file, '--results-ttl-seconds', '1', '--events-ttl-seconds', '1.5'], /--events-ttl-seconds must be an integer/],
      [['retention', '--store-file', file, '--results-ttl-seconds', 'abc', '--events-ttl-seconds', '1'], /--results-ttl-seconds must be an integer/],
      [['retention', '--store-file', file, ...TTL, '--notifications-ttl-seconds', '-3'], /--notifications-ttl-seconds must be an integer/],
      [['retention', '--store-file', file, ...TTL, '--batch-size', '0'], /--batch-size/],
      [['retention', '--store-file', file, '--database', `sqlite:${file}`, ...TTL], /either --store-file or --database/],
      [['retention', '--store-file', file, ...TTL, '--now', '2999-01-01T00:00:00Z'], /--now must not be in the future/],
      [['retention', '--store-file', file, ...TTL, '--now', 'yesterday'], /--now must be an ISO-8601/],
      [['retention', '--database', 'mysql://x', ...TTL], /UPSHIFT_DATABASE_URL/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
    }
  });
});
