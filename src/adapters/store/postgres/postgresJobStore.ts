import type pg from 'pg';
import { UpshiftError } from '../../../core/errors.js';
import type { JobEvent } from '../../../core/events.js';
import type { DeliveryStore, InAppDelivery } from '../../../ports/deliveryStore.js';
import type { JobStore, ListJobsQuery } from '../../../ports/jobStore.js';
import type { ProjectionStore } from '../../../ports/projectionStore.js';
import type { RetentionStore } from '../../../ports/retentionStore.js';
import { corkUntilNextTick, createPool, ident, resolveNames, withPooledTransaction, type PgNames } from './postgresConnection.js';
import { createPostgresDeliveryMethods } from './postgresDeliveryStore.js';
import { toStoreError } from './postgresErrors.js';
import { PgGroupCommit, type CommitListener, type Op } from './postgresGroupCommit.js';
import { claimByIdOp, claimOp, createApiKeyOp, recoverOp, revokeApiKeyOp, submitOp } from './postgresJobWrites.js';
import { applyMigrations, loadMigrations, schemaState } from './postgresMigrator.js';
import { heartbeatOp, mutationOp } from './postgresMutations.js';
import { createPostgresProjections } from './postgresProjections.js';
import { createPostgresRetentionMethods } from './postgresRetention.js';
import { toApiKey, toClaimedJob, toEvent, toJob, toRemovedResult, toResult, type ApiKeyRow, type EventRow, type JobRow, type RemovedResultRow, type ResultRow } from './postgresRows.js';
import { buildSql, type PgSql } from './postgresSql.js';
import { storableOutcome, storablePayload, storableText } from './postgresText.js';

export interface PostgresJobStoreOptions {
  /** postgres://user@host:port/db — the user owns (or will create) the schema. */
  readonly url: string;
  /** Schema holding every object of the store. Default `upshift`. */
  readonly schema?: string;
  /** Connections in the pool (writes and reads). Default 10. */
  readonly poolSize?: number;
  /** Role tenant-bound work runs as (subject to RLS). Default `upshift_app`. */
  readonly appRole?: string;
  /** Role cross-tenant internals run as. Default `upshift_internal`. */
  readonly internalRole?: string;
  /** Group-commit transactions in flight at once. Default 3. */
  readonly maxConcurrentBatches?: number;
  /** Cap on ops per group-commit transaction. Default 2000. */
  readonly maxOpsPerTransaction?: number;
  /** Called when an onCommitted listener throws (listeners are isolated from each other). */
  readonly onListenerError?: (e: unknown) => void;
  /** Called each time a group-commit batch is redone after a deadlock or serialization failure (40P01 / 40001). */
  readonly onBatchRetry?: (e: unknown) => void;
  /** application_name of the pool's connections (pg_stat_activity). Default `upshift-store`. */
  readonly applicationName?: string;
  /** How terminal transitions deliver the in-app notification (see DeliveryStore). Default `outbox`. */
  readonly inAppDelivery?: InAppDelivery;
}

/**
 * Sorts after every job id (`job_` + 26 of [0-9a-z]) under any collation: the "no cursor"
 * bound of listJobs. It differs from real ids only in alphanumerics, which every collation
 * orders the same way (z last); a punctuation sentinel such as '~' does not work — ICU and
 * glibc locales (the default of most databases) sort it before letters, which would make
 * every first page empty.
 */
const NO_CURSOR = `job_${'z'.repeat(26)}`;

const LIST_BY_STATUS = { queued: 'listQueued', running: 'listRunning', completed: 'listCompleted', failed: 'listFailed', canceled: 'listCanceled' } as const;

/**
 * The scale-mode store: PostgreSQL with row-level security. Writes are group-committed (see
 * PgGroupCommit); reads run in short transactions on pooled connections, tenant reads as the
 * application role with the org setting, cross-tenant reads as the internal role.
 */
