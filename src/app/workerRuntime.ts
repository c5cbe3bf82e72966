import { PermanentError, RetryAfterError, type Analyzer, type AnalyzerContext } from '../core/analyzer.js';
import { coerceError, isUpshiftError } from '../core/errors.js';
import type { FairnessPolicy } from '../core/fairness.js';
import { newResultId } from '../core/ids.js';
import type { JobEvent } from '../core/events.js';
import type { ClaimedJob, Job, JobError, Json, LeaseRef } from '../core/job.js';
import { backoffDelay, type BackoffPolicy } from '../core/retry.js';
import type { Clock } from '../ports/clock.js';
import type { ClaimGroup, Dispatcher, DispatchSink, ReadyHint } from '../ports/dispatcher.js';
import type { EventFeed } from '../ports/eventFeed.js';
import type { FinishOutcome, JobStore } from '../ports/jobStore.js';
import type { Logger } from '../ports/logger.js';
import { noopTracer, type Span, type Tracer } from '../ports/tracer.js';
import type { AnalyzerRegistry } from './analyzerRegistry.js';
import { StoreClaimDispatcher } from './storeClaimDispatcher.js';

export interface WorkerOptions {
  readonly store: JobStore;
  readonly feed: EventFeed;
  readonly registry: AnalyzerRegistry;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly workerId: string;
  /** Jobs this worker runs at once, over all analyzers. */
  readonly concurrency: number;
  /**
   * Claimed jobs this worker may hold beyond `concurrency`, waiting for a slot (default 0). They
   * start the moment a slot frees, while the outcomes of the finished ones and the claim that
   * refills the buffer are written: the worker's own work overlaps the store's. A held job is
   * `running` with a lease like a started one (heartbeats extend it; a killed worker's jobs are
   * recovered when it expires).
   *
   * `'auto'`: held jobs only while they pay — while this worker is saturated (every slot was
   * busy within the last AUTO_PREFETCH_WINDOW_MS) with jobs that run briefly, as many as the
   * slots finish in about AUTO_PREFETCH_HORIZON_MS of analyzer time (`concurrency ×
   * horizon / mean run time`, at most AUTO_PREFETCH_MAX_FACTOR × concurrency). A worker with
   * free slots, or one running long jobs, holds nothing, so a held job never waits long for its
   * slot while another worker could have started it (see autoPrefetch()).
   */
  readonly prefetch?: number | 'auto';
  readonly leaseMs: number;
  readonly heartbeatMs: number;
  /** Fallback poll of the default (store-claim) dispatcher when no wake-up arrives. */
  readonly pollMs: number;
  /** How long an analyzer may ignore its abort signal before the cancel is forced. */
  readonly cancelGraceMs: number;
  readonly defaultTimeoutMs: number;
  readonly backoff: BackoffPolicy;
  /** Tenant fairness of the default (store-claim) dispatcher. */
  readonly fairness: FairnessPolicy;
  /**
   * Where claimed jobs come from (default: a StoreClaimDispatcher over `store`). The runtime
   * starts and stops it; closing it is the owner's job.
   */
  readonly dispatcher?: Dispatcher;
  readonly random?: () => number;
  /**
   * Called when a job attempt settles (for metrics), with the committed outcome: a retry the
   * store turned into a cancel reports `canceled`, a finalization that lost its lease `lease_lost`.
   */
  readonly onSettled?: (job: ClaimedJob, outcome: FinishOutcome['status'] | 'lease_lost', durationMs: number) => void;
  /** Spans `upshift.claim`, `upshift.analyzer.run`, `upshift.finalize` under the job's stored trace context. */
  readonly tracer?: Tracer;
}

type AbortKind = 'cancel' | 'timeout' | 'shutdown' | 'lease_lost';

