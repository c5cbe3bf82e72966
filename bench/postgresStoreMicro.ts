import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { createPostgresJobStore } from '../src/adapters/store/postgres/postgresJobStore.js';
import { driveStoreLoad } from './storeMicroLoad.js';

/**
 * Store-level microbenchmark, the PostgreSQL twin of sqliteStoreMicro.ts: N noop jobs
 * submitted, claimed in batches of 50 and finished as completed, full event history
 * (job.queued, job.started, job.completed) and a final result row per job, submitter and
 * workers concurrent. Runs in a throwaway schema that is dropped afterwards.
 * Usage: npm run build && node dist/bench/postgresStoreMicro.js [jobs=20000] [workers=8]
 *   (UPSHIFT_BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test)
 */
const N = Number(process.argv[2] ?? 20_000);
const WORKERS = Number(process.argv[3] ?? 8);
const BATCH = 50;
const url = process.env.UPSHIFT_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `upshift_bench_${randomBytes(4).toString('hex')}`;
const store = createPostgresJobStore({ url, schema, poolSize: 10, applicationName: schema, maxConcurrentBatches: Number(process.env.UPSHIFT_BENCH_CONCURRENT_BATCHES ?? 3) });
await store.migrate();
const { seconds: secs, cpuSeconds: cpuSecs, events } = await driveStoreLoad(store, N, WORKERS, BATCH);
const stats = await store.queueStats(Date.now());
const admin = new pg.Client({ connectionString: url });
await admin.connect();
// CPU of this store's PostgreSQL backends (same machine): the machine is shared, so CPU per
// job (node + backends) is the steadier number; wall-clock jobs/s moves with the neighbours.
const pids = (await admin.query(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, [schema])).rows.map((r) => Number(r.pid));
const ticks = pids.reduce((sum, pid) => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return sum + Number(f[11]) + Number(f[12]);
  } catch {
    return sum;
  }
}, 0);
const pgCpuSecs = ticks / 100;
await store.close();
const stored = Number((await admin.query(`SELECT count(*) AS n FROM "${schema}".job_events`)).rows[0].n);
await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
await admin.end();
console.log(JSON.stringify({ store: 'postgres', jobs: N, workers: WORKERS, batch: BATCH, seconds: +secs.toFixed(3), jobsPerSecond: Math.round(N / secs), nodeCpuSeconds: +cpuSecs.toFixed(3), pgBackendCpuSeconds: +pgCpuSecs.toFixed(3), jobsPerCpuSecond: Math.round(N / (cpuSecs + pgCpuSecs)), events, storedEvents: stored, left: stats }));
