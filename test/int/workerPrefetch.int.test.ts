import { afterEach, describe, expect, it } from 'vitest';
import { defineAnalyzer } from '../../src/core/analyzer.js';
import { parseOrgId, type JobId } from '../../src/core/ids.js';
import type { Json } from '../../src/core/job.js';
import { AUTO_PREFETCH_MAX_FACTOR, AUTO_PREFETCH_WINDOW_MS } from '../../src/app/workerRuntime.js';
import { ManualClock } from '../../src/ports/clock.js';
import { createTestRuntime, sleep, until } from '../helpers/runtime.js';

const acme = parseOrgId('acme');

/** Runs until the test opens its gate; records which jobs it was invoked for. */
function gated(name: string, concurrency?: number) {
  const started: string[] = [];
  const gates = new Map<string, () => void>();
  const analyzer = defineAnalyzer<Json, Json>({
    name,
    version: '1',
    inputSchema: {},
    ...(concurrency !== undefined && { concurrency }),
    run: (_input, ctx) => {
      started.push(ctx.jobId);
      return new Promise((resolve) => gates.set(ctx.jobId, () => resolve({ ok: true })));
    },
  });
  const open = (jobId: string): void => gates.get(jobId)?.();
  return { analyzer, started, open };
}

let rt: Awaited<ReturnType<typeof createTestRuntime>> | undefined;
afterEach(async () => {
  await rt?.close();
  rt = undefined;
});

const statusOf = async (jobId: JobId) => (await rt!.service.get(acme, jobId)).status;
const types = (jobId: JobId) => rt!.events.filter((e) => e.jobId === jobId).map((e) => e.type);
/** Job ids in claim order (their job.started events; jobs submitted in the same ms claim in id order). */
const claimOrder = () => rt!.events.filter((e) => e.type === 'job.started').map((e) => e.jobId as string);

/** Submits `n` jobs of `analyzer` to acme, one after another; their ids in submit order. */
async function submitAll(analyzer: string, n: number): Promise<JobId[]> {
  const ids: JobId[] = [];
  for (let i = 0; i < n; i++) ids.push((await rt!.service.submit(acme, { analyzer, input: { i } })).job.jobId);
  return ids;
}

