import { createHash } from 'node:crypto';
import type pg from 'pg';
import { newToken } from '../../../core/ids.js';
import type { ClaimedJob } from '../../../core/job.js';
import { corkUntilNextTick, createPool, ident, resolveNames, withPooledTransaction, type PgNames } from '../../store/postgres/postgresConnection.js';
import { toStoreError } from '../../store/postgres/postgresErrors.js';
import { jobCols, toClaimedJob, type JobRow } from '../../store/postgres/postgresRows.js';

/** One dispatch request taken from the outbox (or found by the safety-net sweep). */
export interface DispatchRow {
  readonly orgId: string;
  readonly jobId: string;
  readonly attempt: number;
  readonly analyzer: string;
  readonly runAt: number;
}

export type ClaimByIdResult =
  | { readonly kind: 'claimed'; readonly job: ClaimedJob }
  /** Still queued but not due yet (a retry's backoff, or clocks disagree): ask again at runAt. */
  | { readonly kind: 'not_due'; readonly runAt: number }
  /** Queued and due, but its row was locked by another writer: ask again shortly. */
  | { readonly kind: 'busy' }
  /** Not queued any more (claimed elsewhere, canceled, finished) or unknown: drop the signal. */
  | { readonly kind: 'gone' };

export interface ClaimByIdRequest {
  readonly orgId: string;
  readonly jobId: string;
  readonly workerId: string;
  readonly leaseMs: number;
  readonly now: number;
}

const TRIGGER = 'job_events_dispatch_outbox';

/**
 * The PostgreSQL side of BullMQ dispatch, on its own small pool: the outbox (take, enable),
 * the safety-net scan, and claims by job id. A claim by id is the same compare-and-set as the
 * store's claim (status queued → running, fresh lease token, `job.started` event under the
 * position lock, NOTIFY) restricted to the named jobs; the event feed picks its event up like
 * any other commit. Claims arriving in the same tick share one statement.
 */
export class PostgresDispatchStore {
  private readonly names: PgNames;
  private readonly pool: pg.Pool;
  private readonly s: string;
  private pending: Array<{ req: ClaimByIdRequest; resolve: (r: ClaimByIdResult) => void; reject: (e: unknown) => void }> = [];
  private flushScheduled = false;
  /** The claim statement, prepared once per connection (named per schema, like the store's). */
  private readonly claim: { readonly name: string; readonly text: string };

