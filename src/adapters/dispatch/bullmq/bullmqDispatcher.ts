import { DelayedError, Worker, type Job as BullJob } from 'bullmq';
import type { Redis } from 'ioredis';
import { UpshiftError, coerceError } from '../../../core/errors.js';
import type { Clock } from '../../../ports/clock.js';
import type { Dispatcher, DispatchSink } from '../../../ports/dispatcher.js';
import type { Logger } from '../../../ports/logger.js';
import type { DispatchJobData } from './bullmqOutboxRelay.js';
import type { PostgresDispatchStore } from './postgresDispatchStore.js';

export interface BullmqDispatcherOptions {
  readonly store: PostgresDispatchStore;
  /** A connection for the BullMQ worker (maxRetriesPerRequest: null); the dispatcher owns it. */
  readonly connection: Redis;
  readonly queueName: string;
  readonly prefix: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** BullMQ jobs processed at once = the worker's concurrency (each waits for its attempt). */
  readonly concurrency: number;
  /** Ask again after this long when the job's row was locked by another writer. */
  readonly busyRetryMs?: number;
}

/**
 * Dispatch mode `bullmq`, worker side. A BullMQ job means "claim Upshift job X (attempt n)":
 * the processor claims it in PostgreSQL by id (compare-and-set queued → running with a lease)
 * and then runs the attempt, holding the BullMQ job until the attempt is settled so BullMQ's
 * concurrency is the worker's. If the job is not claimable any more (claimed elsewhere,
 * canceled, finished) the BullMQ job is acknowledged and dropped; if it is not due yet, or its
 * analyzer has no free slot here, it is put back as delayed.
 *
 * A BullMQ job whose worker died is retried by BullMQ's stalled-job check; by then the Upshift
 * job is either still running under the dead worker's lease (dropped here; the lease sweep
 * requeues it, which writes a new outbox row for the next attempt) or already requeued.
 */
export class BullmqDispatcher implements Dispatcher {
  readonly kind = 'bullmq';
  private worker: Worker<DispatchJobData> | null = null;
  private sink: DispatchSink | null = null;

  constructor(private readonly o: BullmqDispatcherOptions) {}

  start(sink: DispatchSink): void {
    if (this.worker) return;
    this.sink = sink;
    this.worker = new Worker<DispatchJobData>(this.o.queueName, (job, token) => this.process(job, token), {
      connection: this.o.connection,
      prefix: this.o.prefix,
      concurrency: this.o.concurrency,
      // The processor holds a BullMQ job for a whole attempt; the lock is renewed meanwhile.
      lockDuration: 30_000,
      maxStalledCount: 1_000_000,
      removeOnComplete: { count: 0 },
      removeOnFail: { count: 0 },
    });
    this.worker.on('error', (e) => this.o.logger.warn({ err: coerceError(e) }, 'BullMQ worker error (Redis unavailable?)'));
  }

  /** BullMQ wakes its worker by itself (blocking fetch); freed slots are picked up at once. */
  poke(): void {}

  async stop(): Promise<void> {
    // Fetch nothing new; active processors finish with their attempts (the sink drains them).
    await this.worker?.pause(true).catch(() => undefined);
  }

  async ping(): Promise<void> {
    try {
      const reply = await withTimeout(this.o.connection.ping(), 2_000);
      if (reply !== 'PONG') throw new Error(`unexpected PING reply ${String(reply)}`);
    } catch (e) {
      throw new UpshiftError('QUEUE_UNAVAILABLE', `Redis unavailable: ${coerceError(e).message}`, { cause: e });
    }
  }

  async close(): Promise<void> {
    await this.worker?.close().catch(() => undefined);
    this.worker = null;
    this.o.connection.disconnect();
  }

  private async process(job: BullJob<DispatchJobData>, token: string | undefined): Promise<void> {
    const sink = this.sink as DispatchSink;
    const { orgId, jobId, analyzer } = job.data;
    const now = this.o.clock.now();
    if (!sink.capacity().some((g) => g.analyzers.includes(analyzer) && g.slots > 0)) {
      // Full for this analyzer (or not registered here): let another worker or a later slot take it.
      return this.delay(job, token, Date.now() + (this.o.busyRetryMs ?? 250));
    }
    let r;
    try {
      r = await this.o.store.claimById({ orgId, jobId, workerId: sink.workerId, leaseMs: sink.leaseMs, now });
    } catch (e) {
      // PostgreSQL unavailable: keep the signal (failing it would drop it until the safety net).
      this.o.logger.warn({ err: coerceError(e), job_id: jobId }, 'claim by id failed; trying again shortly');
      return this.delay(job, token, Date.now() + 1_000);
    }
    switch (r.kind) {
      case 'claimed':
        await sink.run(r.job);
        return;
      case 'gone':
        return;
      case 'not_due':
        return this.delay(job, token, Date.now() + Math.max(1, r.runAt - now));
      case 'busy':
        return this.delay(job, token, Date.now() + (this.o.busyRetryMs ?? 250));
    }
  }

  private async delay(job: BullJob<DispatchJobData>, token: string | undefined, at: number): Promise<never> {
    await job.moveToDelayed(at, token);
    throw new DelayedError();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no reply within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}