/** `prefetch: 'auto'`: how long after the last moment every slot was busy the worker still counts as saturated. */
export const AUTO_PREFETCH_WINDOW_MS = 1_000;
/** `prefetch: 'auto'`: held jobs are about this much analyzer time per slot (they wait about as long). */
export const AUTO_PREFETCH_HORIZON_MS = 20;
/** `prefetch: 'auto'`: at most this many held jobs per slot. */
export const AUTO_PREFETCH_MAX_FACTOR = 4;
/** Weight of the newest attempt in the mean run time (`prefetch: 'auto'`). */
const RUN_TIME_EWMA_ALPHA = 0.1;

/** What an attempt's analyzer promise settles to when its cancel was forced. */
const FORCED: unique symbol = Symbol('forced');

class AbortReason extends Error {
  constructor(readonly kind: AbortKind) {
    super(`job attempt aborted: ${kind}`);
    this.name = 'AbortError';
  }
}

interface Running {
  readonly job: ClaimedJob;
  readonly lease: LeaseRef;
  readonly controller: AbortController;
  readonly startedAt: number;
  /** Resolves when the attempt's outcome has been written (or given up). */
  readonly done: Promise<void>;
  forceCancel?: () => void;
  /** Frees the slot (idempotent): called when the analyzer returns, before the outcome is written. */
  release?: () => void;
}

/** A claimed job held for a free slot (see WorkerOptions.prefetch). */
interface Held {
  readonly job: ClaimedJob;
  readonly lease: LeaseRef;
  /** Settles the promise run() returned for the job. */
  readonly settle: (attempt: Promise<void>) => void;
}

/**
 * Claims jobs fairly across orgs, runs analyzers with lease heartbeats, timeouts and cancel,
 * and writes every outcome through the store's guarded finalization.
 */
/** An analyzer with its own concurrency limit (see WorkerRuntime.partition()). */
interface LimitedAnalyzer {
  readonly name: string;
  readonly concurrency: number;
}

