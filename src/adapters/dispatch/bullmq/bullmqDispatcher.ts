import { randomBytes } from 'node:crypto';
import { Worker, type Job as BullJob, type JobJson } from 'bullmq';
import type { Redis } from 'ioredis';
import { UpshiftError, coerceError } from '../../../core/errors.js';
import { asJobId, asOrgId } from '../../../core/ids.js';
import type { Clock } from '../../../ports/clock.js';
import type { Dispatcher, DispatchSink } from '../../../ports/dispatcher.js';
import type { ClaimByIdResult, JobStore } from '../../../ports/jobStore.js';
import type { Logger } from '../../../ports/logger.js';
import type { DispatchJobData } from './bullmqOutboxRelay.js';

export interface BullmqDispatcherOptions {
  /** Claims by id run in the store's group commit, beside the completions of the same turn. */
  readonly store: Pick<JobStore, 'claimJobsById'>;
  /** A connection for the BullMQ worker (maxRetriesPerRequest: null); the dispatcher owns it. */
  readonly connection: Redis;
  readonly queueName: string;
  readonly prefix: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Most BullMQ jobs fetched in one round trip (further capped by the worker's free slots). */
  readonly concurrency: number;
  /** Ask again after this long when the job's row was locked by another writer. */
  readonly busyRetryMs?: number;
}

/** Pause after a failed fetch (Redis unavailable); doubles per consecutive failure up to 1 s. */
const FETCH_RETRY_MS = 50;
/** Fetches of a non-blocking round at least (see fetchLoop). */
const MIN_FETCH = 2;

/**
 * Dispatch mode `bullmq`, worker side. A BullMQ job means "claim Upshift job X (attempt n)".
 * The dispatcher fetches BullMQ jobs itself (BullMQ's manual processing) while the worker has
 * free slots: one blocking wait while the queue is drained, then rounds of fetches sent back to
 * back (see fetchLoop). Each is claimed by id in PostgreSQL (`JobStore.claimJobsById`: the
 * compare-and-set queued → running with a lease, in the store's group commit, so the claims of
 * one turn share a transaction with its completions) and then acknowledged in BullMQ: from the claim on, the job's
 * lease in PostgreSQL is what keeps it, not the BullMQ job. If the job is not claimable any
 * more (claimed elsewhere, canceled, finished) the BullMQ job is acknowledged and dropped; if
 * it is not due yet, its row is locked by another writer, or its analyzer has no free slot
 * here, it is put back as delayed. While a slot is free the acknowledgement also fetches the
 * next waiting job (BullMQ's moveToFinished takes it in the same script, as BullMQ's own
 * processor loop does): under a backlog a job costs one script run for its fetch and
 * acknowledgement together instead of two.
 *
 * Why not BullMQ's processor loop: it fetches one job per Redis round trip, and a processor
 * that holds its job while the attempt runs keeps BullMQ's slot busy until the outcome is
 * written. Under load the round trip is milliseconds, so jobs queued up in BullMQ even
 * while slots were free (docs/scale-mode.md, "Latency of BullMQ dispatch").
 *
 * A worker that dies between fetching and acknowledging leaves the BullMQ job active with a
 * lock nobody renews; BullMQ's stalled-job check (any worker of the queue runs it) puts it
 * back, and another worker claims it — or finds it claimed and drops it. A worker that dies
 * after the claim leaves the job leased in PostgreSQL, where lease recovery requeues it (a
 * new outbox row, so a new BullMQ job).
 */
export class BullmqDispatcher implements Dispatcher {
  readonly kind = 'bullmq';
  private worker: DispatchWorker | null = null;
  private sink: DispatchSink | null = null;
  private loop: Promise<void> | null = null;
  private stopping = false;
  /** BullMQ jobs fetched and not yet handed to the sink (they count against its free slots). */
  private claiming = 0;
  /** Settles when every fetched job has been dealt with (stop waits for it). */
  private readonly inFlight = new Set<Promise<void>>();
  private wake: (() => void) | null = null;
  private readonly tokenPrefix = randomBytes(6).toString('hex');
  private tokenSeq = 0;
  private corked = false;

  constructor(private readonly o: BullmqDispatcherOptions) {}

  start(sink: DispatchSink): void {
    if (this.worker) return;
    this.sink = sink;
    // No processor: jobs are fetched by fetchLoop (autorun off), so BullMQ runs no loop of its own.
    this.worker = new DispatchWorker(this.o.queueName, null, {
      connection: this.o.connection,
      prefix: this.o.prefix,
      autorun: false,
      // A fetched job is held only until its claim commits; the lock outlives any claim that
      // does not fail (a failing one puts the job back as delayed).
      lockDuration: 30_000,
      maxStalledCount: 1_000_000,
    });
    this.worker.on('error', (e) => this.o.logger.warn({ err: coerceError(e) }, 'BullMQ worker error (Redis unavailable?)'));
    void this.worker.startStalledCheckTimer().catch((e: unknown) => this.o.logger.warn({ err: coerceError(e) }, 'BullMQ stalled-job check did not start'));
    this.loop = this.fetchLoop(this.worker, sink);
  }

