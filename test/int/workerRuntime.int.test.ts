import { afterEach, describe, expect, it } from 'vitest';
import { defineAnalyzer, PermanentError, RetryAfterError } from '../../src/core/analyzer.js';
import { isTerminalEvent } from '../../src/core/events.js';
import { parseOrgId, type JobId } from '../../src/core/ids.js';
import type { Json } from '../../src/core/job.js';
import { ManualClock } from '../../src/ports/clock.js';
import { createTestRuntime, sleep, until } from '../helpers/runtime.js';

const acme = parseOrgId('acme');
const other = parseOrgId('other');

function flaky(failuresBeforeSuccess: number) {
  const calls = new Map<string, number>();
  return defineAnalyzer<Json, Json>({
    name: 'flaky',
    version: '1',
    inputSchema: {},
    async run(_input, ctx) {
      const n = (calls.get(ctx.jobId) ?? 0) + 1;
      calls.set(ctx.jobId, n);
      if (n <= failuresBeforeSuccess) throw new Error(`failure ${n}`);
      return { attempt: ctx.attempt };
    },
  });
}

const blocker = defineAnalyzer<Json, Json>({
  name: 'blocker',
  version: '1',
  inputSchema: {},
  run: (_input, ctx) =>
    new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true })),
});

const deaf = defineAnalyzer<Json, Json>({
  name: 'deaf',
  version: '1',
  inputSchema: {},
  run: () => new Promise(() => undefined),
});

let rt: Awaited<ReturnType<typeof createTestRuntime>> | undefined;
afterEach(async () => {
  await rt?.close();
  rt = undefined;
});

const types = (jobId: JobId) => rt!.events.filter((e) => e.jobId === jobId).map((e) => e.type);
/**
 * Waits until the job is `status` in the store and its `job.<status>` event reached the commit
 * listeners: a read can see a commit before the listeners have been called.
 */
const untilSettled = (jobId: JobId, status: 'completed' | 'canceled') =>
  until(async () => (await rt!.service.get(acme, jobId)).status === status && types(jobId).includes(`job.${status}`));

