import { UpshiftError } from '../../../core/errors.js';
import type { JobId, OrgId, ResultId } from '../../../core/ids.js';
import type { DeliveryStore, InAppDelivery } from '../../../ports/deliveryStore.js';
import type { JobStore, ListJobsQuery } from '../../../ports/jobStore.js';
import type { ProjectionStore } from '../../../ports/projectionStore.js';
import type { RetentionStore } from '../../../ports/retentionStore.js';
import { jobRowOf, jobRowsOf, toApiKey, toClaimedJob, toEvent, toJob, toRemovedResult, toResult } from './rowMapping.js';
import { backgroundCheckpoints, SqliteCheckpointer } from './sqliteCheckpointer.js';
import { createSqliteDeliveryMethods } from './sqliteDeliveryStore.js';
import { readAsync, toStoreError } from './sqliteErrors.js';
import { openSqliteConnection } from './sqliteConnection.js';
import type { CommitListener } from './sqliteGroupCommit.js';
import { attemptKey } from './sqliteJobWrites.js';
import { InlineWriter, ThreadWriter, type SqliteWriter } from './sqliteWriter.js';
import type { WriteArgs, WriteName, WriteResult } from './sqliteWriteOps.js';
import { applyMigrations, loadMigrations, schemaState } from './sqliteMigrator.js';
import { prepareQueries, type Queries } from './sqliteQueries.js';
import { createSqliteProjections } from './sqliteProjections.js';
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
  /**
   * Where writes run (see sqliteWriter.ts): `thread` (default for a file) — a writer thread with
   * its own connection; `inline` — the caller's thread and connection (always for `:memory:`).
   */
  readonly writer?: 'thread' | 'inline';
}

/** Sorts after every job id: the "no cursor" bound of listJobs. */
const NO_CURSOR = '~';

/**
 * The embedded store: one SQLite file in WAL mode. One writer (a writer thread by default, see
 * sqliteWriter.ts) group-commits every write; reads are synchronous better-sqlite3 calls on
 * this thread's connection, which never has a transaction open between event-loop turns, so
 * reads see exactly the committed state.
 */