  /** A slot was freed (or a job queued): fetch again if the loop waits for slots. */
  poke(): void {
    this.wake?.();
  }

  async stop(): Promise<void> {
    // Fetch nothing new; claims in flight finish (their jobs go to the sink or back to BullMQ).
    this.stopping = true;
    this.wake?.();
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
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
    this.stopping = true;
    this.wake?.();
    // Closing the worker ends a blocking fetch in flight (its connection is BullMQ's own).
    await this.worker?.close().catch(() => undefined);
    await this.loop;
    await this.stop();
    this.worker = null;
    this.o.connection.disconnect();
  }

  /** Free slots of the sink not yet spoken for by fetched jobs. */
  private free(sink: DispatchSink): number {
    const slots = sink.capacity().reduce((n, g) => n + g.slots, 0);
    return Math.max(0, Math.min(slots, this.o.concurrency) - this.claiming);
  }

  private async fetchLoop(worker: DispatchWorker, sink: DispatchSink): Promise<void> {
    // One blocking fetch at a time (BullMQ wakes it when a job is added; it returns at once
    // while jobs wait). When it brought a job, one LLEN of the wait list says whether more are
    // waiting; if so, non-blocking fetches sent back to back (as many as wait, at most the free
    // slots), and after a round that came back full twice as many as it brought, so a backlog
    // is taken in a few round trips. A round that came back short goes back to blocking: the
    // queue is drained, and every empty fetch is a script run in Redis and a reply to parse
    // here. Measured at 500 jobs/s (bench pg, BENCH_HOPS=1): going back to blocking only after
    // an empty round cost 3.4 fetches per job; a round of 2 after every blocking fetch 2.3
    // (session 16); with this LLEN check and fetch-on-acknowledge (ack) about 2.0, and EVALSHA
    // per job in all (add, fetches, acknowledgement) 5.3 → 4.4 (session 17, docs/scale-mode.md).
    let blocking = true;
    let batch = MIN_FETCH;
    let failures = 0;
    while (!this.stopping) {
      const free = this.free(sink);
      if (free === 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          if (this.stopping || this.free(sink) > 0) resolve();
        });
        this.wake = null;
        continue;
      }
      const n: number = blocking ? 1 : Math.min(free, batch);
      let jobs: Array<{ job: BullJob<DispatchJobData>; token: string }>;
      // Fetches in flight hold their slots, so acknowledgements fetching meanwhile (ack) do not
      // take the same free slots twice.
      this.claiming += n;
      try {
        if (n > 1) this.corkRedis();
        const fetched = await Promise.all(
          Array.from({ length: n }, async () => {
            const token = `${this.tokenPrefix}:${this.tokenSeq++}`;
            const job = (await worker.getNextJob(token, { block: blocking })) as BullJob<DispatchJobData> | undefined;
            return job ? { job, token } : null;
          }),
        );
        jobs = fetched.filter((j) => j !== null);
        failures = 0;
      } catch (e) {
        if (this.stopping) break;
        if (failures++ % 20 === 0) this.o.logger.warn({ err: coerceError(e) }, 'BullMQ fetch failed (Redis unavailable?); retrying');
        await new Promise((r) => setTimeout(r, Math.min(1_000, FETCH_RETRY_MS * 2 ** Math.min(failures, 5))));
        continue;
      } finally {
        this.claiming -= n;
      }
      for (const { job, token } of jobs) this.track(this.handle(job, token, sink));
      if (blocking && jobs.length > 0) {
        // The blocking fetch woke for a job: fetch more at once only if more are waiting. One
        // LLEN (a plain command) instead of a round of fetch scripts, which at moderate rates
        // mostly came back empty — and the acknowledgements fetch the next job anyway.
        const waiting = await this.waitingCount(worker);
        blocking = waiting === 0;
        batch = Math.max(MIN_FETCH, waiting);
      } else {
        blocking = jobs.length < n;
        batch = Math.max(MIN_FETCH, jobs.length * 2);
      }
    }
  }

  /** BullMQ jobs in the wait list (0 when Redis does not answer: the loop then blocks). */
  private async waitingCount(worker: DispatchWorker): Promise<number> {
    const key = worker.keys.wait;
    if (key === undefined) return 0;
    try {
      return await this.o.connection.llen(key);
    } catch {
      return 0;
    }
  }

  private track(p: Promise<void>): void {
    this.claiming++;
    const done = p.finally(() => {
      this.inFlight.delete(done);
    });
    this.inFlight.add(done);
  }

  /** Claims the job a BullMQ job names, then acknowledges it or puts it back. Never rejects. */
  private async handle(job: BullJob<DispatchJobData>, token: string, sink: DispatchSink): Promise<void> {
    let held = true;
    const handOver = (): void => {
      if (!held) return;
      held = false;
      this.claiming--;
      this.wake?.();
    };
    try {
      const { orgId, jobId, analyzer } = job.data;
      const now = this.o.clock.now();
      if (this.stopping || !sink.capacity().some((g) => g.analyzers.includes(analyzer) && g.slots > 0)) {
        // Full for this analyzer (or not registered here, or stopping): let another worker or a later slot take it.
        handOver();
        return await this.putBack(job, token, Date.now() + (this.stopping ? 0 : (this.o.busyRetryMs ?? 250)));
      }
      let r: ClaimByIdResult;
      try {
        const [one] = await this.o.store.claimJobsById({ jobs: [{ orgId: asOrgId(orgId), jobId: asJobId(jobId) }], workerId: sink.workerId, leaseMs: sink.leaseMs, now });
        r = one ?? { kind: 'gone' };
      } catch (e) {
        // PostgreSQL unavailable: keep the signal (dropping it would leave the job to the safety net).
        this.o.logger.warn({ err: coerceError(e), job_id: jobId }, 'claim by id failed; trying again shortly');
        handOver();
        return await this.putBack(job, token, Date.now() + 1_000);
      }
      switch (r.kind) {
        case 'claimed':
          // The slot is the sink's from here on (run() counts it before returning).
          void sink.run(r.job);
          handOver();
          return await this.ack(job, token, sink);
        case 'gone':
          handOver();
          return await this.ack(job, token, sink);
        case 'not_due':
          handOver();
          return await this.putBack(job, token, Date.now() + Math.max(1, r.runAt - now));
        case 'busy':
          handOver();
          return await this.putBack(job, token, Date.now() + (this.o.busyRetryMs ?? 250));
      }
    } catch (e) {
      // Redis failed on the acknowledgement: the stalled-job check puts the job back; its
      // claim (if any) stands, so the next fetch of it finds it claimed and drops it.
      this.o.logger.warn({ err: coerceError(e), bullmq_job: job.id }, 'BullMQ acknowledgement failed; the stalled-job check will return the job');
    } finally {
      handOver();
    }
  }

  /**
   * Done with the signal: removes the BullMQ job (removeOnComplete). While the sink has a free
   * slot not spoken for, the same script also takes the next waiting job, locked with this
   * token; it is handled like a fetched one (its slot is held from the request on).
   */
  private async ack(job: BullJob<DispatchJobData>, token: string, sink: DispatchSink): Promise<void> {
    this.corkRedis();
    const worker = this.worker;
    let reserved = worker !== null && !this.stopping && this.free(sink) > 0;
    if (reserved) this.claiming++;
    try {
      const reply = await job.moveToCompleted(null, token, reserved);
      if (!reserved || worker === null) return;
      const next = await worker.jobOfReply(reply, token);
      if (next === undefined) return;
      // track() takes the slot over (synchronously: no free slot is counted twice meanwhile).
      reserved = false;
      this.claiming--;
      this.track(this.handle(next, token, sink));
    } finally {
      if (reserved) {
        this.claiming--;
        this.wake?.();
      }
    }
  }

  private async putBack(job: BullJob<DispatchJobData>, token: string, at: number): Promise<void> {
    this.corkRedis();
    await job.moveToDelayed(at, token);
  }

  /**
   * The commands sent until the event loop's next check phase (a batch of fetches, the
   * acknowledgements of one claim batch) leave in one write instead of one syscall each, which
   * also wakes Redis once. Uses the connection's socket (ioredis' `stream`); no-op without one.
   */
  private corkRedis(): void {
    const stream = (this.o.connection as unknown as { stream?: { cork?: () => void; uncork?: () => void } }).stream;
    if (this.corked || typeof stream?.cork !== 'function' || typeof stream.uncork !== 'function') return;
    this.corked = true;
    stream.cork();
    setImmediate(() => {
      this.corked = false;
      stream.uncork?.();
    });
  }
}

/** BullMQ's worker, with the one protected step the dispatcher needs (see ack). */
class DispatchWorker extends Worker<DispatchJobData> {
  /**
   * The job an acknowledgement fetched: `reply` is moveToCompleted's answer with fetchNext
   * ([job data, job id, …], or empty when nothing was waiting), the job locked with `token`.
   */
  async jobOfReply(reply: unknown, token: string): Promise<BullJob<DispatchJobData> | undefined> {
    if (!Array.isArray(reply) || !reply[0]) return undefined;
    const [data, id] = reply as [JobJson, string];
    return (await this.nextJobFromJobData(data, id, token)) ?? undefined;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no reply within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}
