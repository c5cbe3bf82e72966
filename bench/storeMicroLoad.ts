import { asOrgId, newJobId, newResultId } from '../src/core/ids.js';
import type { ClaimedJob } from '../src/core/job.js';
import type { JobStore } from '../src/ports/jobStore.js';

/** What a store microbenchmark run measured in this process. */
export interface StoreLoadResult {
  readonly seconds: number;
  readonly cpuSeconds: number;
  /** Events the store's onCommitted listeners saw. */
  readonly events: number;
}

/**
 * The load of the store microbenchmarks (sqliteStoreMicro.ts, postgresStoreMicro.ts): `jobs`
 * noop jobs over four orgs, submitted 500 at a time while `workers` workers claim them in
 * batches of `batch` and finish each as completed with a result, all concurrent, as in
 * `upshift serve`. The same load for every store, so their numbers compare.
 */
export async function driveStoreLoad(store: JobStore, jobs: number, workers: number, batch: number): Promise<StoreLoadResult> {
  const orgs = ['org-a', 'org-b', 'org-c', 'org-d'].map(asOrgId);
  let submitted = 0;
  let finished = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();

  async function submitter(): Promise<void> {
    while (submitted < jobs) {
      const n = Math.min(500, jobs - submitted);
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
    while (finished < jobs) {
      const ready = await store.readyOrgs(Date.now(), null);
      const org = ready[o++ % Math.max(1, ready.length)]?.orgId;
      const claimed: ClaimedJob[] = org
        ? await store.claimJobs({ orgId: asOrgId(org), limit: batch, workerId: `w${w}`, now: Date.now(), leaseMs: 30_000, analyzers: null })
        : [];
      if (claimed.length === 0) {
        await new Promise((r) => setTimeout(r, 1));
        continue;
      }
      await Promise.all(
        claimed.map((j) =>
          store.finishJob({ orgId: j.orgId, jobId: j.jobId, attempt: j.attempt, leaseToken: j.leaseToken }, { status: 'completed', resultId: newResultId(Date.now()), payload: { ok: true } }, Date.now()),
        ),
      );
      finished += claimed.length;
    }
  }

  // Listeners fire before the write's promise settles, so the count is complete when the load is.
  let events = 0;
  store.onCommitted((evs) => (events += evs.length));
  await Promise.all([submitter(), ...Array.from({ length: workers }, (_, w) => worker(w))]);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, events };
}
