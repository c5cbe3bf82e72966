import { afterEach, describe, expect, it } from 'vitest';
import { JobService } from '../../src/app/jobService.js';
import { defineAnalyzer } from '../../src/core/analyzer.js';
import type { JobEvent } from '../../src/core/events.js';
import { parseOrgId } from '../../src/core/ids.js';
import type { Json } from '../../src/core/job.js';
import { systemClock } from '../../src/ports/clock.js';
import type { EventFeed } from '../../src/ports/eventFeed.js';
import { createTestRuntime } from '../helpers/runtime.js';

/**
 * JobService.follow (SSE streams, sync waits) on a real SQLite store and the in-process feed:
 * live events come from the feed via the per-job fan-out; a skipped seq or an overflowing
 * backlog falls back to the store. Every case checks the stream against the stored log:
 * every seq exactly once, in order, ending at the terminal event.
 */
const acme = parseOrgId('acme');
const other = parseOrgId('other');

/** Writes `n` partials as fast as the store commits them (each one event). */
const chatty = defineAnalyzer<{ n: number }, Json>({
  name: 'chatty',
  version: '1',
  inputSchema: {},
  async run(input, ctx) {
    for (let i = 1; i <= input.n; i++) await ctx.partial(`c-${i}`, { i });
    return { n: input.n };
  },
});

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

async function setup() {
  const rt = await createTestRuntime({ analyzers: [chatty], clock: systemClock });
  close = () => rt.close();
  return rt;
}

async function collect(gen: AsyncGenerator<JobEvent>): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const e of gen) out.push(e);
  return out;
}

function expectWholeLog(got: JobEvent[], stored: JobEvent[]): void {
  expect(got.map((e) => e.eventSeq)).toEqual(stored.map((e) => e.eventSeq));
  expect(got.map((e) => e.eventSeq)).toEqual(Array.from({ length: got.length }, (_, i) => i + 1));
  expect(got[got.length - 1]?.type).toBe('job.completed');
  // Live events (from the feed) carry exactly what the store returns.
  expect(got).toEqual(stored);
}

describe('JobService.follow', () => {
  it('streams a running job live, equal to the stored log; resumes after a seq', async () => {
    const rt = await setup();
    const { job } = await rt.service.submit(acme, { analyzer: 'chatty', input: { n: 50 } });
    const ac = new AbortController();
    const following = collect(rt.service.follow(acme, job.jobId, 0, ac.signal));
    rt.worker.start();
    const got = await following;
    expectWholeLog(got, await rt.store.listEvents(acme, job.jobId, 0, 10_000));
    // Resuming after a seq yields exactly the rest (Last-Event-ID).
    const rest = await collect(rt.service.follow(acme, job.jobId, 40, ac.signal));
    expect(rest.map((e) => e.eventSeq)).toEqual(got.slice(40).map((e) => e.eventSeq));
  });

  it('another org cannot follow the job', async () => {
    const rt = await setup();
    const { job } = await rt.service.submit(acme, { analyzer: 'chatty', input: { n: 1 } });
    await expect(collect(rt.service.follow(other, job.jobId, 0, new AbortController().signal))).rejects.toMatchObject({ code: 'JOB_NOT_FOUND' });
  });

  it('a feed that skips events (a lost hint) still yields every seq once, read from the store', async () => {
    const rt = await setup();
    let n = 0;
    // The real feed, losing every third event.
    const lossy: EventFeed = {
      subscribe: (l) => rt.feed.subscribe((events) => l(events.filter(() => ++n % 3 !== 0))),
      close: () => Promise.resolve(),
    };
    const service = new JobService({ store: rt.store, feed: lossy, registry: rt.registry, clock: systemClock, defaultMaxAttempts: 3 });
    const { job } = await service.submit(acme, { analyzer: 'chatty', input: { n: 60 } });
    const following = collect(service.follow(acme, job.jobId, 0, new AbortController().signal));
    rt.worker.start();
    expectWholeLog(await following, await rt.store.listEvents(acme, job.jobId, 0, 10_000));
  });

  it('a consumer that falls more than the backlog bound behind gets every seq once, in order', async () => {
    const rt = await setup();
    const { job } = await rt.service.submit(acme, { analyzer: 'chatty', input: { n: 1200 } });
    const gen = rt.service.follow(acme, job.jobId, 0, new AbortController().signal);
    const first = await gen.next(); // subscribed; job.queued read from the store
    rt.worker.start();
    // Not pulling: 1,200+ live events pile up past the bound while the job runs to the end.
    const end = Date.now() + 20_000;
    while ((await rt.store.getJob(acme, job.jobId))?.status !== 'completed' && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const got = [first.value as JobEvent, ...(await collect(gen))];
    expectWholeLog(got, await rt.store.listEvents(acme, job.jobId, 0, 10_000));
    expect(got.length).toBeGreaterThan(1200);
  });

  it('ends at once for a job that was terminal before following', async () => {
    const rt = await setup();
    const { job } = await rt.service.submit(acme, { analyzer: 'chatty', input: { n: 2 } });
    rt.worker.start();
    await collect(rt.service.follow(acme, job.jobId, 0, new AbortController().signal));
    const stored = await rt.store.listEvents(acme, job.jobId, 0, 100);
    const last = stored[stored.length - 1]?.eventSeq ?? 0;
    expect(await collect(rt.service.follow(acme, job.jobId, last, new AbortController().signal))).toEqual([]);
  });
});

/** The next `n` events of an endless generator. */
async function take(gen: AsyncGenerator<JobEvent>, n: number): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  while (out.length < n) {
    const r = await gen.next();
    if (r.done === true) break;
    out.push(r.value);
  }
  return out;
}