export function createPostgresJobStore(opts: PostgresJobStoreOptions): JobStore & DeliveryStore & RetentionStore & ProjectionStore {
  const names = resolveNames(opts);
  const sql = buildSql(names.schema);
  const migrations = loadMigrations();
  const poolSize = Math.max(2, opts.poolSize ?? 10);
  const pool = createPool(opts.url, poolSize, opts.applicationName ?? 'upshift-store');
  // An idle client's error (server restart) must not crash the process; the pool drops it.
  pool.on('error', () => undefined);
  const listeners = new Set<CommitListener>();
  const writer = new PgGroupCommit(pool, names, sql, listeners, {
    maxConcurrent: Math.max(1, opts.maxConcurrentBatches ?? 3),
    maxOpsPerTx: Math.max(1, opts.maxOpsPerTransaction ?? 2000),
    onListenerError: opts.onListenerError ?? (() => undefined),
    inlineInApp: opts.inAppDelivery === 'inline',
    ...(opts.onBatchRetry ? { onBatchRetry: opts.onBatchRetry } : {}),
  });
  let closed = false;

  const write = <I, T>(op: Op<I, T>): Promise<T> => (closed ? Promise.reject(closedError()) : writer.enqueue(op));
  const tenantRead = <T>(org: string, run: (q: Query) => Promise<T>): Promise<T> => read(pool, names, sql, org, run, () => closed);
  const internalRead = <T>(run: (q: Query) => Promise<T>, ordered = false): Promise<T> => read(pool, names, sql, null, run, () => closed, ordered);

  return {
    ...createPostgresDeliveryMethods({ write, tenantRead, internalRead }),
    ...createPostgresRetentionMethods({ write, internalRead }),
    // Read models: own short transactions on this pool, never inside a job write.
    ...createPostgresProjections({ pool, names, isClosed: () => closed }),
    kind: 'postgres',

    async migrate() {
      if (closed) throw closedError();
      return { applied: await applyMigrations(pool, names, migrations) };
    },

    async warmUp() {
      if (closed) return;
      await warmPool(pool, poolSize, names, sql);
    },

    async ping() {
      if (closed) throw closedError();
      let state;
      try {
        const c = await pool.connect();
        try {
          state = await schemaState(c, names, migrations);
        } finally {
          c.release();
        }
      } catch (e) {
        throw toStoreError(e);
      }
      if (state === 'too_new') throw new UpshiftError('STORE_SCHEMA_TOO_NEW');
      if (state === 'not_migrated') throw new UpshiftError('STORE_NOT_MIGRATED');
    },

    async close() {
      if (closed) return;
      closed = true;
      try {
        await writer.close();
      } finally {
        listeners.clear();
        await pool.end();
      }
    },

    submitJob: (cmd) => write(submitOp(cmd)),
    claimJobs: (cmd) => write(claimOp(cmd)),
    claimJobsById: (cmd) => (cmd.jobs.length === 0 ? Promise.resolve([]) : write(claimByIdOp(cmd))),
    heartbeat: (cmd) => (cmd.leases.length === 0 ? Promise.resolve([]) : write(heartbeatOp(cmd))),
    // What analyzers report is stored with U+0000 replaced (see postgresText.ts).
    recordProgress: (lease, fraction, message, now) =>
      write(mutationOp<void>({ kind: 'progress', lease, fraction, message: message === null ? null : storableText(message), now })),
    recordPartial: (lease, chunkKey, payload, now) => write(mutationOp({ kind: 'partial', lease, chunkKey: storableText(chunkKey), payload: storablePayload(payload), now })),
    finishJob: (lease, outcome, now) => write(mutationOp({ kind: 'finish', lease, outcome: storableOutcome(outcome), now })),
    requestCancel: (orgId, jobId, now) => write(mutationOp({ kind: 'cancel', orgId, jobId, now })),
    recoverExpiredLeases: (now, limit, retryAt) => write(recoverOp(now, limit, retryAt)),

    getJob: (orgId, jobId) =>
      tenantRead(orgId, async (q) => {
        const [row] = await q<JobRow>('jobByOrg', [orgId, jobId]);
        return row ? toJob(row) : undefined;
      }),

    listJobs: (orgId, query: ListJobsQuery) =>
      query.limit <= 0
        ? Promise.resolve([])
        : tenantRead(orgId, async (q) => {
            const name = query.status === undefined ? 'listJobs' : LIST_BY_STATUS[query.status];
            const rows = await q<JobRow>(name, [
              orgId,
              query.beforeJobId ?? NO_CURSOR,
              query.analyzer ?? null,
              query.createdAfter ?? null,
              query.createdBefore ?? null,
              Math.floor(query.limit),
            ]);
            return rows.map(toJob);
          }),

    listEvents: (orgId, jobId, afterSeq, limit) =>
      limit <= 0 ? Promise.resolve([]) : tenantRead(orgId, async (q) => (await q<EventRow>('listEvents', [orgId, jobId, afterSeq, Math.floor(limit)])).map(toEvent)),
    listOrgEvents: (orgId, afterPosition, scanUpTo, limit) =>
      limit <= 0 || scanUpTo <= afterPosition
        ? Promise.resolve([])
        : tenantRead(orgId, async (q) => (await q<EventRow>('listOrgEvents', [orgId, afterPosition, scanUpTo, Math.floor(limit)])).map(toEvent)),

    listResults: (orgId, jobId) => tenantRead(orgId, async (q) => (await q<ResultRow>('listResults', [orgId, jobId])).map(toResult)),

    getResult: (orgId, resultId) =>
      tenantRead(orgId, async (q) => {
        const [row] = await q<ResultRow>('resultByOrg', [orgId, resultId]);
        return row ? toResult(row) : undefined;
      }),

    getLatestResult: (orgId, jobId) =>
      tenantRead(orgId, async (q) => {
        const [row] = await q<ResultRow>('latestResult', [orgId, jobId]);
        return row ? toResult(row) : undefined;
      }),

    getRemovedResult: (orgId, resultId) =>
      tenantRead(orgId, async (q) => {
        const [row] = await q<RemovedResultRow>('removedResult', [orgId, resultId]);
        return row ? toRemovedResult(row) : undefined;
      }),

    readyOrgs: (now, analyzers) =>
      analyzers !== null && analyzers.length === 0
        ? Promise.resolve([])
        : internalRead(async (q) => {
            const rows = await q<{ org_id: string; running: number }>('readyOrgs', [now, analyzers === null ? null : [...analyzers]]);
            return rows.map((r) => ({ orgId: r.org_id, running: r.running }));
          }, true),

    listStaleCancels: (olderThan, limit) =>
      limit <= 0 ? Promise.resolve([]) : internalRead(async (q) => (await q<JobRow>('staleCancels', [olderThan, Math.floor(limit)])).map(toClaimedJob)),

    queueStats: (now) =>
      internalRead(async (q) => {
        const [r] = await q<{ queued: number; running: number; oldest: number | null }>('queueStats', [now]);
        if (!r) return { queued: 0, running: 0, oldestReadyAgeMs: 0 };
        return { queued: r.queued, running: r.running, oldestReadyAgeMs: r.oldest === null ? 0 : Math.max(0, now - r.oldest) };
      }),

    onCommitted(listener: (events: readonly JobEvent[]) => void) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },

    createApiKey: (record) => write(createApiKeyOp(record)),
    // Authentication happens before the tenant is known: lookup by hash is internal.
    findApiKeyByHash: (hash) =>
      internalRead(async (q) => {
        const [row] = await q<ApiKeyRow>('apiKeyByHash', [hash]);
        return row ? toApiKey(row) : undefined;
      }),
    revokeApiKey: (keyId, now) => write(revokeApiKeyOp(keyId, now)),
    listApiKeys: (orgId) =>
      orgId === null
        ? internalRead(async (q) => (await q<ApiKeyRow>('listApiKeys', [])).map(toApiKey))
        : tenantRead(orgId, async (q) => (await q<ApiKeyRow>('listApiKeysByOrg', [orgId])).map(toApiKey)),
  };
}