  constructor(opts: { url: string; schema?: string; appRole?: string; internalRole?: string; poolSize?: number }) {
    this.names = resolveNames(opts);
    this.s = ident(this.names.schema);
    this.pool = createPool(opts.url, Math.max(2, opts.poolSize ?? 4), 'upshift-dispatch');
    this.pool.on('error', () => undefined);
    const tag = createHash('sha256').update(this.names.schema).digest('hex').slice(0, 12);
    this.claim = { name: `ups_${tag}_dispatch_claim`, text: this.claimSql() };
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


  /**
   * One statement in its own transaction as the internal role: BEGIN, role, statement and COMMIT
   * pipelined. `positionLockFirst`: the statement touches jobs, so it follows the store's lock
   * order (PgGroupCommit): the commit-order position lock is taken right after BEGIN, before any
   * job row lock, with the same transaction-local planner settings (key probes only).
   */
  async internalStatement<R extends pg.QueryResultRow>(statement: string | { readonly name: string; readonly text: string }, values: unknown[], positionLockFirst = false): Promise<R[]> {
    return withPooledTransaction(this.pool, async (c) => {
      const text = typeof statement === 'string' ? statement : statement.text;
      // The whole transaction leaves in one write.
      corkUntilNextTick(c);
      const setup = [
        c.query('BEGIN'),
        c.query(`SELECT set_config('role', $1, true), set_config('upshift.org_id', '', true)`, [this.names.internalRole]),
        ...(positionLockFirst
          ? [c.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0)), set_config('enable_seqscan', 'off', true), set_config('enable_mergejoin', 'off', true)`, [`upshift.positions.${this.names.schema}`])]
          : []),
      ];
      const main = c.query<R>(typeof statement === 'string' ? { text, values } : { name: statement.name, text, values });
      const commit = c.query('COMMIT');
      for (const p of [...setup, main, commit]) p.catch(() => undefined);
      await Promise.all(setup);
      const rows = (await main).rows;
      if ((await commit).command !== 'COMMIT') throw new Error('the dispatch transaction was rolled back');
      return rows;
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
   * A crash or a failing publish leaves them for the next round (at-least-once). The deletion
   * commits without waiting for its WAL flush: a crash of PostgreSQL may bring rows back that
   * were published, and publishing them again is harmless (same BullMQ job ids; a signal for a
   * job that is not queued any more claims nothing). The next round does not wait for a flush.
   */
  async drainOutbox(limit: number, publish: (rows: DispatchRow[]) => Promise<void>): Promise<number> {
    return this.internalTx(async (c) => {
      const r = await c.query<{ org_id: string; job_id: string; attempt: number; analyzer: string; run_at: number }>(
        `DELETE FROM ${this.s}.dispatch_outbox WHERE id IN (
           SELECT id FROM ${this.s}.dispatch_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING org_id, job_id, attempt, analyzer, run_at`,
        [limit],
      );
      if (r.rows.length > 0) await publish(r.rows.map(toDispatchRow));
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

  /**
   * Claims one job by id. Never throws for a lost race. The claims asked for in one event-loop
   * turn (those of one fetch round of the BullMQ dispatcher) share one statement, one
   * position-lock hold and one WAL flush. Turns do not wait for each other's transactions: a
   * cap of two in flight (batches growing while they wait) made claims slower under load —
   * they waited for a Node round trip after each commit instead of queueing at the server.
   */
  claimById(req: ClaimByIdRequest): Promise<ClaimByIdResult> {
    return new Promise((resolve, reject) => {
      this.pending.push({ req, resolve, reject });
      this.scheduleClaims();
    });
  }

  private scheduleClaims(): void {
    if (this.flushScheduled || this.pending.length === 0) return;
    this.flushScheduled = true;
    // The rest of this turn's claims join the batch.
    setImmediate(() => {
      this.flushScheduled = false;
      const batch = this.pending;
      this.pending = [];
      void this.claimBatch(batch);
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

  private async claimBatch(batch: Array<{ req: ClaimByIdRequest; resolve: (r: ClaimByIdResult) => void; reject: (e: unknown) => void }>): Promise<void> {
    // One statement per (worker, lease) pair; in practice one per process.
    const groups = new Map<string, typeof batch>();
    for (const b of batch) {
      const k = `${b.req.workerId}\u0000${b.req.leaseMs}`;
      groups.set(k, [...(groups.get(k) ?? []), b]);
    }
    for (const group of groups.values()) {
      try {
        const { claimed, rest } = await this.claimGroup(group.map((g) => g.req));
        group.forEach((g, i) => {
          const job = claimed[i];
          if (job) g.resolve({ kind: 'claimed', job });
        });
        // What became of the others is read outside the claim window (the next batch need not wait).
        if (rest) void rest.then((results) => group.forEach((g, i) => results[i] && g.resolve(results[i])), (e: unknown) => group.forEach((g) => g.reject(e)));
      } catch (e) {
        for (const g of group) g.reject(e);
      }
    }
  }

  /** The claim statement; for the jobs it did not claim, `rest` reads why (null: all claimed). */
  private async claimGroup(reqs: ClaimByIdRequest[]): Promise<{ claimed: Array<ClaimedJob | undefined>; rest: Promise<Array<ClaimByIdResult | undefined>> | null }> {
    const first = reqs[0] as ClaimByIdRequest;
    const now = Math.max(...reqs.map((r) => r.now));
    const orgs = reqs.map((r) => r.orgId);
    const ids = reqs.map((r) => r.jobId);
    // The claim takes the global position lock first (the store's lock order: no job row lock
    // is held while waiting for it) and holds it until COMMIT, which is pipelined right behind the
    // statement (one round trip); the state of the jobs it could not claim is read afterwards,
    // outside that transaction.
    const rows = await this.internalStatement<JobRow & { event_position: number }>(
      this.claim,
      [orgs, ids, now, newToken('lse_'), now + first.leaseMs, first.workerId, `upshift.positions.${this.names.schema}`, this.names.channel],
      true,
    );
    const byKey = new Map(rows.map((r) => [`${r.org_id}:${r.job_id}`, toClaimedJob(r)]));
    const claimed = reqs.map((r) => byKey.get(`${r.orgId}:${r.jobId}`));
    const missing = reqs.filter((_, i) => claimed[i] === undefined);
    if (missing.length === 0) return { claimed, rest: null };
    const rest = this.internalStatement<{ org_id: string; job_id: string; status: string; run_at: number }>(
      `SELECT j.org_id, j.job_id, j.status, j.run_at FROM ${this.s}.jobs j
       JOIN unnest($1::text[], $2::text[]) AS r(org_id, job_id) ON j.org_id = r.org_id AND j.job_id = r.job_id`,
      [missing.map((m) => m.orgId), missing.map((m) => m.jobId)],
    ).then((st) => {
      const states = new Map(st.map((r) => [`${r.org_id}:${r.job_id}`, r]));
      return reqs.map((r, i): ClaimByIdResult | undefined => {
        if (claimed[i]) return undefined;
        const s = states.get(`${r.orgId}:${r.jobId}`);
        if (!s || s.status !== 'queued') return { kind: 'gone' };
        return s.run_at > now ? { kind: 'not_due', runAt: s.run_at } : { kind: 'busy' };
      });
    });
    return { claimed, rest };
  }

  /**
   * The store's claim statement (postgresSql.ts `claim`) restricted to the named jobs: rows
   * locked by another writer are skipped (reported `busy` by the caller, asked again later).
   * Each named job is one primary-key probe: the status guard is spelled so it does not match
   * the partial jobs_claim index, which a planner without statistics would otherwise scan
   * whole (every queued job) per batch (docs/postgres.md, "Plans that do not depend on statistics").
   */
  private claimSql(): string {
    const s = this.s;
    return `WITH picked AS (
        SELECT j.org_id, j.job_id FROM ${s}.jobs j
        JOIN unnest($1::text[], $2::text[]) AS r(org_id, job_id) ON j.org_id = r.org_id AND j.job_id = r.job_id
        WHERE (j.status || '') = 'queued' AND j.run_at <= $3
        ORDER BY j.org_id, j.job_id
        FOR UPDATE OF j SKIP LOCKED),
      u AS (
        UPDATE ${s}.jobs j SET status = 'running', lease_token = $4 || '.' || substr(j.job_id, 5), lease_expires_at = $5,
          worker_id = $6, started_at = $3, last_event_seq = j.last_event_seq + 1
        FROM picked WHERE j.org_id = picked.org_id AND j.job_id = picked.job_id
        RETURNING ${jobCols('j')}),
      lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(hashtextextended($7, 0)) AS held),
      ev AS (
        INSERT INTO ${s}.job_events (job_id, event_seq, org_id, type, status, payload, occurred_at)
        SELECT u.job_id, u.last_event_seq, u.org_id, 'job.started', 'running',
          json_build_object('attempt', u.attempt, 'worker_id', $6::text), $3::bigint
        FROM u CROSS JOIN lock
        RETURNING job_id, position),
      note AS (SELECT pg_notify($8, MAX(position)::text) AS sent FROM ev HAVING COUNT(*) > 0)
      SELECT ${jobCols('u')}, ev.position AS event_position FROM u JOIN ev ON ev.job_id = u.job_id CROSS JOIN note`;
  }
}

function toDispatchRow(r: { org_id: string; job_id: string; attempt: number; analyzer: string; run_at: number }): DispatchRow {
  return { orgId: r.org_id, jobId: r.job_id, attempt: r.attempt, analyzer: r.analyzer, runAt: Number(r.run_at) };
}
