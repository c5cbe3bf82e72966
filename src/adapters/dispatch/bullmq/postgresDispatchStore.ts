import type pg from 'pg';
import { corkUntilNextTick, createPool, ident, resolveNames, withPooledTransaction, type PgNames } from '../../store/postgres/postgresConnection.js';
import { toStoreError } from '../../store/postgres/postgresErrors.js';

/** One dispatch request taken from the outbox (or found by the safety-net sweep). */
export interface DispatchRow {
  readonly orgId: string;
  readonly jobId: string;
  readonly attempt: number;
  readonly analyzer: string;
  readonly runAt: number;
}

/** An outbox row as the relay takes it: `queued` = its job is still queued for that attempt. */
export interface OutboxRow extends DispatchRow {
  readonly queued: boolean;
}

const TRIGGER = 'job_events_dispatch_outbox';

/**
 * The PostgreSQL side of BullMQ dispatch, on its own small pool: the outbox (take, enable) and
 * the safety-net scan. Claims by id are the job store's (`claimJobsById`): they join its group
 * commit, so a claim shares the transaction — and the position-lock hold and WAL flush — of
 * the completions and submits of the same turn instead of queueing for the lock on its own.
 */
export class PostgresDispatchStore {
  private readonly names: PgNames;
  private readonly pool: pg.Pool;
  private readonly s: string;

  constructor(opts: { url: string; schema?: string; appRole?: string; internalRole?: string; poolSize?: number }) {
    this.names = resolveNames(opts);
    this.s = ident(this.names.schema);
    this.pool = createPool(opts.url, Math.max(2, opts.poolSize ?? 4), 'upshift-dispatch');
    this.pool.on('error', () => undefined);
  }

  get schema(): string {
    return this.names.schema;
  }

  /**
   * Runs `fn` in a transaction as the internal role (cross-tenant); rolls back if it throws.
   * `asyncCommit`: COMMIT does not wait for the WAL flush (synchronous_commit off for this
   * transaction only) — for writes that a crash may undo without harm.
   */
  async internalTx<T>(fn: (c: pg.PoolClient) => Promise<T>, asyncCommit = false): Promise<T> {
    return withPooledTransaction(this.pool, async (c) => {
      // Pipelined (the pool runs pg in pipeline mode): BEGIN and the role switch cost no round
      // trip of their own, and leave with fn's first statement in one write; a failure of
      // either surfaces at the first awaited statement.
      corkUntilNextTick(c);
      const setup = Promise.all([
        c.query('BEGIN'),
        // Only ever lowered here: the server's own setting (on, remote_apply, …) stays otherwise.
        c.query(`SELECT set_config('role', $1, true), set_config('upshift.org_id', '', true)${asyncCommit ? `, set_config('synchronous_commit', 'off', true)` : ''}`, [this.names.internalRole]),
      ]);
      setup.catch(() => undefined);
      const out = await fn(c);
      await setup;
      await c.query('COMMIT');
      return out;
    });
  }

  /** Turns outbox capture on (BullMQ mode) or off (store mode). Table owner only; idempotent. */
  async setOutboxCapture(on: boolean): Promise<boolean> {
    try {
      const r = await this.pool.query<{ tgenabled: string }>(
        `SELECT t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = 'job_events' AND t.tgname = $2`,
        [this.names.schema, TRIGGER],
      );
      const enabled = r.rows[0] !== undefined && r.rows[0].tgenabled !== 'D';
      if (enabled === on) return false;
      // ALTER TABLE takes a short exclusive lock; only when the state really changes.
      await this.pool.query(`ALTER TABLE ${this.s}.job_events ${on ? 'ENABLE' : 'DISABLE'} TRIGGER ${TRIGGER}`);
      return true;
    } catch (e) {
      throw toStoreError(e);
    }
  }

