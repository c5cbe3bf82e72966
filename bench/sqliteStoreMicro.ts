import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSqliteJobStore } from '../src/adapters/store/sqlite/sqliteJobStore.js';
import { asOrgId, newJobId, newResultId } from '../src/core/ids.js';
import type { ClaimedJob } from '../src/core/job.js';

/**
 * Store-level microbenchmark: N noop jobs submitted, claimed in batches of 50 and finished as
 * completed through the SQLite store (group commit), with the submitter and the workers
 * running concurrently, as in `upshift serve`. Reports wall-clock and per-CPU-second rates
 * (the second is steadier on a shared machine).
 * Usage: npm run build && node dist/bench/sqliteStoreMicro.js [jobs=20000] [workers=8]
 */
const N = Number(process.argv[2] ?? 20_000);
const WORKERS = Number(process.argv[3] ?? 8);
const BATCH = 50;
const dir = mkdtempSync(join(tmpdir(), 'upshift-bench-'));
const store = createSqliteJobStore({ file: join(dir, 'bench.db') });
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
await store.close();
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({ jobs: N, workers: WORKERS, batch: BATCH, seconds: +secs.toFixed(3), jobsPerSecond: Math.round(N / secs), cpuSeconds: +cpuSecs.toFixed(3), jobsPerCpuSecond: Math.round(N / cpuSecs), events, left: stats }));