describe('worker runtime on a real SQLite store', () => {
  it('retries with exponential backoff on the injected clock, then completes', async () => {
    const clock = new ManualClock();
    rt = await createTestRuntime({ analyzers: [flaky(2)], clock });
    rt.worker.start();
    const { job } = await rt.service.submit(acme, { analyzer: 'flaky', input: {}, maxAttempts: 3 });
    const t0 = clock.now();

    await until(async () => (await rt!.service.get(acme, job.jobId)).attempt === 2);
    let j = await rt.service.get(acme, job.jobId);
    expect(j.status).toBe('queued');
    expect(j.runAt).toBe(t0 + 1000); // first retry: base delay (jitter 0)
    await sleep(100); // real time passes, injected time does not: not claimable yet
    expect((await rt.service.get(acme, job.jobId)).status).toBe('queued');

    clock.advance(1000);
    rt.worker.poke();
    await until(async () => (await rt!.service.get(acme, job.jobId)).attempt === 3);
    j = await rt.service.get(acme, job.jobId);
    expect(j.runAt).toBe(t0 + 1000 + 2000); // second retry: doubled

    clock.advance(2000);
    rt.worker.poke();
    await untilSettled(job.jobId, 'completed');
    expect(types(job.jobId)).toEqual([
      'job.queued', 'job.started', 'job.retrying', 'job.started', 'job.retrying', 'job.started', 'job.completed',
    ]);
  });

  it('fails after max attempts and on PermanentError without retrying', async () => {
    const clock = new ManualClock();
    const permanent = defineAnalyzer<Json, Json>({ name: 'perm', version: '1', inputSchema: {}, run: () => Promise.reject(new PermanentError('bad data', 'BAD_DATA')) });
    rt = await createTestRuntime({ analyzers: [flaky(99), permanent], clock, worker: { backoff: { baseMs: 0, maxMs: 0, jitter: 0 } } });
    rt.worker.start();
    const a = (await rt.service.submit(acme, { analyzer: 'flaky', input: {}, maxAttempts: 2 })).job;
    const b = (await rt.service.submit(acme, { analyzer: 'perm', input: {}, maxAttempts: 5 })).job;
    await until(async () => (await rt!.service.get(acme, a.jobId)).status === 'failed' && (await rt!.service.get(acme, b.jobId)).status === 'failed');
    const ja = await rt.service.get(acme, a.jobId);
    expect(ja.attempt).toBe(2);
    expect(ja.error).toEqual({ code: 'ANALYZER_FAILED', message: 'failure 2' });
    const jb = await rt.service.get(acme, b.jobId);
    expect(jb.attempt).toBe(1);
    expect(jb.error).toEqual({ code: 'BAD_DATA', message: 'bad data' });
  });

  it('honours RetryAfterError delays', async () => {
    const clock = new ManualClock();
    let n = 0;
    const later = defineAnalyzer<Json, Json>({ name: 'later', version: '1', inputSchema: {}, run: () => (++n === 1 ? Promise.reject(new RetryAfterError('busy', 7_000)) : Promise.resolve('ok')) });
    rt = await createTestRuntime({ analyzers: [later], clock });
    rt.worker.start();
    const { job } = await rt.service.submit(acme, { analyzer: 'later', input: {} });
    await until(async () => (await rt!.service.get(acme, job.jobId)).attempt === 2);
    expect((await rt.service.get(acme, job.jobId)).runAt).toBe(clock.now() + 7_000);
  });

  it('cancels a running job through its AbortSignal', async () => {
    rt = await createTestRuntime({ analyzers: [blocker], clock: new ManualClock() });
    rt.worker.start();
    const { job } = await rt.service.submit(acme, { analyzer: 'blocker', input: {} });
    await until(async () => (await rt!.service.get(acme, job.jobId)).status === 'running');
    const r = await rt.service.cancel(acme, job.jobId);
    expect(r.job.status).toBe('running');
    expect(r.job.cancelRequestedAt).not.toBeNull();
    await untilSettled(job.jobId, 'canceled');
    expect(types(job.jobId)).toEqual(['job.queued', 'job.started', 'job.cancel_requested', 'job.canceled']);
    const again = await rt.service.cancel(acme, job.jobId);
    expect(again).toMatchObject({ changed: false, job: { status: 'canceled' } });
  });

  it('forces the cancel after the grace period when the analyzer ignores its signal', async () => {
    rt = await createTestRuntime({ analyzers: [deaf], clock: new ManualClock(), worker: { cancelGraceMs: 100 } });
    rt.worker.start();
    const { job } = await rt.service.submit(acme, { analyzer: 'deaf', input: {} });
    await until(async () => (await rt!.service.get(acme, job.jobId)).status === 'running');
    const t = Date.now();
    await rt.service.cancel(acme, job.jobId);
    await until(async () => (await rt!.service.get(acme, job.jobId)).status === 'canceled');
    expect(Date.now() - t).toBeGreaterThanOrEqual(90);
    expect(rt.worker.inFlight).toBe(0);
  });

  it("completes an analyzer whose result is the string 'forced' (not mistaken for a forced cancel)", async () => {
    const forcedString = defineAnalyzer<Json, Json>({ name: 'forced-string', version: '1', inputSchema: {}, run: () => Promise.resolve('forced') });
    rt = await createTestRuntime({ analyzers: [forcedString], clock: new ManualClock() });
    rt.worker.start();
    const { job } = await rt.service.submit(acme, { analyzer: 'forced-string', input: {} });
    // Terminal in the store, and its terminal event delivered to the commit listeners (a read can
    // see the commit before the listeners have been called).
    await until(async () => !['queued', 'running'].includes((await rt!.service.get(acme, job.jobId)).status) && types(job.jobId).some(isTerminalEvent));
    expect((await rt.service.get(acme, job.jobId)).status).toBe('completed');
    expect(types(job.jobId)).toEqual(['job.queued', 'job.started', 'job.completed']);
  });

  it('times out an attempt and retries it', async () => {
    rt = await createTestRuntime({ analyzers: [{ ...blocker, name: 'slow', timeoutMs: 50 }], clock: new ManualClock(), worker: { backoff: { baseMs: 0, maxMs: 0, jitter: 0 } } });
    rt.worker.start();
    const { job } = await rt.service.submit(acme, { analyzer: 'slow', input: {}, maxAttempts: 2 });
    await until(async () => (await rt!.service.get(acme, job.jobId)).status === 'failed');
    const j = await rt.service.get(acme, job.jobId);
    expect(j.attempt).toBe(2);
    expect(j.error?.code).toBe('ANALYZER_TIMEOUT');
  });

  it('recovers a job whose worker died (lease expired) and runs it again', async () => {
    const clock = new ManualClock();
    rt = await createTestRuntime({ analyzers: [flaky(0)], clock, worker: { leaseMs: 1_000, heartbeatMs: 300, backoff: { baseMs: 0, maxMs: 0, jitter: 0 } } });
    const { job } = await rt.service.submit(acme, { analyzer: 'flaky', input: {} });
    const [claimed] = await rt.store.claimJobs({ orgId: acme, limit: 1, workerId: 'dead-worker', now: clock.now(), leaseMs: 1_000, analyzers: null });
    expect(claimed?.jobId).toBe(job.jobId);
    rt.worker.start();
    await sleep(100);
    expect((await rt.service.get(acme, job.jobId)).status).toBe('running');
    clock.advance(1_001);
    await untilSettled(job.jobId, 'completed');
    const j = await rt.service.get(acme, job.jobId);
    expect(j.attempt).toBe(2);
    expect(types(job.jobId)).toEqual(['job.queued', 'job.started', 'job.retrying', 'job.started', 'job.completed']);
  });

  it('keeps a tenant with a 10,000-job backlog from delaying another tenant', async () => {
    const started: string[] = [];
    const work = defineAnalyzer<Json, Json>({
      name: 'work',
      version: '1',
      inputSchema: {},
      async run(_i, ctx) {
        started.push(ctx.orgId);
        await sleep(2);
        return null;
      },
    });
    rt = await createTestRuntime({ analyzers: [work], clock: new ManualClock(), worker: { concurrency: 4 } });
    await Promise.all(Array.from({ length: 10_000 }, () => rt!.service.submit(acme, { analyzer: 'work', input: {} })));
    rt.worker.start();
    await until(() => started.length >= 200, 20_000);
    const before = started.length;
    const { job } = await rt.service.submit(other, { analyzer: 'work', input: {} });
    await until(async () => (await rt!.service.get(other, job.jobId)).status === 'completed', 10_000);
    const position = started.indexOf('other');
    // Fair share with equal weights: the new tenant runs within one or two planning rounds,
    // not behind the 9,800 jobs still queued for acme.
    expect(position - before).toBeLessThanOrEqual(8);
  });

  it('respects per-analyzer concurrency', async () => {
    let active = 0;
    let peak = 0;
    const single = defineAnalyzer<Json, Json>({
      name: 'single',
      version: '1',
      inputSchema: {},
      concurrency: 1,
      async run() {
        peak = Math.max(peak, ++active);
        await sleep(5);
        active--;
        return null;
      },
    });
    rt = await createTestRuntime({ analyzers: [single], clock: new ManualClock(), worker: { concurrency: 8 } });
    rt.worker.start();
    const jobs = await Promise.all(Array.from({ length: 20 }, () => rt!.service.submit(acme, { analyzer: 'single', input: {} })));
    // A worker slot frees when the analyzer returns, before its outcome commits, so wait for the
    // committed states rather than for an empty queue and idle slots.
    const statuses = async () => Promise.all(jobs.map(({ job }) => rt!.service.get(acme, job.jobId).then((j) => j.status)));
    await until(async () => (await statuses()).every((s) => s === 'completed'));
    expect(peak).toBe(1);
    expect(await statuses()).toEqual(jobs.map(() => 'completed'));
  });

  it('claims for analyzers registered after the worker started, limited ones within their limit', async () => {
    let active = 0;
    let peak = 0;
    const late = defineAnalyzer<Json, Json>({ name: 'late', version: '1', inputSchema: {}, run: () => Promise.resolve('late') });
    const lateSingle = defineAnalyzer<Json, Json>({
      name: 'late-single',
      version: '1',
      inputSchema: {},
      concurrency: 1,
      async run() {
        peak = Math.max(peak, ++active);
        await sleep(5);
        active--;
        return null;
      },
    });
    rt = await createTestRuntime({ analyzers: [flaky(0)], clock: new ManualClock(), worker: { concurrency: 8 } });
    rt.worker.start();
    const first = await rt.service.submit(acme, { analyzer: 'flaky', input: {} });
    await untilSettled(first.job.jobId, 'completed');
    // The worker has planned claims already; the analyzers registered now must join its claim groups.
    rt.registry.register(late).register(lateSingle);
    const jobs = await Promise.all([
      ...Array.from({ length: 5 }, () => rt!.service.submit(acme, { analyzer: 'late', input: {} })),
      ...Array.from({ length: 10 }, () => rt!.service.submit(acme, { analyzer: 'late-single', input: {} })),
    ]);
    rt.worker.poke();
    for (const { job } of jobs) await untilSettled(job.jobId, 'completed');
    expect(peak).toBe(1);
  });

  it('graceful stop lets in-flight work finish, or releases it at the deadline', async () => {
    const clock = new ManualClock();
    rt = await createTestRuntime({ analyzers: [blocker, { ...blocker, name: 'quick', run: () => sleep(50).then(() => 'done') }], clock });
    rt.worker.start();
    const q = (await rt.service.submit(acme, { analyzer: 'quick', input: {} })).job;
    const b = (await rt.service.submit(acme, { analyzer: 'blocker', input: {} })).job;
    await until(async () => (await rt!.service.get(acme, b.jobId)).status === 'running' && (await rt!.service.get(acme, q.jobId)).status === 'running');
    await rt.worker.stop(300);
    expect((await rt.service.get(acme, q.jobId)).status).toBe('completed');
    const jb = await rt.service.get(acme, b.jobId);
    expect(jb.status).toBe('queued');
    expect(jb.runAt).toBe(clock.now());
  });
});
