import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { loadSqliteDriver } from '../../src/adapters/store/sqlite/sqliteDriver.js';
import { createSqliteJobStore } from '../../src/adapters/store/sqlite/sqliteJobStore.js';
import { QUERY_SQL } from '../../src/adapters/store/sqlite/sqliteQueries.js';
import { loadConfig } from '../../src/config/config.js';
import { newJobId, newResultId } from '../../src/core/ids.js';
import type { RetentionReport } from '../../src/core/retention.js';
import { createUpshift } from '../../src/main.js';
import { percentile } from '../harness.js';
import type { LoadConfig } from './httpLoadWorker.js';

/**
 * Retention under API load, embedded mode (one process: HTTP API, workers, SQLite writer,
 * retention — the scheduled-run setup, the worst case for API latency).
 *   retention <events> <rate/s> <idle seconds>
 * 1. Setup: a migrated store file, then bulk rows written with the store's own INSERT/UPDATE
 *    statements (QUERY_SQL of sqliteQueries.ts) in large transactions: jobs of 20 events
 *    (queued, started, 15 progress, 2 partials, completed) and 3 results each, finished 30 days
 *    ago (eligible), plus 4 % young terminal jobs (kept). Far faster than running the jobs.
 * 2. Upshift serves HTTP from this process; a worker thread sends GET /analyze/jobs/{id} at a
 *    fixed rate over keep-alive sockets and measures latency from the scheduled send time.
 * 3. Phases: warm-up, idle, dry run, live run (same `now`), second live run. Reports p50/p99
 *    per phase, the p99 ratio live/idle, dry-run counts vs live deletions (must be equal) and
 *    the second run's deletions (must be 0). Exits 1 if the counts disagree.
 * Retention settings come from the environment (UPSHIFT_RETENTION_BATCH_SIZE, …_MAX_ROWS_PER_BATCH,
 * …_PAUSE_MS), defaulting to the server defaults.
 */
const [eventsArg = '1000000', rateArg = '500', idleArg = '10'] = process.argv.slice(2);
const EVENTS_PER_JOB = 20;
const PARTIALS = 2;
const DAY = 86_400_000;
const targetEvents = Number(eventsArg);
const oldJobs = Math.ceil(targetEvents / EVENTS_PER_JOB);
const youngJobs = Math.ceil(oldJobs * 0.04);
const org = 'bench';
const dir = mkdtempSync(join(tmpdir(), 'upshift-bench-retention-'));
const file = join(dir, 'store.db');
const emit = (metric: string, value: number, unit: string, extra?: Record<string, number | string>) =>
  process.stdout.write(JSON.stringify({ system: 'upshift-embedded', metric, value, unit, extra }) + '\n');

