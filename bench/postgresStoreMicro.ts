import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { createPostgresJobStore } from '../src/adapters/store/postgres/postgresJobStore.js';
import { asOrgId, newJobId, newResultId } from '../src/core/ids.js';
import type { ClaimedJob } from '../src/core/job.js';

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
const orgs = ['org-a', 'org-b', 'org-c', 'org-d'].map(asOrgId);

let submitted = 0;
let finished = 0;
const t0 = performance.now();
const cpu0 = process.cpuUsage();

async function submitter(): Promise<void> {
  while (submitted < N) {
    const n = Math.min(500, N - submitted);
    submitted += n;
    await Promise.all(
      Array.from({ length: n }, (_, i) => {
        const now = Date.now();
        return store.submitJob({
          jobId: newJobId(now), orgId: orgs[i % orgs.length]!, analyzer: 'noop', input: { i }, priority: 0, maxAttempts: 3,
          idempotencyKey: null, requestHash: null, traceContext: null, now,
        });
      }),
    );
  }
}

async function worker(w: number): Promise<void> {
  let o = w;
  while (finished < N) {
    const ready = await store.readyOrgs(Date.now(), null);
    const org = ready[o++ % Math.max(1, ready.length)]?.orgId;
    const jobs: ClaimedJob[] = org
      ? await store.claimJobs({ orgId: asOrgId(org), limit: BATCH, workerId: `w${w}`, now: Date.now(), leaseMs: 30_000, analyzers: null })
      : [];
    if (jobs.length === 0) {
      await new Promise((r) => setTimeout(r, 1));
      continue;
    }
    await Promise.all(
      jobs.map((j) =>
        store.finishJob({ orgId: j.orgId, jobId: j.jobId, attempt: j.attempt, leaseToken: j.leaseToken }, { status: 'completed', resultId: newResultId(Date.now()), payload: { ok: true } }, Date.now()),
      ),
    );
    finished += jobs.length;
  }
}

let events = 0;
store.onCommitted((evs) => (events += evs.length));
await Promise.all([submitter(), ...Array.from({ length: WORKERS }, (_, w) => worker(w))]);
const secs = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const cpuSecs = (cpu.user + cpu.system) / 1e6;
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
