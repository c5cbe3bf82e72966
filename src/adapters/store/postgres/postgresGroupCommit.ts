import type pg from 'pg';
import { UpshiftError } from '../../../core/errors.js';
import type { JobEvent } from '../../../core/events.js';
import type { PgNames } from './postgresConnection.js';
import { isConnectionError, isRetryable, toStoreError } from './postgresErrors.js';
import type { PgSql } from './postgresSql.js';
import { Tx } from './postgresTx.js';

export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/**
 * A write operation. Ops with the same non-null `key` that are queued in one event-loop turn
 * run together in one `exec` call (multi-row statements). `exec` returns one outcome per
 * input; a failed outcome must have written nothing for that input (guards run first). If
 * `exec` throws, the transaction is dirty: the batch is rolled back and redone with one
 * savepoint per op.
 */
export interface Op<I, T> {
  readonly key: string | null;
  /**
   * `org:job` keys the op touches; null = unknown (claims, sweeps): nothing may overtake it.
   * Empty: the op locks no job row and appends no job event (deliveries, API keys, retention).
   */
  readonly jobs: readonly string[] | null;
  readonly input: I;
  readonly exec: (tx: Tx, inputs: readonly I[]) => Promise<Array<Outcome<T>>>;
  /**
   * True when `exec` on these inputs sends all its statements before its first await (one
   * statement, results only read back): the batch then sends it right behind the previous
   * group's statements instead of waiting for their results first (see PgGroupCommit.runOnce).
   */
  readonly pipelined?: (inputs: readonly I[]) => boolean;
}

export type CommitListener = (events: readonly JobEvent[]) => void;

interface Pending {
  readonly op: Op<unknown, unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

interface Group {
  readonly key: string | null;
  readonly items: Pending[];
}

class DirtyFailure extends Error {
  constructor(
    readonly group: number,
    readonly error: unknown,
  ) {
    super('an op failed after writing');
  }
}

const MAX_RETRIES = 4;

/** The op may lock job rows or append job events (so its batch takes the position lock). */
const touchesJobs = (op: Op<unknown, unknown>): boolean => op.jobs === null || op.jobs.length > 0;

/**
 * Group commit for PostgreSQL: every write queued during one event-loop turn runs in one
 * transaction (one WAL flush), ops of the same kind and org as multi-row statements. Up to
 * `maxConcurrent` batches are in flight on separate pooled connections; while they are busy
 * new ops accumulate, so batches grow with load. Promises settle and listeners fire only after
 * COMMIT. Serialization failures and deadlocks (40001, 40P01) redo the whole batch.
 *
 * Lock order: a batch with any op on jobs takes the commit-order position lock (see
 * Tx.appendEventsAndCommit) right after BEGIN, before any job row lock, and holds it to COMMIT
 * (it travels with the batch's first tenant switch: Tx.lockPositions).
 * Otherwise a batch could hold the position lock (taken mid-statement by the first statement
 * that appends events) while it waits for job rows that another batch — of this process or of
 * another one on the same schema — holds while waiting for the position lock: a deadlock, ~1 s
 * (deadlock_timeout) plus a redo each. With the lock first, only its holder can hold job row
 * locks among job-touching batches, so no such cycle exists. Batches without job ops
 * (deliveries, API keys, retention) take no job row locks and skip it.
 */
export class PgGroupCommit {
  private queue: Pending[] = [];
  private scheduled: NodeJS.Immediate | null = null;
  private active = 0;
  /** A batch with job ops is in flight (at most one at a time, see flush). */
  private jobBatchActive = false;
  private closed = false;
  private idle: Array<() => void> = [];

  constructor(
    private readonly pool: pg.Pool,
    private readonly names: PgNames,
    private readonly sql: PgSql,
    private readonly listeners: ReadonlySet<CommitListener>,
    private readonly opts: {
      maxConcurrent: number;
      maxOpsPerTx: number;
      onListenerError: (e: unknown) => void;
      inlineInApp: boolean;
      /** Called before a batch is redone after a serialization failure or deadlock (its error). */
      onBatchRetry?: (e: unknown) => void;
    },
  ) {}

