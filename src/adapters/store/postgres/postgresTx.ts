import type pg from 'pg';
import { UpshiftError } from '../../../core/errors.js';
import type { JobEvent, JobEventType } from '../../../core/events.js';
import { asJobId, asOrgId } from '../../../core/ids.js';
import type { Json } from '../../../core/job.js';
import type { JobStatus } from '../../../core/jobState.js';
import { corkUntilNextTick, type PgNames } from './postgresConnection.js';
import type { PgSql } from './postgresSql.js';

/** An event written by an op; it gets its position when the batch appends its events. */
export interface PendingEvent {
  readonly jobId: string;
  readonly orgId: string;
  readonly eventSeq: number;
  readonly type: JobEventType;
  readonly status: JobStatus;
  readonly payload: Json;
  readonly occurredAt: number;
}

/**
 * One open transaction of the batch. The pool runs in pipeline mode, so statements whose
 * result nobody waits for (BEGIN, the role/org switch) are written to the wire at once and
 * cost no round trip of their own; if one of them fails, the next awaited statement reports
 * that root error instead of "current transaction is aborted". Tracks the role and org it runs
 * as, so consecutive statements of one tenant switch once.
 */
export class Tx {
  private role: 'app' | 'internal' | null = null;
  private org: string | null = null;
  private firstError: unknown = undefined;
  /** lockPositions() was called and the lock not sent yet. */
  private lockPending = false;
  readonly events: PendingEvent[] = [];
  /** Events a statement already inserted itself (with positions). */
  readonly written: JobEvent[] = [];
  /** Set by the batch for the last group: its final statement may pipeline COMMIT behind it. */
  mayCommitAfterLast = false;
  private commitSent: Promise<pg.QueryResult> | null = null;

  constructor(
    readonly client: pg.PoolClient,
    readonly names: PgNames,
    readonly sql: PgSql,
    /** `inAppDelivery: 'inline'`: terminal transitions also write their in-app notification. */
    readonly inlineInApp = false,
  ) {}

  /** Sends without waiting; a failure surfaces at the next awaited statement. */
  send(config: string | pg.QueryConfig): void {
    this.sendLock();
    this.post(config);
  }

  private post(config: string | pg.QueryConfig): void {
    corkUntilNextTick(this.client);
    this.client.query(config).catch((e: unknown) => {
      this.firstError ??= e;
    });
  }

  /**
   * The commit-order position lock (see appendEventsAndCommit and PgGroupCommit): taken before
   * anything else of the transaction runs. Pending until the next statement goes out; if that
   * is a tenant switch, both travel as one statement.
   */
  lockPositions(): void {
    this.lockPending = true;
  }

  private sendLock(): void {
    if (!this.lockPending) return;
    this.lockPending = false;
    this.post({ name: this.sql.names.positionLock, text: this.sql.positionLock, values: [this.positionArgs()[0]] });
  }

  /** Tenant-bound: SET LOCAL ROLE <app> + the org setting every RLS policy reads. */
  asTenant(org: string): void {
    if (this.role === 'app' && this.org === org) return;
    if (this.lockPending) {
      this.lockPending = false;
      this.post({ name: this.sql.names.positionLockAsTenant, text: this.sql.positionLockAsTenant, values: [this.positionArgs()[0], this.names.appRole, org] });
    } else this.post({ name: this.sql.names.setTenant, text: this.sql.setTenant, values: [this.names.appRole, org] });
    this.role = 'app';
    this.org = org;
  }

  /** Cross-tenant internals (lease recovery): SET LOCAL ROLE <internal>, no org. */
  asInternal(): void {
    if (this.role === 'internal') return;
    this.send({ name: this.sql.names.setInternal, text: this.sql.setInternal, values: [this.names.internalRole] });
    this.role = 'internal';
    this.org = null;
  }

  /**
   * Runs a statement and waits for its rows. `last`: the op issues nothing after it; if it is
   * the batch's last statement and no events are pending, COMMIT goes out right behind it.
   */
  async query<R extends pg.QueryResultRow>(name: keyof PgSql['names'], values: unknown[], last = false): Promise<R[]> {
    if (this.commitSent) throw new UpshiftError('INTERNAL', 'statement after COMMIT was sent');
    try {
      this.sendLock();
      corkUntilNextTick(this.client);
      const r = this.client.query<R>({ name: this.sql.names[name], text: this.sql[name], values });
      if (last && this.mayCommitAfterLast && this.events.length === 0) {
        this.commitSent = this.client.query('COMMIT');
        this.commitSent.catch(() => undefined);
      }
      return (await r).rows;
    } catch (e) {
      throw this.firstError ?? e;
    }
  }