describe('worker prefetch (claimed jobs held for a free slot), real SQLite store', () => {
  it('holds up to `prefetch` claimed jobs beyond the concurrency and starts them in claim order as slots free', async () => {
    const g = gated('gated');
    rt = await createTestRuntime({ analyzers: [g.analyzer], clock: new ManualClock(), worker: { concurrency: 2, prefetch: 2 } });
    const ids = await submitAll('gated', 5);
    rt.worker.start();
    await until(() => claimOrder().length === 4);
    await sleep(50);
    // Two run, two are claimed (running, leased) but not started, the fifth stays queued.
    const order = claimOrder();
    expect(g.started).toEqual(order.slice(0, 2));
    expect(rt.worker.inFlight).toBe(2);
    expect((await Promise.all(ids.map(statusOf))).sort()).toEqual(['queued', 'running', 'running', 'running', 'running']);

    g.open(order[0] as string);
    await until(() => g.started.length === 3);
    expect(g.started[2]).toBe(order[2]);
    // The freed room is claimed again: the fifth job is now held.
    await until(() => claimOrder().length === 5);
    expect(g.started).toHaveLength(3);
    for (const id of claimOrder()) {
      await until(() => g.started.includes(id));
      g.open(id);
    }
    await until(async () => (await Promise.all(ids.map(statusOf))).every((s) => s === 'completed'));
    // A read can see a commit before its events reached the commit listeners.
    await until(() => ids.every((id) => types(id).includes('job.completed')));
    for (const id of ids) expect(types(id)).toEqual(['job.queued', 'job.started', 'job.completed']);
  });

  it('a cancel of a held job ends it canceled without ever running the analyzer', async () => {
    const g = gated('gated');
    rt = await createTestRuntime({ analyzers: [g.analyzer], clock: new ManualClock(), worker: { concurrency: 1, prefetch: 1 } });
    await rt.service.submit(acme, { analyzer: 'gated', input: {} });
    await rt.service.submit(acme, { analyzer: 'gated', input: {} });
    rt.worker.start();
    await until(() => claimOrder().length === 2);
    const [a, b] = claimOrder() as [JobId, JobId];
    await sleep(30);
    expect(g.started).toEqual([a]);
    await rt.service.cancel(acme, b);
    await until(async () => (await statusOf(b)) === 'canceled');
    g.open(a);
    await until(async () => (await statusOf(a)) === 'completed');
    await sleep(30);
    expect(g.started).toEqual([a]);
    expect(types(b)).toEqual(['job.queued', 'job.started', 'job.cancel_requested', 'job.canceled']);
  });

  it('heartbeats extend the leases of held jobs, so lease recovery leaves them alone', async () => {
    const clock = new ManualClock();
    const g = gated('gated');
    rt = await createTestRuntime({ analyzers: [g.analyzer], clock, worker: { concurrency: 1, prefetch: 1, leaseMs: 30_000, heartbeatMs: 20 } });
    await rt.service.submit(acme, { analyzer: 'gated', input: {} });
    await rt.service.submit(acme, { analyzer: 'gated', input: {} });
    rt.worker.start();
    await until(() => claimOrder().length === 2);
    const [a, b] = claimOrder() as [JobId, JobId];
    clock.advance(20_000);
    await sleep(100); // heartbeats: both leases now end at +50 s
    clock.advance(20_000); // +40 s: past the claim's lease, inside the extended one
    expect(await rt.store.recoverExpiredLeases(clock.now(), 100, () => clock.now())).toEqual([]);
    g.open(a);
    await until(() => g.started.includes(b));
    g.open(b);
    await until(async () => (await statusOf(b)) === 'completed');
  });

  it('counts held jobs against an analyzer\'s own concurrency limit', async () => {
    const limited = gated('limited', 1);
    rt = await createTestRuntime({ analyzers: [limited.analyzer], clock: new ManualClock(), worker: { concurrency: 4, prefetch: 4 } });
    const ids = await submitAll('limited', 3);
    rt.worker.start();
    await until(() => limited.started.length === 1);
    await sleep(100);
    // One claimed (and running), none held: the limit counts held jobs too.
    expect((await Promise.all(ids.map(statusOf))).sort()).toEqual(['queued', 'queued', 'running']);
    limited.open(limited.started[0] as string);
    await until(() => limited.started.length === 2);
    expect((await Promise.all(ids.map(statusOf))).sort()).toEqual(['completed', 'queued', 'running']);
    limited.open(limited.started[1] as string);
    await until(() => limited.started.length === 3);
    limited.open(limited.started[2] as string);
  });

  it('graceful stop runs held jobs while the deadline allows, then releases the rest to the queue', async () => {
    const g = gated('gated');
    rt = await createTestRuntime({ analyzers: [g.analyzer], clock: new ManualClock(), worker: { concurrency: 1, prefetch: 2 } });
    await submitAll('gated', 3);
    rt.worker.start();
    await until(() => claimOrder().length === 3);
    const [first, second, third] = claimOrder() as [JobId, JobId, JobId];
    const stopped = rt.worker.stop(300);
    g.open(first);
    // The first held job still runs (inside the deadline); the second is released when it passes.
    await until(() => g.started.length === 2);
    expect(g.started[1]).toBe(second);
    await stopped;
    expect(await statusOf(first)).toBe('completed');
    expect(await statusOf(third)).toBe('queued');
    expect(types(third)).toEqual(['job.queued', 'job.started', 'job.retrying']);
    expect(g.started).not.toContain(third);
  });
});

/** Returns at once for `{ fast: true }`, otherwise waits `ms` (real time) or, without `ms`, for its gate. */
function mixed(ms?: number) {
  const g = gated('mixed');
  const analyzer = defineAnalyzer<Json, Json>({
    name: 'mixed',
    version: '1',
    inputSchema: {},
    run: async (input, ctx) => {
      if ((input as { fast?: boolean }).fast === true) return { ok: true };
      if (ms !== undefined) {
        await sleep(ms);
        return { ok: true };
      }
      return g.analyzer.run(input as never, ctx) as Promise<Json>;
    },
  });
  return { analyzer, started: g.started, open: g.open };
}