export class WorkerRuntime implements DispatchSink {
  readonly dispatcher: Dispatcher;
  /** Attempts whose analyzer runs: the slots in use. */
  private readonly running = new Map<string, Running>();
  /** Every attempt not yet settled, including those whose outcome is being written (stop waits for them). */
  private readonly attempts = new Set<Promise<void>>();
  /** Jobs this worker holds per analyzer, started or held (analyzer concurrency limits). */
  private readonly perAnalyzer = new Map<string, number>();
  /** Claimed jobs waiting for a slot, by job id, in claim order (a Map keeps insertion order). */
  private readonly held = new Map<string, Held>();
  private readonly prefetch: number | 'auto';
  /** performance.now() when every slot was last busy (`prefetch: 'auto'`). */
  private saturatedAt = Number.NEGATIVE_INFINITY;
  /** Exponentially weighted mean of analyzer run times in ms, null before the first (`prefetch: 'auto'`). */
  private meanRunMs: number | null = null;
  /** See partition(). */
  private split: { readonly size: number; readonly unlimited: readonly string[]; readonly limited: readonly LimitedAnalyzer[] } | null = null;
  private drainScheduled = false;
  /** Past the stop deadline: held jobs are released, not started. */
  private released = false;
  private readonly random: () => number;
  private readonly tracer: Tracer;
  private started = false;
  private stopping = false;
  private timers: NodeJS.Timeout[] = [];
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly o: WorkerOptions) {
    this.dispatcher =
      o.dispatcher ?? new StoreClaimDispatcher({ store: o.store, clock: o.clock, logger: o.logger, pollMs: o.pollMs, fairness: o.fairness, ...(o.tracer && { tracer: o.tracer }) });
    this.random = o.random ?? Math.random;
    this.tracer = o.tracer ?? noopTracer;
    this.prefetch = o.prefetch === 'auto' ? 'auto' : Math.max(0, Math.floor(o.prefetch ?? 0));
  }

  get inFlight(): number {
    return this.running.size;
  }

  /** Claimed jobs held for a free slot (prefetch): `running` in the store, not started yet. */
  get heldJobs(): number {
    return this.held.size;
  }

  get workerId(): string {
    return this.o.workerId;
  }

  get leaseMs(): number {
    return this.o.leaseMs;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.unsubscribe = this.o.feed.subscribe((events) => {
      for (const e of events) {
        if (e.type === 'job.queued' || e.type === 'job.retrying') this.poke(readyHintOf(e));
        else if (e.type === 'job.cancel_requested') this.cancelLocal(e.jobId);
      }
    });
    this.timers.push(setInterval(() => void this.heartbeat(), this.o.heartbeatMs));
    this.timers.push(setInterval(() => void this.sweep(), Math.max(50, Math.min(this.o.leaseMs / 2, 5_000))));
    for (const t of this.timers) t.unref();
    this.dispatcher.start(this);
  }

  /** Wake the dispatcher now (a job was queued, or a slot was freed). */
  poke(ready?: ReadyHint): void {
    if (!this.stopping) this.dispatcher.poke(ready);
  }

  /**
   * Graceful stop: claim nothing new, let in-flight attempts finish until `deadlineMs`, then
   * abort the rest and release them back to the queue.
   */
  async stop(deadlineMs: number): Promise<void> {
    this.stopping = true;
    await this.dispatcher.stop();
    const all = Promise.all([...this.attempts]);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), deadlineMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      // Held jobs never started: back to the queue like the aborted ones.
      this.released = true;
      for (const h of this.takeHeld()) this.settleUnstarted(h, { status: 'retry', error: { code: 'SHUTTING_DOWN', message: 'released at shutdown' }, retryAt: this.o.clock.now() });
      for (const r of this.running.values()) r.controller.abort(new AbortReason('shutdown'));
      await Promise.race([all, new Promise((resolve) => setTimeout(resolve, Math.min(this.o.cancelGraceMs, 2_000)))]);
    }
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.unsubscribe?.();
  }

  /**
   * Free slots as claim groups. Analyzers without their own concurrency limit share one group;
   * each limited analyzer gets its own group up to its free slots, so a claim can never
   * overshoot an analyzer's limit. The shared group may also claim into the prefetch room;
   * limited analyzers get free slots only (a held job counts against its analyzer's limit, and
   * a worker busy with a backlog does not ask for the limited analyzers' work every round).
   */
  capacity(): ClaimGroup[] {
    const room = this.o.concurrency + this.prefetchAllowed - this.running.size - this.held.size;
    if (this.stopping || room <= 0) return [];
    const free = this.o.concurrency - this.running.size - this.held.size;
    const { unlimited, limited } = this.partition();
    const groups: ClaimGroup[] = unlimited.length > 0 ? [{ analyzers: unlimited, slots: room }] : [];
    for (const a of limited) {
      const slots = Math.min(free, a.concurrency - (this.perAnalyzer.get(a.name) ?? 0));
      if (slots > 0) groups.push({ analyzers: [a.name], slots });
    }
    return groups;
  }

  /** Held jobs allowed beyond the concurrency now: the fixed `prefetch`, or autoPrefetch(). */
  get prefetchAllowed(): number {
    return this.prefetch === 'auto' ? this.autoPrefetch() : this.prefetch;
  }

  /**
   * `prefetch: 'auto'`. Nothing while the worker has had a free slot for the last
   * AUTO_PREFETCH_WINDOW_MS (it can start whatever it claims, a bigger claim would only ask
   * for jobs that are not there) or before an attempt has finished (the run time is unknown).
   * Otherwise enough held jobs to keep every slot busy for about AUTO_PREFETCH_HORIZON_MS of
   * analyzer time, at most AUTO_PREFETCH_MAX_FACTOR per slot: with millisecond jobs the worker
   * runs the held ones while the store writes the last wave's outcomes and the refilling claim
   * (the worker's work overlaps the store's instead of taking turns with it); with jobs of
   * 20 ms or longer it holds nothing, and no job waits behind long-running ones.
   */
  private autoPrefetch(): number {
    if (this.meanRunMs === null || performance.now() - this.saturatedAt > AUTO_PREFETCH_WINDOW_MS) return 0;
    const c = this.o.concurrency;
    return Math.min(AUTO_PREFETCH_MAX_FACTOR * c, Math.floor((c * AUTO_PREFETCH_HORIZON_MS) / Math.max(this.meanRunMs, 0.001)));
  }

  /**
   * The registry split into analyzers without a concurrency limit (their names, one shared
   * frozen array) and limited ones, rebuilt only when an analyzer was registered: capacity()
   * runs several times per claim round, and rebuilding the split each time was a measurable
   * share of the worker's allocations at a few hundred jobs/s.
   */
  private partition(): { readonly unlimited: readonly string[]; readonly limited: readonly LimitedAnalyzer[] } {
    const size = this.o.registry.size;
    if (this.split?.size !== size) {
      const all = this.o.registry.list();
      this.split = {
        size,
        unlimited: Object.freeze(all.filter((a) => a.concurrency === undefined).map((a) => a.name)),
        limited: Object.freeze(all.flatMap((a) => (a.concurrency === undefined ? [] : [{ name: a.name, concurrency: a.concurrency }]))),
      };
    }
    return this.split;
  }

  run(job: ClaimedJob, claimStartedAt?: number): Promise<void> {
    if (this.tracer.enabled) this.span('upshift.claim', job, claimStartedAt).end('ok');
    const analyzer = this.o.registry.get(job.analyzer);
    this.perAnalyzer.set(analyzer.name, (this.perAnalyzer.get(analyzer.name) ?? 0) + 1);
    if (this.running.size < this.o.concurrency && this.held.size === 0) return this.begin(job, analyzer);
    // No free slot (the dispatcher claimed into the prefetch room): hold it until one frees.
    const lease: LeaseRef = { orgId: job.orgId, jobId: job.jobId, attempt: job.attempt, leaseToken: job.leaseToken };
    let settle!: (attempt: Promise<void>) => void;
    const done = new Promise<void>((resolve) => (settle = (attempt) => void attempt.then(resolve)));
    this.attempts.add(done);
    void done.finally(() => this.attempts.delete(done));
    this.held.set(job.jobId, { job, lease, settle });
    return done;
  }

  private begin(job: ClaimedJob, analyzer: Analyzer<unknown, unknown>): Promise<void> {
    return this.execute(job, analyzer).catch((e: unknown) => this.o.logger.error({ err: coerceError(e), job_id: job.jobId }, 'job attempt failed unexpectedly'));
  }

  /**
   * Starts held jobs in claim order while slots are free. Runs one event-loop turn after a
   * slot was freed, so the outcomes written in that turn leave (as one group commit) before
   * the next jobs' outcomes join them: the store writes one wave while the worker runs the next.
   */
  private scheduleDrain(): void {
    if (this.drainScheduled || this.held.size === 0) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      for (const h of this.held.values()) {
        if (this.released || this.running.size >= this.o.concurrency) break;
        this.held.delete(h.job.jobId);
        h.settle(this.begin(h.job, this.o.registry.get(h.job.analyzer)));
      }
    });
  }

  /** Removes and returns held jobs: all of them, or the one of `jobId` (if held). */
  private takeHeld(jobId?: string): Held[] {
    if (jobId === undefined) {
      const all = [...this.held.values()];
      this.held.clear();
      return all;
    }
    const h = this.held.get(jobId);
    if (h === undefined) return [];
    this.held.delete(jobId);
    return [h];
  }

  /** A held job that will not run (cancel requested, lease lost, shutdown): written back, never started. */
  private settleUnstarted(h: Held, outcome: FinishOutcome | null): void {
    this.perAnalyzer.set(h.job.analyzer, (this.perAnalyzer.get(h.job.analyzer) ?? 1) - 1);
    const write = async (): Promise<void> => {
      let settledAs: FinishOutcome['status'] | 'lease_lost' = outcome === null ? 'lease_lost' : outcome.status;
      if (outcome !== null) {
        try {
          const after = await this.o.store.finishJob(h.lease, outcome, this.o.clock.now());
          settledAs = after.status === 'queued' ? 'retry' : after.status === 'running' ? settledAs : after.status;
        } catch (e) {
          if (isUpshiftError(e, 'JOB_LEASE_LOST')) settledAs = 'lease_lost';
          else this.o.logger.error({ err: coerceError(e), job_id: h.job.jobId }, 'writing back a held job failed; the lease will expire and the job be recovered');
        }
      }
      this.o.onSettled?.(h.job, settledAs, 0);
    };
    h.settle(write());
    this.poke();
  }

  private execute(job: ClaimedJob, analyzer: Analyzer<unknown, unknown>): Promise<void> {
    const controller = new AbortController();
    const lease: LeaseRef = { orgId: job.orgId, jobId: job.jobId, attempt: job.attempt, leaseToken: job.leaseToken };
    const startedAt = this.o.clock.now();
    const entry = { job, lease, controller, startedAt } as Running;
    let released = false;
    // The slot is free as soon as the analyzer returns: the next claim overlaps the write of
    // this outcome (on PostgreSQL both are round trips with a commit each), instead of
    // waiting for it. The job stays leased until the outcome commits, so nobody else runs it.
    entry.release = () => {
      if (released) return;
      released = true;
      this.running.delete(job.jobId);
      this.perAnalyzer.set(analyzer.name, (this.perAnalyzer.get(analyzer.name) ?? 1) - 1);
      this.scheduleDrain();
      this.poke();
    };
    const done = this.attempt(entry, analyzer).finally(() => {
      entry.release?.();
      this.attempts.delete(done);
    });
    (entry as { done: Promise<void> }).done = done;
    this.attempts.add(done);
    this.running.set(job.jobId, entry);
    if (this.prefetch === 'auto' && this.running.size >= this.o.concurrency) this.saturatedAt = performance.now();
    if (job.cancelRequestedAt !== null) this.cancelLocal(job.jobId);
    return entry.done;
  }

  private async attempt(r: Running, analyzer: Analyzer<unknown, unknown>): Promise<void> {
    const { job, lease, controller } = r;
    // Child loggers cost more than a noop job; create one only if something logs.
    let child: Logger | undefined;
    const log = (): Logger => (child ??= this.o.logger.child({ job_id: job.jobId, org_id: job.orgId, analyzer: job.analyzer, attempt: job.attempt }));
    const timeoutMs = analyzer.timeoutMs ?? this.o.defaultTimeoutMs;
    const timeout = setTimeout(() => controller.abort(new AbortReason('timeout')), timeoutMs);
    let outcome: FinishOutcome | null;
    const span = this.span('upshift.analyzer.run', job);
    // Only `prefetch: 'auto'` reads the run time (autoPrefetch).
    const runStart = this.prefetch === 'auto' ? performance.now() : 0;
    try {
      const ctx = this.context(job, lease, controller, log);
      // The analyzer's result, or FORCED once a cancel is forced (the analyzer ignored its signal
      // past the grace period; whatever it does later is ignored). One promise per attempt.
      const value = await new Promise<unknown>((resolve, reject) => {
        r.forceCancel = () => resolve(FORCED);
        Promise.resolve(analyzer.run(job.input, ctx)).then(resolve, reject);
      });
      if (value !== FORCED) outcome = { status: 'completed', resultId: newResultId(this.o.clock.now()), payload: toJson(value) };
      else outcome = abortKind(controller.signal) === 'lease_lost' ? null : { status: 'canceled', reason: 'cancel_forced' };
    } catch (e) {
      outcome = this.outcomeOfError(job, controller.signal, e);
    } finally {
      clearTimeout(timeout);
      if (this.prefetch === 'auto') this.recordRunTime(performance.now() - runStart);
    }
    let settledAs: FinishOutcome['status'] | 'lease_lost' = outcome === null ? 'lease_lost' : outcome.status;
    if (this.tracer.enabled) endAttemptSpan(span, outcome);
    if (outcome !== null) {
      const fin = this.span('upshift.finalize', job);
      // The outcome is queued for writing before the slot frees, so it joins the store's
      // next group commit ahead of the outcomes of held jobs the free slot starts.
      const written = this.o.store.finishJob(lease, outcome, this.o.clock.now());
      r.release?.();
      try {
        const after = await written;
        settledAs = after.status === 'queued' ? 'retry' : after.status === 'running' ? settledAs : after.status;
        fin.end('ok');
      } catch (e) {
        fin.end('error', coerceError(e).message);
        if (isUpshiftError(e, 'JOB_LEASE_LOST')) settledAs = 'lease_lost';
        else log().error({ err: coerceError(e) }, 'finalization failed; the lease will expire and the job be recovered');
      }
    } else r.release?.();
    this.o.onSettled?.(job, settledAs, this.o.clock.now() - r.startedAt);
  }

  private recordRunTime(ms: number): void {
    this.meanRunMs = this.meanRunMs === null ? ms : this.meanRunMs + RUN_TIME_EWMA_ALPHA * (ms - this.meanRunMs);
  }

  /** A span of this job's attempt, child of the trace context stored at submit. */
  private span(name: string, job: ClaimedJob, startTime?: number): Span {
    if (!this.tracer.enabled) return this.tracer.startSpan(name);
    return this.tracer.startSpan(name, {
      kind: name === 'upshift.claim' ? 'consumer' : 'internal',
      parent: job.traceContext,
      ...(startTime !== undefined && { startTime }),
      attributes: { 'upshift.job_id': job.jobId, 'upshift.org_id': job.orgId, 'upshift.analyzer': job.analyzer, 'upshift.attempt': job.attempt },
    });
  }

  private outcomeOfError(job: Job, signal: AbortSignal, e: unknown): FinishOutcome | null {
    const reason: unknown = signal.reason;
    const now = this.o.clock.now();
    if (signal.aborted && reason instanceof AbortReason) {
      if (reason.kind === 'lease_lost') return null;
      if (reason.kind === 'cancel') return { status: 'canceled', reason: 'cancel_observed' };
      if (reason.kind === 'shutdown') return { status: 'retry', error: { code: 'SHUTTING_DOWN', message: 'released at shutdown' }, retryAt: now };
      return this.retryOrFail(job, { code: 'ANALYZER_TIMEOUT', message: `attempt exceeded its timeout` }, null);
    }
    if (isUpshiftError(e, 'JOB_LEASE_LOST')) return null;
    const err = coerceError(e);
    if (err instanceof PermanentError) return { status: 'failed', error: { code: err.code, message: err.message } };
    const retryAfter = err instanceof RetryAfterError ? err.retryAfterMs : null;
    return this.retryOrFail(job, { code: 'ANALYZER_FAILED', message: err.message }, retryAfter);
  }

  private retryOrFail(job: Job, error: JobError, retryAfterMs: number | null): FinishOutcome {
    if (job.attempt >= job.maxAttempts) return { status: 'failed', error };
    const delay = retryAfterMs ?? backoffDelay(job.attempt + 1, this.o.backoff, this.random);
    return { status: 'retry', error, retryAt: this.o.clock.now() + delay };
  }

  private context(job: ClaimedJob, lease: LeaseRef, controller: AbortController, logger: () => Logger): AnalyzerContext {
    let lastProgressAt = 0;
    let pending: { fraction: number; message: string | null } | null = null;
    let inFlight = false;
    const flush = (): void => {
      if (!pending || inFlight) return;
      const p = pending;
      pending = null;
      inFlight = true;
      lastProgressAt = this.o.clock.now();
      this.o.store
        .recordProgress(lease, p.fraction, p.message, lastProgressAt)
        .catch((e: unknown) => {
          if (!isUpshiftError(e, 'JOB_LEASE_LOST')) logger().warn({ err: coerceError(e) }, 'progress not recorded');
        })
        .finally(() => {
          inFlight = false;
        });
    };
    return {
      jobId: job.jobId,
      orgId: job.orgId,
      attempt: job.attempt,
      // Read lazily: Node builds an AbortSignal on first access, and most analyzers never look.
      get signal() {
        return controller.signal;
      },
      get logger() {
        return logger();
      },
      progress: (fraction, message) => {
        if (!Number.isFinite(fraction)) return;
        pending = { fraction: Math.min(1, Math.max(0, fraction)), message: message ?? null };
        // Throttled: progress is a hint, not a log of micro-steps.
        if (this.o.clock.now() - lastProgressAt >= 250) flush();
      },
      partial: async (chunkKey, payload) => {
        const signal = controller.signal;
        if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new AbortReason('cancel');
        await this.o.store.recordPartial(lease, chunkKey, payload, this.o.clock.now());
      },
    };
  }

  /** A cancel was requested for a job this worker runs: abort it, force after the grace period. */
  private cancelLocal(jobId: string): void {
    // Not started yet: the cancel is observed before the analyzer ever runs.
    for (const h of this.takeHeld(jobId)) return this.settleUnstarted(h, { status: 'canceled', reason: 'cancel_observed' });
    const r = this.running.get(jobId);
    if (!r || r.controller.signal.aborted) return;
    r.controller.abort(new AbortReason('cancel'));
    const t = setTimeout(() => r.forceCancel?.(), this.o.cancelGraceMs);
    t.unref();
    void r.done.finally(() => clearTimeout(t));
  }

  private async heartbeat(): Promise<void> {
    if (this.running.size === 0 && this.held.size === 0) return;
    try {
      const results = await this.o.store.heartbeat({
        workerId: this.o.workerId,
        leases: [...this.running.values(), ...this.held.values()].map((r) => r.lease),
        now: this.o.clock.now(),
        leaseMs: this.o.leaseMs,
      });
      for (const res of results) {
        if (this.held.has(res.jobId)) {
          if (!res.held) for (const h of this.takeHeld(res.jobId)) this.settleUnstarted(h, null);
          else if (res.cancelRequested) this.cancelLocal(res.jobId);
          continue;
        }
        const r = this.running.get(res.jobId);
        if (!r) continue;
        if (!res.held) {
          r.controller.abort(new AbortReason('lease_lost'));
          r.forceCancel?.();
        } else if (res.cancelRequested) this.cancelLocal(res.jobId);
      }
    } catch (e) {
      this.o.logger.warn({ err: coerceError(e) }, 'heartbeat failed');
    }
  }

  /** Recovers jobs whose worker died (lease expired): requeue with backoff, fail or cancel. */
  private async sweep(): Promise<void> {
    try {
      const now = this.o.clock.now();
      const moved = await this.o.store.recoverExpiredLeases(now, 500, (job) => now + backoffDelay(job.attempt + 1, this.o.backoff, this.random));
      if (moved.length > 0) {
        this.o.logger.warn({ count: moved.length }, 'recovered jobs with expired leases');
        this.poke();
      }
    } catch (e) {
      this.o.logger.warn({ err: coerceError(e) }, 'lease sweep failed');
    }
  }
}

/** What a job.queued / job.retrying event tells the dispatcher (undefined if its payload lacks run_at). */
export function readyHintOf(e: JobEvent): ReadyHint | undefined {
  const p = e.payload;
  if (p === null || typeof p !== 'object' || Array.isArray(p) || typeof p.run_at !== 'number') return undefined;
  return typeof p.analyzer === 'string' ? { orgId: e.orgId, runAt: p.run_at, analyzer: p.analyzer } : { orgId: e.orgId, runAt: p.run_at };
}

function endAttemptSpan(span: Span, outcome: FinishOutcome | null): void {
  span.setAttributes({ 'upshift.outcome': outcome === null ? 'lease_lost' : outcome.status });
  if (outcome !== null && 'error' in outcome) span.end('error', outcome.error.code);
  else span.end('ok');
}

/** Analyzer return values are serialised by the store; undefined becomes null. */
function toJson(v: unknown): Json {
  return v === undefined ? null : (v as Json);
}

function abortKind(signal: AbortSignal): AbortKind | null {
  const reason: unknown = signal.reason;
  return signal.aborted && reason instanceof AbortReason ? reason.kind : null;
}