  /** Arguments of statements that append events themselves: position lock key, channel. */
  positionArgs(): [string, string] {
    return [`upshift.positions.${this.names.schema}`, this.names.channel];
  }

  /** Whether COMMIT was already pipelined behind the last statement. */
  get committing(): boolean {
    return this.commitSent !== null;
  }

  /** Raw statement (savepoints); waits. */
  async exec(text: string): Promise<void> {
    try {
      this.sendLock();
      await this.client.query(text);
    } catch (e) {
      throw this.firstError ?? e;
    }
  }

  emit(e: PendingEvent): void {
    this.events.push(e);
  }

  /** After ROLLBACK TO SAVEPOINT the role and setting revert to unknown values. */
  forget(): void {
    this.role = null;
    this.org = null;
    this.firstError = undefined;
  }

  /**
   * Appends every event of the transaction and commits. Positions are assigned only here,
   * under a transaction-level advisory lock taken by the insert itself and held until COMMIT:
   * the transaction that gets position P is visible before any other can take the lock and
   * get P+1, so positions are commit order (see docs/postgres.md). The insert (per org, as the
   * application role, so RLS checks it too) and COMMIT are pipelined: the lock is held for
   * the insert plus the commit, with no client round trip in between.
   */
  async appendEventsAndCommit(): Promise<JobEvent[]> {
    const byOrg = new Map<string, PendingEvent[]>();
    for (const e of this.events) {
      const list = byOrg.get(e.orgId);
      if (list) list.push(e);
      else byOrg.set(e.orgId, [e]);
    }
    const inserts: Array<{ evs: PendingEvent[]; rows: Promise<pg.QueryResult<{ position: number; job_id: string; event_seq: number }>> }> = [];
    corkUntilNextTick(this.client);
    for (const [org, evs] of byOrg) {
      this.asTenant(org);
      const rows = this.client.query<{ position: number; job_id: string; event_seq: number }>({
        name: this.sql.names.insertEvents,
        text: this.sql.insertEvents,
        values: [
          evs.map((e) => e.jobId),
          evs.map((e) => e.eventSeq),
          evs.map((e) => e.orgId),
          evs.map((e) => e.type),
          evs.map((e) => e.status),
          evs.map((e) => JSON.stringify(e.payload) ?? 'null'),
          evs.map((e) => e.occurredAt),
          `upshift.positions.${this.names.schema}`,
          this.names.channel,
        ],
      });
      inserts.push({ evs, rows });
    }
    this.sendLock();
    const commit = this.client.query('COMMIT');
    const settled = await Promise.allSettled([...inserts.map((i) => i.rows), commit]);
    for (const r of settled) if (r.status === 'rejected') throw this.firstError ?? r.reason;
    // After a failed statement PostgreSQL answers COMMIT with ROLLBACK.
    const done = settled.at(-1) as PromiseFulfilledResult<pg.QueryResult>;
    if (this.firstError !== undefined || done.value.command !== 'COMMIT') throw this.firstError ?? new UpshiftError('STORE_UNAVAILABLE', 'the transaction was rolled back');
    const out: JobEvent[] = [];
    for (let k = 0; k < inserts.length; k++) {
      const { evs } = inserts[k] as (typeof inserts)[number];
      const res = (settled[k] as PromiseFulfilledResult<pg.QueryResult<{ position: number; job_id: string; event_seq: number }>>).value;
      const pos = new Map(res.rows.map((r) => [`${r.job_id}:${r.event_seq}`, r.position]));
      for (const e of evs) {
        const position = pos.get(`${e.jobId}:${e.eventSeq}`);
        if (position === undefined) throw new UpshiftError('INTERNAL', `event ${e.jobId}#${e.eventSeq} got no position`);
        out.push({ jobId: asJobId(e.jobId), orgId: asOrgId(e.orgId), eventSeq: e.eventSeq, type: e.type, status: e.status, payload: e.payload, occurredAt: e.occurredAt, position });
      }
    }
    return out.sort((a, b) => a.position - b.position);
  }

  /** COMMIT without pending events (or the one already pipelined); throws if PostgreSQL rolled back instead. */
  async commit(): Promise<void> {
    this.sendLock();
    const r = await (this.commitSent ?? this.client.query('COMMIT')).catch((e: unknown) => {
      throw this.firstError ?? e;
    });
    if (this.firstError !== undefined || r.command !== 'COMMIT') throw this.firstError ?? new UpshiftError('STORE_UNAVAILABLE', 'the transaction was rolled back');
  }
}