/** Jobs claimed but not finished at the moment: started minus terminal events. */
const inHand = () => rt!.events.filter((e) => e.type === 'job.started').length - rt!.events.filter((e) => e.type === 'job.completed').length;

describe("worker prefetch 'auto', real SQLite store", () => {
  it('holds claimed jobs while every slot is busy with short jobs, up to the factor per slot, and stops once the worker is no longer saturated', async () => {
    const m = mixed();
    rt = await createTestRuntime({ analyzers: [m.analyzer], clock: new ManualClock(), worker: { concurrency: 2, prefetch: 'auto' } });
    // Higher priority: claimed first (ids made in the same millisecond do not sort by submit order).
    // Twenty of them, so one slow first attempt (a GC pause) has faded from the mean run time.
    for (let i = 0; i < 20; i++) await rt.service.submit(acme, { analyzer: 'mixed', input: { fast: true }, priority: 1 });
    const slow: JobId[] = [];
    for (let i = 0; i < 12; i++) slow.push((await rt.service.submit(acme, { analyzer: 'mixed', input: {} })).job.jobId);
    // Before any attempt has finished the run time is unknown: no held jobs.
    expect(rt.worker.prefetchAllowed).toBe(0);
    rt.worker.start();
    // The fast jobs fill both slots (saturated) and finish in well under a millisecond each:
    // the gated ones then run two at a time and the worker holds 2 × 4 more.
    await until(() => inHand() === 2 + 2 * AUTO_PREFETCH_MAX_FACTOR);
    await sleep(100);
    expect(inHand()).toBe(2 + 2 * AUTO_PREFETCH_MAX_FACTOR);
    expect(m.started).toHaveLength(2);
    expect(rt.worker.prefetchAllowed).toBe(2 * AUTO_PREFETCH_MAX_FACTOR);
    expect((await Promise.all(slow.map(statusOf))).filter((s) => s === 'queued')).toHaveLength(2);
    // Open each gate once its job has started: the held jobs run as slots free.
    for (let done = 0; done < slow.length; done++) {
      await until(() => m.started.length > done);
      m.open(m.started[done] as string);
    }
    await until(async () => (await Promise.all(slow.map(statusOf))).every((s) => s === 'completed'));
    // Not saturated for longer than the window: nothing is held any more.
    await sleep(AUTO_PREFETCH_WINDOW_MS + 100);
    expect(rt.worker.prefetchAllowed).toBe(0);
  });

  it('holds nothing for jobs that run 20 ms or longer, even with every slot busy and a backlog', async () => {
    const m = mixed(60);
    rt = await createTestRuntime({ analyzers: [m.analyzer], clock: new ManualClock(), worker: { concurrency: 2, prefetch: 'auto' } });
    const ids: JobId[] = [];
    for (let i = 0; i < 8; i++) ids.push((await rt.service.submit(acme, { analyzer: 'mixed', input: {} })).job.jobId);
    rt.worker.start();
    let most = 0;
    while ((await Promise.all(ids.map(statusOf))).some((s) => s !== 'completed')) {
      most = Math.max(most, inHand());
      expect(rt.worker.prefetchAllowed).toBe(0);
      await sleep(5);
    }
    expect(most).toBeLessThanOrEqual(2);
  });

  it('holds nothing while a slot stays free, however short the jobs', async () => {
    const m = mixed();
    rt = await createTestRuntime({ analyzers: [m.analyzer], clock: new ManualClock(), worker: { concurrency: 4, prefetch: 'auto' } });
    rt.worker.start();
    for (let i = 0; i < 20; i++) {
      const { job } = await rt.service.submit(acme, { analyzer: 'mixed', input: { fast: true } });
      await until(async () => (await statusOf(job.jobId)) === 'completed');
      expect(rt.worker.prefetchAllowed).toBe(0);
    }
  });
});
