import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { UpshiftError, coerceError } from '../../../core/errors.js';
import { systemClock, type Clock } from '../../../ports/clock.js';
import type { JobStore } from '../../../ports/jobStore.js';
import type { Logger } from '../../../ports/logger.js';
import { BullmqDispatcher } from './bullmqDispatcher.js';
import { BullmqOutboxRelay, type DispatchJobData } from './bullmqOutboxRelay.js';
import { PostgresDispatchStore } from './postgresDispatchStore.js';

export interface BullmqDispatchOptions {
  /** The PostgreSQL store's database (postgres://…); the store must be migrated. */
  readonly databaseUrl: string;
  /** The job store of that database: the worker's claims by id join its group commit. */
  readonly jobStore: Pick<JobStore, 'claimJobsById'>;
  /** The store's schema (default `upshift`); also names the BullMQ queue. */
  readonly schema?: string;
  readonly redisUrl: string;
  /** BullMQ key prefix (default `upshift`). */
  readonly prefix?: string;
  readonly clock?: Clock;
  readonly logger: Logger;
  /** Jobs one worker runs at once (BullMQ worker concurrency). */
  readonly concurrency: number;
  /** Relay fallback poll (default 1,000 ms). */
  readonly relayPollMs?: number;
  /** Outbox rows per relay transaction (default 500). */
  readonly relayBatchSize?: number;
  /** First-attempt outbox rows the relay leaves to the committing process this long (default 2,000 ms). */
  readonly relayGraceMs?: number;
  /** Safety-net period (default 30,000 ms; 0 = off). */
  readonly sweepMs?: number;
  /** How long a queued job must have been due before the safety net re-dispatches it (default 10,000 ms). */
  readonly sweepGraceMs?: number;
}

/** Everything BullMQ dispatch needs in one process; see docs/scale-mode.md. */
export interface BullmqDispatch {
  /** Worker side: claims the jobs BullMQ hands out. Start it only in worker processes. */
  readonly dispatcher: BullmqDispatcher;
  /** Producer side: direct publish after this process's commits, outbox → BullMQ, the safety net. Runs in every process. */
  readonly relay: BullmqOutboxRelay;
  readonly store: PostgresDispatchStore;
  readonly queue: Queue<DispatchJobData>;
  /** Enables outbox capture (idempotent; needs the table owner). Call once before start. */
  prepare(): Promise<void>;
  /** Redis reachable (QUEUE_UNAVAILABLE otherwise). */
  ping(): Promise<void>;
  /** Stops the relay and closes every connection (stop the worker runtime first). */
  close(): Promise<void>;
}

/** Reconnect fast: after an outage the backlog should move within a second of Redis' return. */
const retryStrategy = (times: number): number => Math.min(50 * times, 1_000);

/**
 * Library-level constructor of BullMQ dispatch (also used by src/main.ts):
 *
 * ```ts
 * const d = createBullmqDispatch({ databaseUrl, redisUrl, logger, concurrency: 16 });
 * await d.prepare();
 * d.relay.start();
 * const worker = new WorkerRuntime({ ..., dispatcher: d.dispatcher });
 * ```
 */
export function createBullmqDispatch(opts: BullmqDispatchOptions): BullmqDispatch {
  const clock = opts.clock ?? systemClock;
  const store = new PostgresDispatchStore({ url: opts.databaseUrl, ...(opts.schema !== undefined && { schema: opts.schema }) });
  const prefix = opts.prefix ?? 'upshift';
  const queueName = `dispatch-${store.schema}`;
  // Producer. The relay does not publish while this connection is not ready (the rows stay in
  // the outbox); the offline queue stays on because BullMQ sends its setup commands at once.
  const producer = new Redis(opts.redisUrl, { maxRetriesPerRequest: 1, retryStrategy });
  producer.on('error', () => undefined);
  const queue = new Queue<DispatchJobData>(queueName, { connection: producer, prefix, skipWaitingForReady: true });
  queue.on('error', () => undefined);
  const workerConn = new Redis(opts.redisUrl, { maxRetriesPerRequest: null, retryStrategy });
  workerConn.on('error', () => undefined);
  const relay = new BullmqOutboxRelay({
    store,
    queue,
    clock,
    logger: opts.logger,
    pollMs: opts.relayPollMs ?? 1_000,
    batchSize: opts.relayBatchSize ?? 500,
    graceMs: opts.relayGraceMs ?? 2_000,
    sweepMs: opts.sweepMs ?? 30_000,
    sweepGraceMs: opts.sweepGraceMs ?? 10_000,
    publishTimeoutMs: 5_000,
    connected: () => producer.status === 'ready',
    // BullMQ keeps a job as the hash <prefix>:<queue>:<id> in every state (waiting, delayed, active).
    exists: async (ids) => {
      const pipe = producer.pipeline();
      for (const id of ids) pipe.exists(`${prefix}:${queueName}:${id}`);
      const replies = (await pipe.exec()) ?? [];
      return ids.map((_, i) => {
        const [err, n] = replies[i] ?? [new Error('no reply'), 0];
        if (err) throw err;
        return n === 1;
      });
    },
  });
  const dispatcher = new BullmqDispatcher({ store: opts.jobStore, connection: workerConn, queueName, prefix, clock, logger: opts.logger, concurrency: opts.concurrency });
  let closed = false;
  return {
    dispatcher,
    relay,
    store,
    queue,
    async prepare() {
      if (await store.setOutboxCapture(true)) opts.logger.info({ schema: store.schema }, 'dispatch outbox capture enabled (BullMQ dispatch)');
    },
    async ping() {
      try {
        const reply = await producer.ping();
        if (reply !== 'PONG') throw new Error(`unexpected PING reply ${reply}`);
      } catch (e) {
        throw new UpshiftError('QUEUE_UNAVAILABLE', `Redis unavailable: ${coerceError(e).message}`, { cause: e });
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await relay.stop();
      await dispatcher.close();
      await queue.close().catch(() => undefined);
      producer.disconnect();
      await store.close();
    },
  };
}
