import { coerceError } from '../core/errors.js';
import { DeficitRoundRobin, type FairnessPolicy, type OrgReadiness } from '../core/fairness.js';
import { asOrgId } from '../core/ids.js';
import type { ClaimedJob } from '../core/job.js';
import type { Clock } from '../ports/clock.js';
import type { ClaimGroup, Dispatcher, DispatchSink, ReadyHint } from '../ports/dispatcher.js';
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
 * How long (ms, real time) a planning round may plan from the ready orgs it already knows
 * instead of asking the store again (see StoreClaimDispatcher).
 */
export const READY_REUSE_MS = 100;

/** What the dispatcher knows about one claim group's ready orgs. */
interface KnownReady {
  /** performance.now() of the store read. */
  readonly at: number;
  readonly analyzers: readonly string[];
  readonly orgs: Map<string, OrgReadiness>;
  /** The read found no ready org (and no hint arrived while it ran). */
  readonly empty: boolean;
}

/**
 * Dispatch mode `store`: the worker claims straight from the store — on PostgreSQL with
 * `FOR UPDATE SKIP LOCKED` (any number of processes), on SQLite through its single writer.
 * Each planning round asks which orgs have ready work and splits the free slots between them
 * by deficit round robin, so a tenant with a huge backlog gets its share, not the worker.
 * Woken by poke() (the worker subscribes it to `job.queued`/`job.retrying` events, which in
 * scale mode arrive through LISTEN/NOTIFY from every process); `pollMs` is the fallback.
 *
 * The ready orgs are not read before every claim. Without running caps in the fairness policy
 * (the store's running counts only matter for caps), a round plans from what the dispatcher
 * already knows when that is at most READY_REUSE_MS old: the orgs of the last read, minus
 * those a claim found dry (fewer jobs than planned), plus the orgs of the job.queued /
 * job.retrying events that arrived since (a committed job that is due now is proof its org has
 * ready work). A backlog is then claimed without a read round trip in front of every claim, so
 * the claim leaves in the same event-loop turn as the completions that freed the slots and
 * shares their transaction. Every poll-timer round, every round after a failure and every
 * round of a capped policy read the store as before; delayed jobs that become due without an
 * event are found by the next read (at most READY_REUSE_MS later while rounds keep running).
 * A group whose read found nothing is not read again for `pollMs` unless a hint names one of
 * its analyzers: a busy worker has free room after nearly every round (more so with prefetch),
 * and the read of a group with nothing ready (an analyzer with its own limit and no jobs) walks
 * every queued job of the other analyzers (the analyzer is not in the claim index) — once per
 * round it cost more database time than the claims. Such a group finds delayed jobs that
 * became due without an event within `pollMs`, as an idle worker does.
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
  /** Plans may reuse known ready orgs: the policy caps no org's running jobs. */
  private readonly reuse: boolean;
  /** Known ready orgs per claim group (key: analyzers joined). */
  private readonly known = new Map<string, KnownReady>();
  /** Hints that arrive while a store read is in flight (merged into its result). */
  private readonly collectors = new Set<ReadyHint[]>();
  /** The next round reads the store (poll-timer wake-up, or the last round failed). */
  private mustRead = true;
  /** Hints counted, and the count at each org's latest hint (a claim that came up short keeps the org if one arrived meanwhile). */
  private hints = 0;
  private readonly lastHint = new Map<string, number>();

  constructor(private readonly o: StoreClaimDispatcherOptions) {
    this.drr = new DeficitRoundRobin(o.fairness);
    this.tracer = o.tracer ?? noopTracer;
    this.reuse = o.fairness.defaultMaxRunning <= 0 && Object.values(o.fairness.maxRunning).every((c) => c <= 0);
  }

  start(sink: DispatchSink): void {
    if (this.loopDone) return;
    this.sink = sink;
    this.loopDone = this.loop(sink);
  }

  poke(ready?: ReadyHint): void {
    if (ready !== undefined && this.reuse) this.learn(ready);
    this.pendingWake = true;
    this.wake?.();
  }

  /** A job of `hint.orgId` was committed as queued: if it is due, its org has ready work. */
  private learn(hint: ReadyHint): void {
    for (const c of this.collectors) c.push(hint);
    if (hint.runAt > this.o.clock.now()) return;
    this.lastHint.set(hint.orgId, ++this.hints);
    for (const k of this.known.values()) {
      if (hint.analyzer !== undefined && !k.analyzers.includes(hint.analyzer)) continue;
      if (!k.orgs.has(hint.orgId)) k.orgs.set(hint.orgId, { orgId: hint.orgId, running: 0 });
    }
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
        this.mustRead = true;
        this.o.logger.error({ err: coerceError(e) }, 'claim round failed');
      }
      if (this.stopping) break;
      const full = sink.capacity().length === 0;
      if (claimed > 0 && !full) continue;
      if (this.pendingWake && !full) continue;
      const woken = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), this.o.pollMs);
        this.wake = () => {
          clearTimeout(t);
          resolve(true);
        };
      });
      this.wake = null;
      // Nothing told us about work: ask the store (delayed jobs that became due, lost hints).
      if (!woken) this.mustRead = true;
    }
  }

  /**
   * One planning round over the sink's claim groups. Each limited analyzer is claimed
   * separately up to its free slots, so a claim can never overshoot an analyzer's limit.
   */
  private async claimRound(sink: DispatchSink): Promise<number> {
    let n = 0;
    if (this.mustRead) {
      this.mustRead = false;
      this.known.clear();
    }
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
    const known = await this.readyOrgs(analyzers, now);
    const plan = this.drr.plan([...known.orgs.values()], group.slots);
    const hintsBefore = this.hints;
    const batches = await Promise.all(
      plan.map(async (p) => {
        const jobs = await this.o.store.claimJobs({ orgId: asOrgId(p.orgId), limit: p.limit, workerId: sink.workerId, now, leaseMs: sink.leaseMs, analyzers });
        this.drr.settle(p.orgId, p.limit, jobs.length);
        // Ran dry (or another worker holds the rest): read again before planning it — unless a
        // job of the org was queued while the claim ran (the claim may not have seen it).
        if (jobs.length < p.limit && (this.lastHint.get(p.orgId) ?? 0) <= hintsBefore) known.orgs.delete(p.orgId);
        return jobs;
      }),
    );
    if (this.lastHint.size > 10_000) this.lastHint.clear();
    return batches.flat();
  }

  /** The group's ready orgs: known ones when reusable (see the class comment), else a store read. */
  private async readyOrgs(analyzers: readonly string[], now: number): Promise<KnownReady> {
    const key = analyzers.join(',');
    const have = this.known.get(key);
    const reuseMs = have?.empty === true && have.orgs.size === 0 ? Math.max(READY_REUSE_MS, this.o.pollMs) : READY_REUSE_MS;
    if (have !== undefined && performance.now() - have.at <= reuseMs) return have;
    const hints: ReadyHint[] = [];
    this.collectors.add(hints);
    let ready: OrgReadiness[];
    const at = performance.now();
    try {
      ready = await this.o.store.readyOrgs(now, analyzers);
    } finally {
      this.collectors.delete(hints);
    }
    const known: KnownReady = { at, analyzers, orgs: new Map(ready.map((r) => [r.orgId, r])), empty: ready.length === 0 };
    if (!this.reuse) return known;
    // Jobs committed while the read ran may be missing from it.
    for (const h of hints) {
      if (h.runAt <= this.o.clock.now() && (h.analyzer === undefined || analyzers.includes(h.analyzer)) && !known.orgs.has(h.orgId)) {
        known.orgs.set(h.orgId, { orgId: h.orgId, running: 0 });
      }
    }
    this.known.set(key, known);
    return known;
  }
}