// --- 1. setup ---------------------------------------------------------------------------
const setupStart = performance.now();
const migrator = createSqliteJobStore({ file });
await migrator.migrate();
await migrator.close();
const now = Date.now();
const jobIds: string[] = [];
{
  const Database = loadSqliteDriver();
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF'); // setup only; the server reopens with the store's settings
  const s = (name: string) => {
    const sql = QUERY_SQL[name];
    if (sql === undefined) throw new Error(`setup: the store has no statement named ${name}`);
    return db.prepare(sql);
  };
  const insertJob = s('insertJob');
  const markRunning = s('markRunning');
  const addPartial = s('addPartial');
  // The store's completion by rowid (the lease is checked by the writer before it, in the same
  // transaction; setup holds the only lease).
  const complete = s('complete');
  const insertEvent = s('insertEvent');
  const insertResult = s('insertResult');
  const progressPayload = JSON.stringify({ fraction: 0.5, message: 'rows 100000-199999' });
  const writeJob = (finishedAt: number): void => {
    const created = finishedAt - 60_000;
    const jobId = newJobId(created);
    jobIds.push(jobId);
    let seq = 0;
    const event = (type: string, status: string, payload: unknown, at: number) =>
      insertEvent.run(jobId, ++seq, org, type, status, typeof payload === 'string' ? payload : JSON.stringify(payload), at);
    const { lastInsertRowid: rowid } = insertJob.run(jobId, org, 'dataset-profile', JSON.stringify({ format: 'csv', file: '/data/uploads/bench/x.csv' }), 3, 0, null, null, created, created, null);
    event('job.queued', 'queued', { attempt: 1 }, created);
    event('job.started', 'running', { attempt: 1, worker_id: 'wrk_bench' }, created + 1);
    let resultId = '';
    for (let p = 1; p <= PARTIALS; p++) {
      resultId = newResultId(Date.now());
      insertResult.run(resultId, jobId, org, 'partial', `rows-${p}`, p, JSON.stringify({ rows: p * 100_000, columns: 12 }), created + p);
      event('job.partial', 'running', { result_id: resultId, chunk_key: `rows-${p}`, seq: p }, created + p);
    }
    for (let k = seq; k < EVENTS_PER_JOB - 1; k++) event('job.progress', 'running', progressPayload, created + 10 + k);
    const finalId = newResultId(Date.now());
    insertResult.run(finalId, jobId, org, 'final', null, PARTIALS + 1, JSON.stringify({ rows: 250_000, columns: 12, profile: 'x'.repeat(200) }), finishedAt);
    event('job.completed', 'completed', { result_id: finalId, attempt: 1 }, finishedAt);
    markRunning.run('lse_bench', null, 'wrk_bench', created + 1, 2, rowid);
    addPartial.run(resultId, PARTIALS, seq - 1, org, jobId);
    if (complete.run(finalId, finishedAt, seq, rowid).changes !== 1) throw new Error(`setup: completing ${jobId} updated no row`);
  };
  const insertAll = db.transaction((count: number, finishedAt: (i: number) => number) => {
    for (let i = 0; i < count; i++) writeJob(finishedAt(i));
  });
  for (let i = 0; i < oldJobs; i += 10_000) insertAll(Math.min(10_000, oldJobs - i), (k) => now - 30 * DAY + i + k);
  insertAll(youngJobs, (k) => now - 3_600_000 + k);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}
const setupSeconds = (performance.now() - setupStart) / 1000;