  enqueue<I, T>(op: Op<I, T>): Promise<T> {
    if (this.closed) return Promise.reject(new UpshiftError('STORE_UNAVAILABLE', 'the PostgreSQL store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op: op as Op<unknown, unknown>, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Refuses new ops and waits until every queued and running batch has settled. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.queue.length > 0 || this.active > 0) {
      if (this.scheduled === null && this.active === 0) this.flush();
      await new Promise<void>((r) => this.idle.push(r));
    }
  }

  private schedule(): void {
    if (this.scheduled === null) this.scheduled = setImmediate(() => this.flush());
  }

  /**
   * One batch with job ops in flight at a time. Job-touching transactions are serialized by
   * the position lock from BEGIN through their WAL flush anyway, so a second one sent now
   * would only wait in PostgreSQL and then pay its own flush; held back here it collects every
   * job op that arrives meanwhile, and the flush is paid once for all of them. Batches without
   * job ops (deliveries, API keys, retention) still run beside it. Concurrent batches never
   * promised an order between each other's ops, so letting those overtake is no reordering.
   */
  private flush(): void {
    this.scheduled = null;
    while (this.queue.length > 0 && this.active < this.opts.maxConcurrent) {
      let batch: Pending[];
      if (this.jobBatchActive) {
        batch = this.queue.filter((p) => !touchesJobs(p.op)).slice(0, this.opts.maxOpsPerTx);
        if (batch.length === 0) break;
        const taken = new Set(batch);
        this.queue = this.queue.filter((p) => !taken.has(p));
      } else batch = this.queue.splice(0, this.opts.maxOpsPerTx);
      const jobs = batch.some((p) => touchesJobs(p.op));
      if (jobs) this.jobBatchActive = true;
      this.active++;
      void this.runBatch(batch).finally(() => {
        this.active--;
        if (jobs) this.jobBatchActive = false;
        if (this.queue.length > 0) this.schedule();
        for (const r of this.idle.splice(0)) r();
      });
    }
  }

  /**
   * Groups ops without reordering what matters: an op joins an earlier group of its key only if
   * no later group touches one of its jobs and no barrier (an op on unknown jobs) came after.
   */
  private group(batch: readonly Pending[]): Group[] {
    const groups: Group[] = [];
    const lastByKey = new Map<string, number>();
    const lastTouch = new Map<string, number>();
    let barrier = -1;
    for (const p of batch) {
      const { key, jobs } = p.op;
      let gi = -1;
      if (key !== null && jobs !== null) {
        const cand = lastByKey.get(key);
        if (cand !== undefined && cand > barrier && jobs.every((j) => (lastTouch.get(j) ?? -1) <= cand)) gi = cand;
      }
      if (gi < 0) {
        gi = groups.length;
        groups.push({ key, items: [] });
        if (key !== null) lastByKey.set(key, gi);
      }
      (groups[gi] as Group).items.push(p);
      if (jobs === null) barrier = gi;
      else for (const j of jobs) lastTouch.set(j, gi);
    }
    return groups;
  }

  private async runBatch(batch: Pending[]): Promise<void> {
    const groups = this.group(batch);
    let result: { outcomes: Map<Pending, Outcome<unknown>>; events: JobEvent[] } | undefined;
    let failure: unknown;
    for (let attempt = 0; attempt <= MAX_RETRIES && result === undefined; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (e) {
        failure = e;
        break;
      }
      let broken = false;
      try {
        try {
          result = await this.runOnce(client, groups, null);
        } catch (e) {
          if (!(e instanceof DirtyFailure) || isRetryable(e.error) || isConnectionError(e.error)) throw e instanceof DirtyFailure ? e.error : e;
          await client.query('ROLLBACK');
          result = await this.runOnce(client, groups, e);
        }
      } catch (e) {
        failure = e;
        broken = isConnectionError(e);
        if (!broken) await client.query('ROLLBACK').catch(() => (broken = true));
        if (!isRetryable(e)) {
          client.release(broken);
          break;
        }
        this.opts.onBatchRetry?.(e);
        await new Promise((r) => setTimeout(r, Math.random() * 5 * (attempt + 1)));
      }
      client.release(broken);
    }
    if (result === undefined) {
      const error = toStoreError(failure);
      for (const p of batch) p.reject(error);
      return;
    }
    for (const p of batch) {
      const o = result.outcomes.get(p);
      if (o?.ok) p.resolve(o.value);
      else p.reject(o ? toStoreError(o.error) : new UpshiftError('INTERNAL', 'op produced no outcome'));
    }
    if (result.events.length > 0) {
      for (const l of this.listeners) {
        try {
          l(result.events);
        } catch (e) {
          this.opts.onListenerError(e);
        }
      }
    }
  }

  /** BEGIN, every group, events, COMMIT. `failed` set: safe mode, one savepoint per op. */
  private async runOnce(client: pg.PoolClient, groups: readonly Group[], failed: DirtyFailure | null): Promise<{ outcomes: Map<Pending, Outcome<unknown>>; events: JobEvent[] }> {
    const tx = new Tx(client, this.names, this.sql, this.opts.inlineInApp);
    const outcomes = new Map<Pending, Outcome<unknown>>();
    tx.send('BEGIN');
    if (groups.some((g) => g.items.some((p) => touchesJobs(p.op)))) {
      tx.lockPositions();
    }
    // Groups in flight whose results were not read yet (consecutive pipelined groups).
    let inFlight: Array<{ gi: number; g: Group; outs: Promise<Array<Outcome<unknown>>> }> = [];
    const settle = async (): Promise<void> => {
      const run = inFlight;
      inFlight = [];
      const settled = await Promise.allSettled(run.map((r) => r.outs));
      // The first failure in statement order is the cause; later groups failed because the
      // transaction was aborted (they are redone in safe mode).
      settled.forEach((r, k) => {
        if (r.status === 'rejected') throw new DirtyFailure((run[k] as (typeof run)[number]).gi, r.reason);
      });
      settled.forEach((r, k) => {
        const outs = (r as PromiseFulfilledResult<Array<Outcome<unknown>>>).value;
        (run[k] as (typeof run)[number]).g.items.forEach((p, i) => outcomes.set(p, outs[i] ?? { ok: false, error: new UpshiftError('INTERNAL', 'missing outcome') }));
      });
    };
    for (let gi = 0; gi < groups.length; gi++) {
      const g = groups[gi] as Group;
      const { exec, pipelined } = (g.items[0] as Pending).op;
      if (failed === null) {
        // A group that reads results between its statements runs alone: everything before it
        // has answered, and it answers before anything after it is sent. Pipelined groups are
        // sent back to back, so a batch of submits, claims and completions holds the position
        // lock for its statements and COMMIT only, not for a client round trip per group.
        const inputs = g.items.map((p) => p.op.input);
        const alone = pipelined?.(inputs) !== true;
        if (alone) await settle();
        tx.mayCommitAfterLast = gi === groups.length - 1;
        const outs = exec(tx, inputs);
        outs.catch(() => undefined);
        inFlight.push({ gi, g, outs });
        if (alone) await settle();
        continue;
      }
      if (gi === failed.group && g.items.length === 1) {
        // Not run again: it keeps its error (and a callback inside it is not invoked twice).
        outcomes.set(g.items[0] as Pending, { ok: false, error: failed.error });
        continue;
      }
      for (const p of g.items) {
        const mark = tx.events.length;
        const markWritten = tx.written.length;
        await tx.exec('SAVEPOINT op');
        try {
          const [out] = await exec(tx, [p.op.input]);
          await tx.exec('RELEASE SAVEPOINT op');
          outcomes.set(p, out ?? { ok: false, error: new UpshiftError('INTERNAL', 'missing outcome') });
        } catch (e) {
          if (isConnectionError(e) || isRetryable(e)) throw e;
          tx.forget();
          await tx.exec('ROLLBACK TO SAVEPOINT op');
          await tx.exec('RELEASE SAVEPOINT op');
          tx.events.length = mark;
          tx.written.length = markWritten;
          outcomes.set(p, { ok: false, error: e });
        }
      }
    }
    await settle();
    let events: JobEvent[] = [];
    if (tx.committing && tx.events.length > 0) throw new UpshiftError('INTERNAL', 'events emitted after COMMIT was sent');
    if (tx.events.length > 0) events = await tx.appendEventsAndCommit();
    else await tx.commit();
    if (tx.written.length > 0) events = [...tx.written, ...events].sort((a, b) => a.position - b.position);
    return { outcomes, events };
  }
}