  /**
   * Takes up to `limit` outbox rows (oldest first, SKIP LOCKED so relays in several processes
   * take disjoint rows) and deletes them only if `publish` resolves — in the same transaction.
   * Rows of a first attempt are taken only once they are `firstAttemptBefore` old (epoch ms):
   * the submitting process publishes those itself after its commit, the relay is their
   * fallback. Each row says whether its job is still queued for that attempt (`queued`), so rows
   * of jobs that moved on are dropped without a message.
   * A crash or a failing publish leaves them for the next round (at-least-once). The deletion
   * commits without waiting for its WAL flush: a crash of PostgreSQL may bring rows back that
   * were published, and publishing them again is harmless (same BullMQ job ids; a signal for a
   * job that is not queued any more claims nothing). The next round does not wait for a flush.
   */
  async drainOutbox(limit: number, firstAttemptBefore: number, publish: (rows: OutboxRow[]) => Promise<void>): Promise<number> {
    return this.internalTx(async (c) => {
      const r = await c.query<{ org_id: string; job_id: string; attempt: number; analyzer: string; run_at: number; queued: boolean }>(
        // Plan shape on purpose: the taken ids as an array (the delete probes the primary key
        // instead of hash-joining a scan of the whole outbox), and the job status as a scalar
        // subquery per row (an EXISTS here may be planned as a hash over every queued job).
        `DELETE FROM ${this.s}.dispatch_outbox o WHERE o.id = ANY (ARRAY(
           SELECT id FROM ${this.s}.dispatch_outbox WHERE attempt > 1 OR created_at <= $2 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED))
         RETURNING o.org_id, o.job_id, o.attempt, o.analyzer, o.run_at,
           COALESCE((SELECT j.status = 'queued' AND j.attempt = o.attempt FROM ${this.s}.jobs j
                     WHERE j.org_id = o.org_id AND j.job_id = o.job_id), false) AS queued`,
        [limit, firstAttemptBefore],
      );
      if (r.rows.length > 0) await publish(r.rows.map((row) => ({ ...toDispatchRow(row), queued: row.queued })));
      return r.rows.length;
    }, true);
  }

  /** Rows waiting in the outbox (metrics, tests). */
  async outboxSize(): Promise<number> {
    return this.internalTx(async (c) => Number((await c.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${this.s}.dispatch_outbox`)).rows[0]?.n ?? 0));
  }

  /**
   * Queued jobs due before `dueBefore`, in key order after `after` (a cursor across calls),
   * handed to `publish`: the safety net re-dispatches them in case their queue entry was lost.
   * Under a transaction-level try-lock, so one process sweeps at a time; null = another does.
   */
  async scanQueued(
    dueBefore: number,
    after: { orgId: string; jobId: string } | null,
    limit: number,
    publish: (rows: DispatchRow[]) => Promise<void>,
  ): Promise<DispatchRow[] | null> {
    return this.internalTx(async (c) => {
      // One sweeper per deployment at a time: the others skip this round (null).
      const lock = await c.query<{ ok: boolean }>(`SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS ok`, [`upshift.dispatch-sweep.${this.names.schema}`]);
      if (!lock.rows[0]?.ok) return null;
      const r = await c.query<{ org_id: string; job_id: string; attempt: number; analyzer: string; run_at: number }>(
        `SELECT org_id, job_id, attempt, analyzer, run_at FROM ${this.s}.jobs
         WHERE status = 'queued' AND run_at < $1 AND (org_id, job_id) > ($2, $3)
         ORDER BY org_id, job_id LIMIT $4`,
        [dueBefore, after?.orgId ?? '', after?.jobId ?? '', limit],
      );
      const rows = r.rows.map(toDispatchRow);
      if (rows.length > 0) await publish(rows);
      return rows;
    });
  }

  async ping(): Promise<void> {
    try {
      await this.pool.query('SELECT 1');
    } catch (e) {
      throw toStoreError(e);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

function toDispatchRow(r: { org_id: string; job_id: string; attempt: number; analyzer: string; run_at: number }): DispatchRow {
  return { orgId: r.org_id, jobId: r.job_id, attempt: r.attempt, analyzer: r.analyzer, runAt: Number(r.run_at) };
}
