import type Database from 'better-sqlite3';
import { UpshiftError } from '../../../core/errors.js';
import type { JobId, OrgId, ResultId } from '../../../core/ids.js';
import type { DeliveryStore, InAppDelivery } from '../../../ports/deliveryStore.js';
import type { JobStore, ListJobsQuery } from '../../../ports/jobStore.js';
import type { RetentionStore } from '../../../ports/retentionStore.js';
import { jobRowOf, jobRowsOf, toApiKey, toClaimedJob, toEvent, toJob, toRemovedResult, toResult } from './rowMapping.js';
import { backgroundCheckpoints, SqliteCheckpointer } from './sqliteCheckpointer.js';
import { loadSqliteDriver } from './sqliteDriver.js';
import { createSqliteDeliveryMethods } from './sqliteDeliveryStore.js';
import { readAsync, toStoreError } from './sqliteErrors.js';
import { GroupCommit, type CommitListener, type WriteOp } from './sqliteGroupCommit.js';
import { recoverExpiredLeasesOp, requestCancelOp, submitOp } from './sqliteJobWrites.js';
import { claimOp, finishOp, heartbeatOp, partialOp, progressOp } from './sqliteLeaseWrites.js';
import { applyMigrations, loadMigrations, schemaState } from './sqliteMigrator.js';
import { prepareQueries, type Queries } from './sqliteQueries.js';
import { createSqliteRetention } from './sqliteRetention.js';

export interface SqliteJobStoreOptions {
  /** Path of the database file (created if missing). */
  readonly file: string;
  /** How long a write waits for another process's lock before STORE_UNAVAILABLE. Default 5000. */
  readonly busyTimeoutMs?: number;
  /** Cap on writes per group transaction. Default 1000. */
  readonly maxOpsPerTransaction?: number;
  /** Called when an onCommitted listener throws (listeners are isolated from each other). */
  readonly onListenerError?: (e: unknown) => void;
  /** How terminal transitions deliver the in-app notification (DeliveryStore port). Default `outbox`. */
  readonly inAppDelivery?: InAppDelivery;
}

/** Sorts after every job id: the "no cursor" bound of listJobs. */
const NO_CURSOR = '~';

/**
 * The embedded store: one SQLite file in WAL mode, one connection, one writer.
 * Writes are group-committed (see GroupCommit); reads are synchronous better-sqlite3 calls on
 * the same connection, which never has a transaction open between event-loop turns, so
 * reads see exactly the committed state.
 */