describe('JobService.followOrg', () => {
  it('yields every event of the org once, in position order (store, then live), never another org\'s; a consumer past the backlog bound re-reads', async () => {
    const rt = await setup();
    const head0 = await rt.store.headPosition();
    await rt.service.submit(acme, { analyzer: 'chatty', input: { n: 1200 } });
    // Another org's 2,500 events in between: the re-read walks more than one ORG_SCAN_WINDOW.
    const theirs = await rt.service.submit(other, { analyzer: 'chatty', input: { n: 2500 } });
    const ac = new AbortController();
    const gen = rt.service.followOrg(acme, head0, ac.signal);
    const first = await gen.next(); // subscribed; job.queued read from the store
    rt.worker.start();
    // Not pulling: 1,200+ live events pile up past the bound while the jobs run to the end.
    const end = Date.now() + 20_000;
    const done = async () => (await rt.service.list(acme, { limit: 10 })).jobs.every((j) => j.status === 'completed') && (await rt.store.getJob(other, theirs.job.jobId))?.status === 'completed';
    while (!(await done()) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const stored = await rt.store.listOrgEvents(acme, head0, await rt.store.headPosition(), 100_000);
    expect(stored.length).toBeGreaterThan(1200);
    const got = [first.value as JobEvent, ...(await take(gen, stored.length - 1))];
    ac.abort();
    expect(got).toEqual(stored);
    expect(got.every((e) => e.orgId === acme)).toBe(true);
  });

  it('from the head position (a stream "from now") yields only what commits after it', async () => {
    const rt = await setup();
    await rt.service.submit(acme, { analyzer: 'chatty', input: { n: 2 } }); // before: not in the stream
    const ac = new AbortController();
    const gen = rt.service.followOrg(acme, await rt.service.headPosition(), ac.signal);
    const next = gen.next();
    const { job } = await rt.service.submit(acme, { analyzer: 'chatty', input: { n: 1 } });
    expect((await next).value).toMatchObject({ jobId: job.jobId, type: 'job.queued' });
    ac.abort();
    expect(await gen.next()).toEqual({ done: true, value: undefined });
  });
});
