import { coerceError } from '../core/errors.js';
import { DeficitRoundRobin, type FairnessPolicy } from '../core/fairness.js';
import { asOrgId } from '../core/ids.js';
import type { ClaimedJob } from '../core/job.js';
import type { Clock } from '../ports/clock.js';
import type { ClaimGroup, Dispatcher, DispatchSink } from '../ports/dispatcher.js';
import type { JobStore } from '../ports/jobStore.js';
import type { Logger } from '../ports/logger.js';
import { noopTracer, type Tracer } from '../ports/tracer.js';

export interface StoreClaimDispatcherOptions {
  readonly store: JobStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Fallback poll when no wake-up arrives (delayed retries, a lost notification). */
  readonly pollMs: number;
  readonly fairness: FairnessPolicy;
  readonly tracer?: Tracer;
}

/**
 * Dispatch mode `store`: the worker claims straight from the store — on PostgreSQL with
 * `FOR UPDATE SKIP LOCKED` (any number of processes), on SQLite through its single writer.
 * Each planning round asks which orgs have ready work and splits the free slots between them
 * by deficit round robin, so a tenant with a huge backlog gets its share, not the worker.
 * Woken by poke() (the worker subscribes it to `job.queued`/`job.retrying` events, which in
 * scale mode arrive through LISTEN/NOTIFY from every process); `pollMs` is the fallback.
 */
export class StoreClaimDispatcher implements Dispatcher {
  readonly kind = 'store';
  private readonly drr: DeficitRoundRobin;
  private readonly tracer: Tracer;
  private sink: DispatchSink | null = null;
  private stopping = false;
  private loopDone: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private pendingWake = false;

  constructor(private readonly o: StoreClaimDispatcherOptions) {
    this.drr = new DeficitRoundRobin(o.fairness);
    this.tracer = o.tracer ?? noopTracer;
  }

  start(sink: DispatchSink): void {
    if (this.loopDone) return;
    this.sink = sink;
    this.loopDone = this.loop(sink);
  }

  poke(): void {
    this.pendingWake = true;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.poke();
    await this.loopDone;
  }

  /** The store is the only dependency, and readiness checks it already. */
  async ping(): Promise<void> {}

  async close(): Promise<void> {
    await this.stop();
  }

  private async loop(sink: DispatchSink): Promise<void> {
    while (!this.stopping) {
      this.pendingWake = false;
      let claimed = 0;
      try {
        claimed = await this.claimRound(sink);
      } catch (e) {
        this.o.logger.error({ err: coerceError(e) }, 'claim round failed');
      }
      if (this.stopping) break;
      const full = sink.capacity().length === 0;
      if (claimed > 0 && !full) continue;
      if (this.pendingWake && !full) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.o.pollMs);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /**
   * One planning round over the sink's claim groups. Each limited analyzer is claimed
   * separately up to its free slots, so a claim can never overshoot an analyzer's limit.
   */
  private async claimRound(sink: DispatchSink): Promise<number> {
    let n = 0;
    // Capacity is re-read after every group: the jobs just handed over occupy slots.
    const visited = new Set<string>();
    for (;;) {
      const group = sink.capacity().find((g) => !visited.has(g.analyzers.join(',')));
      if (!group || this.stopping) break;
      visited.add(group.analyzers.join(','));
      const claimStart = this.tracer.now();
      const jobs = await this.claimGroup(sink, group);
      for (const job of jobs) void sink.run(job, claimStart);
      n += jobs.length;
    }
    return n;
  }

  private async claimGroup(sink: DispatchSink, group: ClaimGroup): Promise<ClaimedJob[]> {
    const now = this.o.clock.now();
    const analyzers = [...group.analyzers];
    const ready = await this.o.store.readyOrgs(now, analyzers);
    const plan = this.drr.plan(ready, group.slots);
    const batches = await Promise.all(
      plan.map(async (p) => {
        const jobs = await this.o.store.claimJobs({ orgId: asOrgId(p.orgId), limit: p.limit, workerId: sink.workerId, now, leaseMs: sink.leaseMs, analyzers });
        this.drr.settle(p.orgId, p.limit, jobs.length);
        return jobs;
      }),
    );
    return batches.flat();
  }
}