export function createSqliteJobStore(opts: SqliteJobStoreOptions): JobStore & RetentionStore & DeliveryStore {
  const migrations = loadMigrations();
  const db = openDatabase(opts);
  const listeners = new Set<CommitListener>();
  const writer = new GroupCommit(db, listeners, opts.maxOpsPerTransaction ?? 1000, opts.onListenerError);
  // WAL checkpoints of sustained writing run in a worker thread (see backgroundCheckpoints).
  const checkpointer = new SqliteCheckpointer(opts.file);
  listeners.add(backgroundCheckpoints(checkpointer));
  let queries: Queries | null = null;
  let closed = false;

  /** Prepared lazily: the tables exist only after migrate(). */
  const q = (): Queries => {
    if (closed) throw new UpshiftError('STORE_UNAVAILABLE', 'the SQLite store is closed');
    queries ??= prepareQueries(db, opts.inAppDelivery ?? 'outbox');
    return queries;
  };
  const write = <T>(build: (q: Queries) => WriteOp<T>): Promise<T> => {
    let op: WriteOp<T>;
    try {
      op = build(q());
    } catch (e) {
      return Promise.reject(toStoreError(e));
    }
    return writer.enqueue(op);
  };

  // Retention shares this connection and writer (see sqliteRetention.ts).
  const retention = createSqliteRetention({
    db,
    file: opts.file,
    enqueue: (op) => writer.enqueue(op),
    assertOpen: () => {
      if (closed) throw new UpshiftError('STORE_UNAVAILABLE', 'the SQLite store is closed');
    },
  });

  return {
    kind: 'sqlite',
    ...retention,
    // The notification outbox/inbox/webhooks share this connection and group commit.
    ...createSqliteDeliveryMethods({
      read: (fn) => readAsync(() => fn(q().delivery)),
      write: (fn) => write((qs) => () => fn(qs.delivery)),
    }),

    migrate() {
      return readAsync(() => {
        if (closed) throw new UpshiftError('STORE_UNAVAILABLE', 'the SQLite store is closed');
        return { applied: applyMigrations(db, migrations) };
      });
    },

    ping() {
      return readAsync(() => {
        if (closed) throw new UpshiftError('STORE_UNAVAILABLE', 'the SQLite store is closed');
        const state = schemaState(db, migrations);
        if (state === 'too_new') throw new UpshiftError('STORE_SCHEMA_TOO_NEW');
        if (state === 'not_migrated') throw new UpshiftError('STORE_NOT_MIGRATED');
      });
    },

    close() {
      if (closed) return Promise.resolve();
      try {
        writer.close();
      } finally {
        closed = true;
        listeners.clear();
        db.close();
      }
      return Promise.all([retention.close(), checkpointer.close()]).then(() => undefined);
    },

    submitJob: (cmd) => write((q) => submitOp(q, cmd)),
    claimJobs: (cmd) => write((q) => claimOp(q, cmd)),
    heartbeat: (cmd) => write((q) => heartbeatOp(q, cmd)),
    recordProgress: (lease, fraction, message, now) => write((q) => progressOp(q, lease, fraction, message, now)),
    recordPartial: (lease, chunkKey, payload, now) => write((q) => partialOp(q, lease, chunkKey, payload, now)),
    finishJob: (lease, outcome, now) => write((q) => finishOp(q, lease, outcome, now)),
    requestCancel: (orgId, jobId, now) => write((q) => requestCancelOp(q, orgId, jobId, now)),
    recoverExpiredLeases: (now, limit, retryAt) => write((q) => recoverExpiredLeasesOp(q, now, limit, retryAt)),

    getJob: (orgId: OrgId, jobId: JobId) =>
      readAsync(() => {
        const row = jobRowOf(q().jobByOrg.get(orgId, jobId));
        return row ? toJob(row) : undefined;
      }),

    listJobs: (orgId: OrgId, query: ListJobsQuery) =>
      readAsync(() => {
        if (query.limit <= 0) return [];
        const params = {
          org: orgId,
          before: query.beforeJobId ?? NO_CURSOR,
          analyzer: query.analyzer ?? null,
          createdAfter: query.createdAfter ?? null,
          createdBefore: query.createdBefore ?? null,
          limit: Math.floor(query.limit),
        };
        const qs = q();
        const rows =
          query.status === undefined ? qs.listJobs.all(params)
          : query.status === 'queued' ? qs.listQueued.all(params)
          : query.status === 'running' ? qs.listRunning.all(params)
          : query.status === 'completed' ? qs.listCompleted.all(params)
          : qs.listUnsuccessful.all({ ...params, status: query.status });
        return jobRowsOf(rows).map(toJob);
      }),

    listEvents: (orgId, jobId, afterSeq, limit) =>
      readAsync(() => (limit <= 0 ? [] : q().listEvents.all(jobId, orgId, afterSeq, Math.floor(limit)).map(toEvent))),

    listResults: (orgId, jobId) => readAsync(() => q().listResults.all(jobId, orgId).map(toResult)),

    getResult: (orgId: OrgId, resultId: ResultId) =>
      readAsync(() => {
        const row = q().resultByOrg.get(resultId, orgId);
        return row ? toResult(row) : undefined;
      }),

    getLatestResult: (orgId, jobId) =>
      readAsync(() => {
        const row = q().latestResult.get(jobId, orgId);
        return row ? toResult(row) : undefined;
      }),

    getRemovedResult: (orgId, resultId) =>
      readAsync(() => {
        const row = q().removedResult.get(resultId, orgId);
        return row ? toRemovedResult(row) : undefined;
      }),

    readyOrgs: (now, analyzers) =>
      readAsync(() => {
        if (analyzers !== null && analyzers.length === 0) return [];
        const rows =
          analyzers === null ? q().readyOrgs.all({ now }) : q().readyOrgsFiltered.all({ now, analyzers: JSON.stringify(analyzers) });
        if (rows.length === 0) return [];
        const running = new Map(q().runningCounts.all().map((r) => [r.org_id, r.n]));
        return rows.map((r) => ({ orgId: r.org_id, running: running.get(r.org_id) ?? 0 }));
      }),

    listStaleCancels: (olderThan, limit) =>
      readAsync(() => (limit <= 0 ? [] : jobRowsOf(q().staleCancels.all(olderThan, Math.floor(limit))).map(toClaimedJob))),

    queueStats: (now) =>
      readAsync(() => {
        const r = q().queueStats.get(now) as { queued: number; running: number; oldest: number | null };
        return { queued: r.queued, running: r.running, oldestReadyAgeMs: r.oldest === null ? 0 : Math.max(0, now - r.oldest) };
      }),

    onCommitted(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },

    createApiKey: (record) =>
      write((q) => () => {
        q.insertApiKey.run(record.keyId, record.orgId, record.hash, record.label, record.createdAt, record.revokedAt);
      }),

    findApiKeyByHash: (hash) =>
      readAsync(() => {
        const row = q().apiKeyByHash.get(hash);
        return row ? toApiKey(row) : undefined;
      }),

    revokeApiKey: (keyId, now) => write((q) => () => q.revokeApiKey.run(now, keyId).changes > 0),

    listApiKeys: (orgId) => readAsync(() => (orgId === null ? q().listApiKeys.all() : q().listApiKeysByOrg.all(orgId)).map(toApiKey)),
  };
}

/**
 * WAL: readers never block the writer. synchronous=NORMAL: in WAL mode a commit is durable
 * against process crashes; only an OS crash / power loss can lose the last commits, never
 * corrupt the file. busy_timeout: how long BEGIN IMMEDIATE waits for another process's
 * writer (it blocks this thread; better-sqlite3 is synchronous).
 */
function openDatabase(opts: SqliteJobStoreOptions): Database.Database {
  const SqliteDatabase = loadSqliteDriver(); // better-sqlite3 12 or 13 by Node version; throws STORE_UNAVAILABLE
  let db: Database.Database | undefined;
  try {
    db = new SqliteDatabase(opts.file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    // A larger page cache (64 MiB) keeps the hot indexes in memory. Checkpoints normally run
    // in a worker thread (backgroundCheckpoints); the commit-time checkpoint is the safety net
    // that bounds the WAL (40 MB), in big, rare steps that find most pages already copied.
    db.pragma('cache_size = -65536');
    db.pragma('temp_store = MEMORY');
    db.pragma('wal_autocheckpoint = 10000');
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
    return db;
  } catch (e) {
    db?.close();
    throw new UpshiftError('STORE_UNAVAILABLE', `cannot open SQLite database ${opts.file}`, { cause: e });
  }
}
