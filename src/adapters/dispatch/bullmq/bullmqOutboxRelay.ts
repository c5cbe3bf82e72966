import type { Queue } from 'bullmq';
import { UpshiftError, coerceError } from '../../../core/errors.js';
import { WakeableLoop } from '../../../app/wakeableLoop.js';
import type { Clock } from '../../../ports/clock.js';
import type { DispatchRelay } from '../../../ports/dispatcher.js';
import type { Logger } from '../../../ports/logger.js';
import type { JobEvent } from '../../../core/events.js';
import type { DispatchRow, OutboxRow, PostgresDispatchStore } from './postgresDispatchStore.js';

/** The payload of a BullMQ dispatch job: "claim this Upshift job (attempt) if you can". */
export interface DispatchJobData {
  readonly orgId: string;
  readonly jobId: string;
  readonly attempt: number;
  readonly analyzer: string;
}

export interface OutboxRelayOptions {
  readonly store: PostgresDispatchStore;
  readonly queue: Queue<DispatchJobData>;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Fallback poll of the outbox (relays are poked by the event feed). */
  readonly pollMs: number;
  /** Rows per relay transaction (and per direct publish). */
  readonly batchSize: number;
  /**
   * First-attempt rows younger than this stay in the outbox for the process that committed
   * them (it publishes them itself, `publishCommitted`); older ones the relay takes.
   */
  readonly graceMs: number;
  /** How often the safety net re-dispatches queued jobs; 0 = never. */
  readonly sweepMs: number;
  /** A queued job must have been due this long before the safety net re-dispatches it. */
  readonly sweepGraceMs: number;
  /** Redis commands of one relay batch must finish within this, or the batch is rolled back. */
  readonly publishTimeoutMs: number;
  /** False while the Redis connection is down: the batch fails at once instead of queueing. */
  readonly connected?: () => boolean;
  /** Which of these BullMQ job ids exist (any state). Without it the safety net re-adds all rows. */
  readonly exists?: (ids: readonly string[]) => Promise<boolean[]>;
}

/**
 * The BullMQ job id of a dispatch request. Job id + attempt: a replayed outbox row (relay
 * crashed after publishing, before deleting) or a safety-net re-dispatch is de-duplicated by
 * BullMQ while the first entry still exists, and a later requeue of the same job (next
 * attempt) is never swallowed by an entry of the previous one. BullMQ forbids ':' in ids.
 */
export const dispatchJobId = (r: { jobId: string; attempt: number }): string => `${r.jobId}.${r.attempt}`;

/**
 * Moves committed dispatch requests to BullMQ, on two paths:
 *
 * - **Direct** (the fast path): the process whose transaction queued a job for its first
 *   attempt publishes it right after the commit (`publishCommitted`, from the store's commit
 *   hook), without a PostgreSQL round trip. The outbox row stays behind as the fallback.
 * - **Relay**: rows of later attempts (retries, lease recoveries) at once, and first-attempt
 *   rows once they are `graceMs` old — those the direct path already published unless the
 *   committing process died or Redis was down. Each batch is one transaction: rows are deleted
 *   only if BullMQ accepted them, so a job committed while Redis is down waits in the outbox and
 *   is dispatched once Redis is back (at-least-once; duplicates are harmless because a worker
 *   only claims a job that is still queued). Rows whose job is no longer queued for that attempt
 *   are deleted without a message; aged first-attempt rows are re-published only if BullMQ does
 *   not hold them (one pipelined EXISTS per batch).
 *
 * Rows of one batch are interleaved by org before publishing, so one tenant's burst does not
 * queue in front of everyone else's jobs committed at the same time.
 *
 * The safety net: every `sweepMs`, queued jobs that have been due for `sweepGraceMs` are
 * published again (same BullMQ ids, so jobs still waiting in BullMQ are not duplicated). This
 * recovers entries lost by Redis (a restart without persistence, an eviction).
 */
export class BullmqOutboxRelay implements DispatchRelay {
  private readonly relay: WakeableLoop;
  private readonly sweeper: WakeableLoop;
  private cursor: { orgId: string; jobId: string } | null = null;
  private started = false;
  private stopped = false;

  constructor(private readonly o: OutboxRelayOptions) {
    // Retries at most every second while Redis or PostgreSQL is down: after an outage the
    // outbox drains within a second of the service's return.
    this.relay = new WakeableLoop(() => this.relayRound(), o.pollMs, (e) => o.logger.warn({ err: coerceError(e) }, 'dispatch relay: cannot move the outbox to BullMQ; retrying'), 1_000);
    this.sweeper = new WakeableLoop(() => this.sweepRound(), Math.max(1, o.sweepMs), (e) => o.logger.warn({ err: coerceError(e) }, 'dispatch safety net failed; retrying'));
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.relay.start();
    if (this.o.sweepMs > 0) this.sweeper.start();
  }

  poke(): void {
    this.relay.poke();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([this.relay.stop(), this.sweeper.stop()]);
  }