const closedError = (): UpshiftError => new UpshiftError('STORE_UNAVAILABLE', 'the PostgreSQL store is closed');

type Query = <R extends pg.QueryResultRow>(name: keyof PgSql['names'], values: unknown[]) => Promise<R[]>;

/**
 * One short read transaction: as the application role bound to `org`, or (org null) as the
 * internal role. SET LOCAL semantics: nothing leaks to the next user of the connection.
 */
async function read<T>(pool: pg.Pool, names: PgNames, sql: PgSql, org: string | null, run: (q: Query) => Promise<T>, isClosed: () => boolean, ordered = false): Promise<T> {
  if (isClosed()) throw closedError();
  return withPooledTransaction(pool, async (client) => {
    // Pipelined: BEGIN and the role/org switch go out with the first query, no round trip each.
    let firstError: unknown;
    const send = (config: string | pg.QueryConfig): void => {
      corkUntilNextTick(client);
      client.query(config).catch((e: unknown) => {
        firstError ??= e;
      });
    };
    try {
      send('BEGIN');
      if (org === null) {
        const setter = ordered ? 'setInternalOrdered' : 'setInternal';
        send({ name: sql.names[setter], text: sql[setter], values: [names.internalRole] });
      } else send({ name: sql.names.setTenant, text: sql.setTenant, values: [names.appRole, org] });
      // Every read is one statement: BEGIN, the role switch, the statement and COMMIT leave in
      // one write and come back in one round trip.
      let commit: Promise<pg.QueryResult> | null = null;
      const q: Query = async (name, values) => {
        if (commit !== null) throw new UpshiftError('INTERNAL', 'a read transaction runs exactly one statement');
        corkUntilNextTick(client);
        const rows = client.query({ name: sql.names[name], text: sql[name], values });
        commit = client.query('COMMIT');
        commit.catch(() => undefined);
        return (await rows).rows;
      };
      const out = await run(q);
      const done = (commit as Promise<pg.QueryResult> | null) ?? client.query('COMMIT');
      if ((await done).command !== 'COMMIT') throw new UpshiftError('STORE_UNAVAILABLE', 'the read transaction was rolled back');
      return out;
    } catch (e) {
      // The setup's failure (a role switch refused, say) is the cause of whatever failed after it.
      throw firstError ?? e;
    }
  });
}

