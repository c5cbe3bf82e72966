import { afterEach, describe, expect, it } from 'vitest';
import { StoreClaimDispatcher } from '../../src/app/storeClaimDispatcher.js';
import { DEFAULT_FAIRNESS, type FairnessPolicy, type OrgReadiness } from '../../src/core/fairness.js';
import type { ClaimedJob } from '../../src/core/job.js';
import { systemClock } from '../../src/ports/clock.js';
import type { ClaimGroup, DispatchSink } from '../../src/ports/dispatcher.js';
import type { ClaimCommand, JobStore } from '../../src/ports/jobStore.js';
import { silentLogger } from '../../src/ports/logger.js';

/** The two store methods the dispatcher uses, over in-memory queues per org; counts the calls. */
class FakeStore {
  readonly queues = new Map<string, number>();
  reads = 0;
  claims = 0;
  readonly claimedBy = new Map<string, number>();

  async readyOrgs(): Promise<OrgReadiness[]> {
    this.reads++;
    await Promise.resolve();
    return [...this.queues].filter(([, n]) => n > 0).map(([orgId]) => ({ orgId, running: 0 }));
  }

  /** Runs inside a claim, after it took its snapshot (a job committed while the claim runs). */
  duringClaim: (() => void) | null = null;

  async claimJobs(cmd: ClaimCommand): Promise<ClaimedJob[]> {
    this.claims++;
    await Promise.resolve();
    const n = Math.min(cmd.limit, this.queues.get(cmd.orgId) ?? 0);
    this.queues.set(cmd.orgId, (this.queues.get(cmd.orgId) ?? 0) - n);
    const during = this.duringClaim;
    this.duringClaim = null;
    during?.();
    this.claimedBy.set(cmd.orgId, (this.claimedBy.get(cmd.orgId) ?? 0) + n);
    return Array.from({ length: n }, (_, i) => ({ jobId: `job_${cmd.orgId}_${this.claims}_${i}`, orgId: cmd.orgId }) as unknown as ClaimedJob);
  }
}

/** A worker with `concurrency` slots whose jobs finish one macrotask after they start. */
class FakeSink implements DispatchSink {
  readonly workerId = 'w1';
  readonly leaseMs = 30_000;
  running = 0;
  onRun: (job: ClaimedJob) => void = () => undefined;
  constructor(
    private readonly concurrency: number,
    private readonly poke: () => void,
  ) {}

  capacity(): readonly ClaimGroup[] {
    const free = this.concurrency - this.running;
    return free > 0 ? [{ analyzers: ['a'], slots: free }] : [];
  }

  run(job: ClaimedJob): Promise<void> {
    this.running++;
    this.onRun(job);
    return new Promise((resolve) =>
      setImmediate(() => {
        this.running--;
        this.poke();
        resolve();
      }),
    );
  }
}

let dispatcher: StoreClaimDispatcher | null = null;
afterEach(async () => {
  await dispatcher?.stop();
  dispatcher = null;
});

function start(store: FakeStore, fairness: FairnessPolicy, concurrency = 10): FakeSink {
  const d = new StoreClaimDispatcher({ store: store as unknown as JobStore, clock: systemClock, logger: silentLogger, pollMs: 60_000, fairness });
  dispatcher = d;
  const sink = new FakeSink(concurrency, () => d.poke());
  d.start(sink);
  return sink;
}

const until = async (cond: () => boolean, ms = 2_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 1));
  }
};

describe('StoreClaimDispatcher', () => {
  it('claims a backlog without reading the ready orgs before every claim', async () => {
    const store = new FakeStore();
    store.queues.set('acme', 2_000);
    start(store, DEFAULT_FAIRNESS);
    await until(() => store.queues.get('acme') === 0);
    expect(store.claims).toBeGreaterThanOrEqual(200);
    // One read at start, and one per READY_REUSE_MS (100 ms) while the backlog lasts.
    expect(store.reads).toBeLessThan(store.claims / 4);
  });

  it('claims a new tenant\'s job on its job.queued hint, without waiting for a read', async () => {
    const store = new FakeStore();
    store.queues.set('acme', 100_000);
    const sink = start(store, DEFAULT_FAIRNESS);
    await until(() => store.claims >= 20);
    const readsBefore = store.reads;
    let otherStarted = false;
    sink.onRun = (job) => {
      if (job.orgId === 'other') otherStarted = true;
    };
    store.queues.set('other', 1);
    dispatcher?.poke({ orgId: 'other', runAt: Date.now(), analyzer: 'a' });
    await until(() => otherStarted);
    expect(store.reads - readsBefore).toBeLessThanOrEqual(1);
    expect(store.queues.get('acme')).toBeGreaterThan(90_000);
  });

  it('keeps an org that came up short when one of its jobs was queued while the claim ran', async () => {
    const store = new FakeStore();
    store.queues.set('acme', 1);
    store.duringClaim = () => {
      store.queues.set('acme', (store.queues.get('acme') ?? 0) + 1);
      dispatcher?.poke({ orgId: 'acme', runAt: Date.now(), analyzer: 'a' });
    };
    start(store, DEFAULT_FAIRNESS);
    // The first claim got 1 of 10 planned; the job queued meanwhile is claimed next, without a read
    // (and without waiting for the 60 s poll).
    await until(() => store.claimedBy.get('acme') === 2);
    expect(store.reads).toBe(1);
  });

  it('ignores hints for analyzers outside the claim group and for jobs not due yet', async () => {
    const store = new FakeStore();
    store.queues.set('acme', 100_000);
    start(store, DEFAULT_FAIRNESS);
    await until(() => store.claims >= 20);
    dispatcher?.poke({ orgId: 'elsewhere', runAt: Date.now(), analyzer: 'not-in-group' });
    dispatcher?.poke({ orgId: 'later', runAt: Date.now() + 60_000, analyzer: 'a' });
    const claimsBefore = store.claims;
    await until(() => store.claims >= claimsBefore + 20);
    expect(store.claimedBy.has('elsewhere')).toBe(false);
    expect(store.claimedBy.has('later')).toBe(false);
  });

  it('reads the ready orgs before every claim when the policy caps running jobs (running counts matter)', async () => {
    const store = new FakeStore();
    store.queues.set('acme', 500);
    start(store, { ...DEFAULT_FAIRNESS, defaultMaxRunning: 100 });
    await until(() => store.queues.get('acme') === 0);
    expect(store.reads).toBeGreaterThanOrEqual(store.claims);
  });
});
