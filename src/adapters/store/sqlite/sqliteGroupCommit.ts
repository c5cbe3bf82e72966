import type { Database, Statement } from 'better-sqlite3';
import { UpshiftError } from '../../../core/errors.js';
import type { JobEvent } from '../../../core/events.js';
import { toStoreError } from './sqliteErrors.js';

/**
 * A write operation: synchronous SQL against the open transaction. It appends the events it
 * wrote to `events` (in insert order, i.e. position order). It may throw to abort itself.
 */
export type WriteOp<T> = (events: JobEvent[]) => T;

/** What one op of a batch came to. Errors are already catalogue errors (toStoreError). */
export type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: UpshiftError };

export type CommitListener = (events: readonly JobEvent[]) => void;

/** An op failed after writing: the batch must be redone with a savepoint per op. */
class DirtyFailure extends Error {
  constructor(
    readonly index: number,
    readonly error: unknown,
  ) {
    super('an op failed after writing');
  }
}

/**
 * Runs a batch of write ops in ONE SQLite transaction (one WAL append) on the connection it
 * is given — the heart of group commit, shared by the in-thread writer (GroupCommit below) and
 * the writer thread (sqliteWriterThread.ts).
 *
 * One op's failure (JOB_LEASE_LOST, IDEMPOTENCY_CONFLICT, a constraint) fails only that op and
 * leaves no trace. Ops fail almost always before their first write (the guards run first), so
 * the fast path runs ops without savepoints and checks `total_changes()` when one throws:
 * unchanged means nothing to undo. If a failing op did write, the whole transaction is rolled
 * back and the batch is redone with a SAVEPOINT around every op. Ops are closures over their
 * command and re-read everything, so redoing them is safe; nothing was visible before COMMIT.
 */
export class BatchExecutor {
  private readonly begin: Statement<[]>;
  private readonly commit: Statement<[]>;
  private readonly rollback: Statement<[]>;
  private readonly savepoint: Statement<[]>;
  private readonly release: Statement<[]>;
  private readonly rollbackTo: Statement<[]>;
  private readonly totalChanges: Statement<[], number>;

  constructor(private readonly db: Database) {
    this.begin = db.prepare('BEGIN IMMEDIATE');
    this.commit = db.prepare('COMMIT');
    this.rollback = db.prepare('ROLLBACK');
    this.savepoint = db.prepare('SAVEPOINT op');
    this.release = db.prepare('RELEASE op');
    this.rollbackTo = db.prepare('ROLLBACK TO op');
    this.totalChanges = db.prepare<[], number>('SELECT total_changes()').pluck();
  }

  /**
   * Runs every op and commits. A fatal error (BEGIN/COMMIT failed, the connection broke)
   * rolls back and fails every op with it; `events` is then empty.
   */
  execute(ops: readonly WriteOp<unknown>[]): { outcomes: Outcome[]; events: JobEvent[] } {
    try {
      try {
        return this.runBatch(ops, false);
      } catch (e) {
        if (!(e instanceof DirtyFailure)) throw e;
        this.abort();
        // The op that failed is not run again: it keeps its error (and a user callback
        // inside it is not invoked twice for the same decision).
        return this.runBatch(ops, true, e);
      }
    } catch (e) {
      this.abort();
      const error = toStoreError(e);
      return { outcomes: ops.map(() => ({ ok: false, error })), events: [] };
    }
  }

  /** BEGIN, every op, COMMIT. Throws DirtyFailure (fast path only) or a fatal error. */
  private runBatch(ops: readonly WriteOp<unknown>[], safe: boolean, failed?: DirtyFailure): { outcomes: Outcome[]; events: JobEvent[] } {
    const events: JobEvent[] = [];
    const outcomes: Outcome[] = [];
    this.begin.run();
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i] as WriteOp<unknown>;
      if (i === failed?.index) {
        outcomes.push({ ok: false, error: toStoreError(failed.error) });
        continue;
      }
      const mark = events.length;
      if (safe) this.savepoint.run();
      const changes = safe ? 0 : this.totalChanges.get();
      try {
        const value = op(events);
        if (safe) this.release.run();
        outcomes.push({ ok: true, value });
      } catch (e) {
        // Some I/O errors make SQLite roll back the whole transaction: never go on in autocommit.
        if (!this.db.inTransaction) throw e;
        if (safe) {
          // A failure of the rollback itself aborts the whole batch (caught by execute).
          this.rollbackTo.run();
          this.release.run();
        } else if (this.totalChanges.get() !== changes) {
          throw new DirtyFailure(i, e);
        }
        events.length = mark;
        outcomes.push({ ok: false, error: toStoreError(e) });
      }
    }
    this.commit.run();
    return { outcomes, events };
  }

  private abort(): void {
    try {
      if (this.db.inTransaction) this.rollback.run();
    } catch {
      // The connection is unusable; every op of the batch is failed anyway.
    }
  }
}

interface Pending {
  readonly op: WriteOp<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Group commit on the calling thread: one SQLite transaction for every write queued during an
 * event-loop turn, instead of one per write. Promises settle and listeners fire only after
 * COMMIT, so "resolved" always means durable and listeners never see rolled-back events.
 */
export class GroupCommit {
  private queue: Pending[] = [];
  private scheduled: NodeJS.Immediate | null = null;
  private closed = false;
  private readonly executor: BatchExecutor;

  constructor(
    db: Database,
    private readonly listeners: ReadonlySet<CommitListener>,
    private readonly maxOpsPerTx = 1000,
    private readonly onListenerError: (e: unknown) => void = () => {},
  ) {
    this.executor = new BatchExecutor(db);
  }

  /** Queues `op` for the next group transaction; resolves after that transaction commits. */
  enqueue<T>(op: WriteOp<T>): Promise<T> {
    if (this.closed) return Promise.reject(new UpshiftError('STORE_UNAVAILABLE', 'the SQLite store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Runs every queued op now, then refuses new ones. */
  close(): void {
    this.closed = true;
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = null;
    while (this.queue.length > 0) this.flushOnce();
  }

  private schedule(): void {
    // setImmediate (not a microtask): lets every request that arrived in this loop turn
    // enqueue first, which is what makes the batch large under load.
    if (this.scheduled === null) this.scheduled = setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = null;
    this.flushOnce();
    // Cap reached: yield to the event loop before the next transaction.
    if (this.queue.length > 0) this.schedule();
  }

  private flushOnce(): void {
    const batch = this.queue.length <= this.maxOpsPerTx ? this.queue : this.queue.slice(0, this.maxOpsPerTx);
    this.queue = batch === this.queue ? [] : this.queue.slice(this.maxOpsPerTx);
    const run = this.executor.execute(batch.map((p) => p.op));
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i] as Pending;
      const o = run.outcomes[i] as Outcome;
      if (o.ok) p.resolve(o.value);
      else p.reject(o.error);
    }
    if (run.events.length > 0) notifyListeners(this.listeners, run.events, this.onListenerError);
  }
}

/** Calls every listener with the committed events; one listener's failure never stops the others. */
export function notifyListeners(listeners: ReadonlySet<CommitListener>, events: readonly JobEvent[], onError: (e: unknown) => void): void {
  for (const listener of listeners) {
    try {
      listener(events);
    } catch (e) {
      onError(e);
    }
  }
}