export function createSqliteJobStore(opts: SqliteJobStoreOptions): JobStore & RetentionStore & DeliveryStore & ProjectionStore {
  const migrations = loadMigrations();
  const busyTimeoutMs = opts.busyTimeoutMs ?? 5000;
  const db = openSqliteConnection(opts.file, busyTimeoutMs);
  const listeners = new Set<CommitListener>();
  const inAppDelivery = opts.inAppDelivery ?? 'outbox';
  const writerOptions = {
    listeners,
    onListenerError: opts.onListenerError ?? (() => {}),
    maxOpsPerTransaction: opts.maxOpsPerTransaction ?? 1000,
    inAppDelivery,
  };
  const writer: SqliteWriter =
    (opts.writer ?? 'thread') === 'thread' && opts.file !== ':memory:' && opts.file !== ''
      ? new ThreadWriter({ file: opts.file, busyTimeoutMs, maxOpsPerTransaction: writerOptions.maxOpsPerTransaction, inAppDelivery }, writerOptions)
      : new InlineWriter(db, writerOptions);
  // WAL checkpoints of sustained writing run in a worker thread (see backgroundCheckpoints).
  const checkpointer = new SqliteCheckpointer(opts.file);
  listeners.add(backgroundCheckpoints(checkpointer));
  let queries: Queries | null = null;
  let closed = false;
  let recovering: Promise<unknown> = Promise.resolve();

  const assertOpen = (): void => {
    if (closed) throw new UpshiftError('STORE_UNAVAILABLE', 'the SQLite store is closed');
  };
  /** Prepared lazily: the tables exist only after migrate(). */
  const q = (): Queries => {
    assertOpen();
    queries ??= prepareQueries(db, inAppDelivery);
    return queries;
  };
  const write = <N extends WriteName>(name: N, args: WriteArgs<N>): Promise<WriteResult<N>> =>
    closed ? Promise.reject(new UpshiftError('STORE_UNAVAILABLE', 'the SQLite store is closed')) : writer.run(name, args);

  // Retention shares the reading connection and the writer (see sqliteRetention.ts).
  const retention = createSqliteRetention({ db, file: opts.file, purge: (cmd) => write('purge', cmd), assertOpen });

  return {
    kind: 'sqlite',
    ...retention,
    // Read models: reads on this connection, the checkpointed commit as a write op (sqliteProjections.ts).
    ...createSqliteProjections({ db, commit: (cmd) => write('projectionCommit', cmd), assertOpen }),
    // The notification outbox/inbox/webhooks share the connection and the writer.
    ...createSqliteDeliveryMethods({
      read: (fn) => readAsync(() => fn(q().delivery)),
      write: (name, args) => write(name, args as never) as never,
    }),

    async migrate() {
      const applied = await readAsync(() => {
        assertOpen();
        return applyMigrations(db, migrations);
      });
      // The writer (thread) is ready and has its statements prepared when migrate() returns.
      await write('warm', {});
      return { applied };
    },

    ping() {
      return readAsync(() => {
        assertOpen();
        const state = schemaState(db, migrations);
        if (state === 'too_new') throw new UpshiftError('STORE_SCHEMA_TOO_NEW');
        if (state === 'not_migrated') throw new UpshiftError('STORE_NOT_MIGRATED');
      });
    },

    async close() {
      if (closed) return;
      closed = true;
      try {
        await writer.close();
      } finally {
        listeners.clear();
        db.close();
      }
      await Promise.all([retention.close(), checkpointer.close()]);
    },

    submitJob: (cmd) => write('submit', cmd),
    claimJobs: (cmd) => write('claim', cmd),
    claimJobsById: (cmd) => write('claimById', cmd),
    heartbeat: (cmd) => write('heartbeat', cmd),
    recordProgress: (lease, fraction, message, now) => write('progress', { lease, fraction, message, now }),
    recordPartial: (lease, chunkKey, payload, now) => write('partial', { lease, chunkKey, payload, now }),
    finishJob: (lease, outcome, now) => write('finish', { lease, outcome, now }),
    requestCancel: (orgId, jobId, now) => write('cancel', { orgId, jobId, now }),
    recoverExpiredLeases: (now, limit, retryAt) => {
      // The retry policy is a callback, which cannot travel to the writer thread: it is applied
      // here to the jobs seen expired, and the write re-checks each one under the write lock
      // (recoverExpiredLeasesOp). One recovery at a time per store, each planning from the state
      // the previous one committed, so concurrent calls split the expired jobs between them.
      const run = recovering.then(() => {
        const plan: Record<string, number | null> = {};
        if (limit > 0) {
          for (const row of jobRowsOf(q().expiredLeases.all(now, Math.floor(limit)))) {
            const requeue = row.cancel_requested_at === null && row.attempt < row.max_attempts;
            plan[attemptKey(row.job_id, row.attempt)] = requeue ? retryAt(toJob(row)) : null;
          }
        }
        return Object.keys(plan).length === 0 ? [] : write('recover', { now, limit, plan });
      });
      recovering = run.then(
        () => undefined,
        () => undefined,
      );
      return run.catch((e: unknown) => Promise.reject(toStoreError(e)));
    },

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

    listOrgEvents: (orgId, afterPosition, scanUpTo, limit) =>
      readAsync(() => (limit <= 0 || scanUpTo <= afterPosition ? [] : q().listOrgEvents.all(afterPosition, scanUpTo, orgId, Math.floor(limit)).map(toEvent))),

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

    createApiKey: (record) => write('createApiKey', record),

    findApiKeyByHash: (hash) =>
      readAsync(() => {
        const row = q().apiKeyByHash.get(hash);
        return row ? toApiKey(row) : undefined;
      }),

    revokeApiKey: (keyId, now) => write('revokeApiKey', { keyId, now }),

    listApiKeys: (orgId) => readAsync(() => (orgId === null ? q().listApiKeys.all() : q().listApiKeysByOrg.all(orgId)).map(toApiKey)),
  };
}

