import type { ClaimedJob } from '../core/job.js';

/**
 * Dispatch: how a worker learns which queued jobs to claim. The job store stays the system
 * of record; a dispatcher only decides *when* and *which* jobs this worker claims, and every
 * claim is the store's compare-and-set queued → running with a fresh lease. So dispatch is
 * at-least-once and may be lossy: a duplicated or stale signal claims nothing, and a lost one
 * is recovered by the dispatcher's fallback (poll or safety-net sweep).
 *
 * Adapters:
 * - store claims (`src/app/storeClaimDispatcher.ts`, mode `store`): the worker claims straight
 *   from the store — PostgreSQL `FOR UPDATE SKIP LOCKED` woken by LISTEN/NOTIFY, or embedded
 *   SQLite — fairly across orgs (deficit round robin), with a poll fallback;
 * - BullMQ (`src/adapters/dispatch/bullmq/`, mode `bullmq`): a transactional outbox in
 *   PostgreSQL is relayed to a BullMQ queue; a BullMQ job tells one worker to claim one
 *   Upshift job by id.
 */
export interface Dispatcher {
  /** 'store' | 'bullmq', for logs and readiness. */
  readonly kind: string;

  /**
   * Starts handing claimed jobs to `sink`. Never hands over more jobs than `sink.capacity()`
   * allowed at the time of the claim. Idempotent.
   */
  start(sink: DispatchSink): void;

  /**
   * Hint: a job may have become claimable (`ready` says which, when known: a committed
   * job.queued / job.retrying event), or local capacity was freed. Cheap; may be ignored.
   */
  poke(ready?: ReadyHint): void;

  /**
   * Stops claiming. Resolves once no claim is in flight any more; jobs already handed to the
   * sink stay the sink's (they are not waited for). Idempotent.
   */
  stop(): Promise<void>;

  /** Readiness of what dispatch depends on beyond the store; throws QUEUE_UNAVAILABLE. */
  ping(): Promise<void>;

  /** Releases connections. Call after stop() and after the sink finished its jobs. */
  close(): Promise<void>;
}

/** A job that was queued (or requeued) in `orgId`, claimable from `runAt` (epoch ms). */
export interface ReadyHint {
  readonly orgId: string;
  readonly runAt: number;
  /** The job's analyzer, when the event names it (job.queued does, job.retrying does not). */
  readonly analyzer?: string;
}

/** The worker side a dispatcher feeds (WorkerRuntime implements it). */
export interface DispatchSink {
  readonly workerId: string;
  readonly leaseMs: number;
  /**
   * Free slots now, as claim groups: analyzers claimed together and how many jobs of them the
   * worker can take (per-analyzer concurrency limits give an analyzer its own group). Empty
   * when the worker is full or stopping.
   */
  capacity(): readonly ClaimGroup[];
  /**
   * Runs a job the dispatcher claimed for this sink. Resolves when the attempt's outcome has
   * been written (or given up: the lease then expires and the job is recovered). Never rejects.
   * `claimStartedAt` (tracer clock) dates the claim span.
   */
  run(job: ClaimedJob, claimStartedAt?: number): Promise<void>;
}

export interface ClaimGroup {
  readonly analyzers: readonly string[];
  /** > 0; may be Infinity for the unlimited group before the overall capacity is applied. */
  readonly slots: number;
}

/**
 * The producer side of a queue-based dispatcher: moves committed dispatch requests (the
 * transactional outbox) to the queue. Runs in every process of a BullMQ deployment.
 */
export interface DispatchRelay {
  start(): void;
  /** Hint: new outbox rows were committed. */
  poke(): void;
  stop(): Promise<void>;
}