// --- 2. server + load -------------------------------------------------------------------
const config = loadConfig(process.env, {
  UPSHIFT_DATABASE_URL: `sqlite:${file}`,
  UPSHIFT_DATA_DIR: dir,
  UPSHIFT_HOST: '127.0.0.1',
  UPSHIFT_PORT: '0',
  UPSHIFT_LOG_LEVEL: 'warn',
  UPSHIFT_RETENTION_INTERVAL_MS: '0',
});
const up = await createUpshift({ config });
const url = (await up.start()) as string;
const sample = Array.from({ length: 2000 }, (_, i) => jobIds[Math.floor((i * jobIds.length) / 2000)] as string);
const load: LoadConfig = { url, org, paths: sample.map((id) => `/analyze/jobs/${id}`), ratePerSecond: Number(rateArg), connections: 16 };
const worker = new Worker(new URL('./httpLoadWorker.js', import.meta.url), { workerData: load });
// The server thread's own stalls (event-loop delay), per phase: separates blocking in this
// process from network and scheduling noise seen by the load generator.
const loopDelay: Record<string, IntervalHistogram> = {};
let currentLoop = null as IntervalHistogram | null;
const phase = (p: string) => {
  worker.postMessage({ phase: p });
  currentLoop?.disable();
  currentLoop = loopDelay[p] = monitorEventLoopDelay({ resolution: 1 });
  currentLoop.enable();
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- 3. phases --------------------------------------------------------------------------
const ttl = { resultsTtlMs: 7 * DAY, eventsTtlMs: 3 * DAY };
await sleep(2000); // warm-up (JIT, sockets)
phase('idle');
await sleep(Number(idleArg) * 1000);
phase('dry_run');
const dry = await up.runRetention({ ...ttl, now, dryRun: true });
phase('between');
await sleep(1000);
phase('live');
const live = await up.runRetention({ ...ttl, now, dryRun: false });
phase('after');
await sleep(1000);
const second = await up.runRetention({ ...ttl, now, dryRun: false });
currentLoop?.disable();
worker.postMessage({ cmd: 'stop' });
const result = await new Promise<{ samples: Record<string, number[]>; errors: number; statuses: Record<string, number> }>((resolve) => worker.once('message', resolve));
await worker.terminate();
await up.close();
rmSync(dir, { recursive: true, force: true });

// --- report -----------------------------------------------------------------------------
const sorted = (p: string) => [...(result.samples[p] ?? [])].sort((a, b) => a - b);
const idle = sorted('idle');
const during = sorted('live');
const dryLat = sorted('dry_run');
const n = (r: RetentionReport) => `${r.results.delete_count}/${r.events.delete_count}`;
const extra = { rate_per_s: Number(rateArg), events: oldJobs * EVENTS_PER_JOB, batch: config.retention.batchSize, max_rows: config.retention.maxRowsPerBatch, pause_ms: config.retention.pauseMs };
emit('setup (bulk insert)', setupSeconds, 's', { jobs: oldJobs + youngJobs, events: (oldJobs + youngJobs) * EVENTS_PER_JOB });
emit('GET job p50 idle', percentile(idle, 50), 'ms', { samples: idle.length });
emit('GET job p99 idle', percentile(idle, 99), 'ms', { samples: idle.length });
emit('GET job p50 during live retention', percentile(during, 50), 'ms', { samples: during.length });
emit('GET job p99 during live retention', percentile(during, 99), 'ms', { samples: during.length });
emit('GET job max during live retention', during[during.length - 1] ?? NaN, 'ms');
emit('GET job p99 during dry run', percentile(dryLat, 99), 'ms', { samples: dryLat.length });
const eld = (p: string, q: number) => (loopDelay[p]?.percentile(q) ?? NaN) / 1e6;
emit('server event-loop delay p99 idle', eld('idle', 99), 'ms');
emit('server event-loop delay p99 during live retention', eld('live', 99), 'ms');
emit('server event-loop delay max during live retention', (loopDelay.live?.max ?? NaN) / 1e6, 'ms');
emit('p99 ratio live/idle (target <= 2)', percentile(during, 99) / percentile(idle, 99), 'x', extra);
emit('dry-run events delete_count', dry.events.delete_count, 'rows');
emit('live events deleted', live.events.delete_count, 'rows');
emit('dry-run results delete_count', dry.results.delete_count, 'rows');
emit('live results deleted', live.results.delete_count, 'rows');
const equal = dry.results.delete_count === live.results.delete_count && dry.events.delete_count === live.events.delete_count && dry.results.kept_count === live.results.kept_count && dry.events.kept_count === live.events.kept_count;
emit('dry-run counts == live deletions', equal ? 1 : 0, 'bool', { dry: n(dry), live: n(live) });
emit('second live run deleted', second.results.delete_count + second.events.delete_count, 'rows');
emit('dry run duration', dry.duration_ms / 1000, 's');
emit('live run duration', live.duration_ms / 1000, 's', { transactions: live.transactions });
emit('live delete rate', (live.results.delete_count + live.events.delete_count) / (live.duration_ms / 1000), 'rows/s');
emit('HTTP errors / non-200', result.errors + Object.entries(result.statuses).filter(([s]) => s !== '200').reduce((a, [, c]) => a + c, 0), 'requests');
if (!equal || second.results.delete_count + second.events.delete_count !== 0 || events(live) < targetEvents) process.exitCode = 1;

function events(r: RetentionReport): number {
  return r.events.delete_count;
}