  /**
   * The direct path: publishes the first-attempt dispatch requests among `events` (committed
   * by this process) without waiting for the relay. Best effort — the outbox rows stay and the
   * relay publishes them after `graceMs` if this fails (Redis down, process killed).
   */
  publishCommitted(events: readonly JobEvent[]): void {
    let rows: DispatchRow[] | null = null;
    for (const e of events) {
      if (e.type !== 'job.queued') continue;
      const p = e.payload as { analyzer?: unknown; run_at?: unknown };
      if (typeof p.analyzer !== 'string' || typeof p.run_at !== 'number') continue;
      (rows ??= []).push({ orgId: e.orgId, jobId: e.jobId, attempt: 1, analyzer: p.analyzer, runAt: p.run_at });
    }
    // Also before start(): commits of a process whose loops have not started yet (jobs submitted
    // before the worker starts) are published too; the queue connects at construction.
    if (rows === null || this.stopped || (this.o.connected && !this.o.connected())) return;
    const ordered = interleaveByOrg(rows);
    for (let i = 0; i < ordered.length; i += this.o.batchSize) {
      this.publish(ordered.slice(i, i + this.o.batchSize)).catch((e: unknown) =>
        this.o.logger.debug({ err: coerceError(e) }, 'dispatch: direct publish failed; the relay publishes from the outbox'),
      );
    }
  }

  /** One relay transaction; true if the outbox may have more rows. */
  async relayRound(): Promise<boolean> {
    const n = await this.o.store.drainOutbox(this.o.batchSize, this.o.clock.now() - this.o.graceMs, (rows) => this.publishTaken(rows));
    return n >= this.o.batchSize;
  }

  /** Later attempts are published; aged first attempts only where BullMQ lost them (see above). */
  private async publishTaken(rows: readonly OutboxRow[]): Promise<void> {
    const retries = rows.filter((r) => r.queued && r.attempt > 1);
    const firsts = rows.filter((r) => r.queued && r.attempt === 1);
    if (retries.length > 0) await this.publish(interleaveByOrg(retries));
    // Mostly rows of a process that died or lost Redis before publishing; now and then a job
    // whose claim committed between the delete's snapshot and the EXISTS (it claims nothing).
    if (firsts.length > 0) {
      await this.publishMissing(interleaveByOrg(firsts), (count) => this.o.logger.info({ count }, 'dispatch relay: publishing first attempts BullMQ does not hold'));
    }
  }

  /** One page of the safety-net scan; true while there are more pages. */
  async sweepRound(): Promise<boolean> {
    const now = this.o.clock.now();
    const rows = await this.o.store.scanQueued(now - this.o.sweepGraceMs, this.cursor, this.o.batchSize, (r) =>
      this.publishMissing(r, (count) => this.o.logger.warn({ count }, 'dispatch safety net: queued jobs without a BullMQ entry; re-dispatching')),
    );
    if (rows === null) return false;
    const last = rows[rows.length - 1];
    this.cursor = rows.length < this.o.batchSize || !last ? null : { orgId: last.orgId, jobId: last.jobId };
    return this.cursor !== null;
  }

  /**
   * Publishes only the rows BullMQ does not hold (one pipelined EXISTS per batch), so a large
   * healthy backlog costs Redis reads, not hundreds of add scripts.
   */
  private async publishMissing(rows: readonly DispatchRow[], report: (count: number) => void): Promise<void> {
    const present = this.o.exists ? await this.o.exists(rows.map((r) => dispatchJobId(r))) : rows.map(() => false);
    const missing = rows.filter((_, i) => !present[i]);
    if (missing.length > 0) {
      report(missing.length);
      await this.publish(missing);
    }
  }

  private async publish(rows: readonly DispatchRow[]): Promise<void> {
    if (this.o.connected && !this.o.connected()) throw new UpshiftError('QUEUE_UNAVAILABLE', 'Redis is not connected; the outbox keeps the batch');
    const now = this.o.clock.now();
    const add = this.o.queue.addBulk(
      rows.map((r) => ({
        name: 'claim',
        data: { orgId: r.orgId, jobId: r.jobId, attempt: r.attempt, analyzer: r.analyzer },
        opts: { jobId: dispatchJobId(r), ...(r.runAt > now && { delay: r.runAt - now }), removeOnComplete: true, removeOnFail: true },
      })),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new UpshiftError('QUEUE_UNAVAILABLE', `BullMQ did not accept the batch within ${this.o.publishTimeoutMs} ms`)), this.o.publishTimeoutMs);
    });
    try {
      await Promise.race([add, timeout]);
    } catch (e) {
      add.catch(() => undefined);
      throw e instanceof UpshiftError ? e : new UpshiftError('QUEUE_UNAVAILABLE', `BullMQ rejected the batch: ${coerceError(e).message}`, { cause: e });
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Round robin over orgs, keeping each org's own order. */
export function interleaveByOrg<T extends { orgId: string }>(rows: readonly T[]): T[] {
  const byOrg = new Map<string, T[]>();
  for (const r of rows) {
    const list = byOrg.get(r.orgId);
    if (list) list.push(r);
    else byOrg.set(r.orgId, [r]);
  }
  if (byOrg.size <= 1) return [...rows];
  const out: T[] = [];
  const lists = [...byOrg.values()];
  for (let i = 0; out.length < rows.length; i++) for (const l of lists) if (i < l.length) out.push(l[i] as T);
  return out;
}