/** The tables every job's transactions touch (claims, completions, events, results, inbox, webhook lookup). */
const HOT_TABLES = ['jobs', 'job_events', 'job_results', 'notifications', 'notification_outbox', 'webhook_endpoints'] as const;

/**
 * Opens every connection of the pool and has each backend load what the hot path's first
 * statements need: a fresh PostgreSQL backend starts with empty catalog caches, and the first
 * statement on each table reads the table's, its indexes' and its row-level-security policies'
 * catalog entries. Left to the first jobs, that and the connection start-ups land on the first
 * few hundred milliseconds of load, one backend after another (add→start at 500 jobs/s: p90
 * ~30 ms in the first 250 ms against ~5 ms afterwards; docs/benchmarks.md, session 12). Each
 * connection touches the tables as the application role with no org (row-level security
 * shows it nothing) in a transaction it rolls back (withPooledTransaction: a connection that
 * fails is dropped, the rest go on). Best effort: never throws.
 */
async function warmPool(pool: pg.Pool, size: number, names: PgNames, sql: PgSql): Promise<void> {
  const s = ident(names.schema);
  // All checkouts are requested at once, so the pool opens `size` connections; each transaction
  // leaves in one write (pipeline mode) and is rolled back.
  const warm = (client: pg.PoolClient): Promise<unknown> => {
    corkUntilNextTick(client);
    return Promise.all([
      client.query('BEGIN'),
      client.query({ name: sql.names.setTenant, text: sql.setTenant, values: [names.appRole, ''] }),
      ...HOT_TABLES.map((t) => client.query(`SELECT 1 FROM ${s}.${ident(t)} LIMIT 0`)),
      client.query('ROLLBACK'),
    ]);
  };
  await Promise.allSettled(Array.from({ length: size }, () => withPooledTransaction(pool, warm)));
}
