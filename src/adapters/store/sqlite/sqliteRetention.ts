import type { Database, Statement } from 'better-sqlite3';
import { asJobId, asOrgId } from '../../../core/ids.js';
import { isTerminal, type JobStatus, type TerminalStatus } from '../../../core/jobState.js';
import type { JobKey, PurgeCommand, PurgeOutcome, RetentionStore, TerminalJobPage, TerminalJobStats } from '../../../ports/retentionStore.js';
import { SqliteCheckpointer } from './sqliteCheckpointer.js';
import { readAsync, toStoreError } from './sqliteErrors.js';

/**
 * RetentionStore on the SQLite store's own connection and group-commit writer: deletes are
 * ordinary write ops, so they serialise with the API's and workers' writes instead of
 * competing for the file lock, and each call is one short transaction.
 *
 * Counting and deleting by `job_id` use the UNIQUE (job_id, event_seq) / (job_id, seq)
 * indexes of 0001_init.sql, which also make a job id unique across orgs in those tables; the
 * org is still checked on the job row (and on deletes) so a wrong-org key touches nothing.
 */
const SQL = {
  // A page of job keys in primary-key order, with the counts of terminal ones. The counts
  // are index-only (COUNT over the unique index); non-terminal rows get NULL (not counted).
  scan: `SELECT j.org_id, j.job_id, j.status, j.finished_at,
      CASE WHEN j.status IN ('completed', 'failed', 'canceled')
        THEN (SELECT COUNT(*) FROM job_results r WHERE r.job_id = j.job_id) END AS results,
      CASE WHEN j.status IN ('completed', 'failed', 'canceled')
        THEN (SELECT COUNT(*) FROM job_events e WHERE e.job_id = j.job_id) END AS events,
      CASE WHEN j.status IN ('completed', 'failed', 'canceled')
        THEN (SELECT COUNT(*) FROM notifications n WHERE n.job_id = j.job_id)
           + (SELECT COUNT(*) FROM notification_outbox o WHERE o.job_id = j.job_id AND o.status <> 'pending') END AS notifications
    FROM (SELECT org_id, job_id, status, finished_at FROM jobs
          WHERE (org_id, job_id) > (@org, @job) ORDER BY org_id, job_id LIMIT @limit) j
    ORDER BY j.org_id, j.job_id`,
  jobState: `SELECT status, finished_at FROM jobs WHERE org_id = ? AND job_id = ?`,
  // The same first @n results by seq in both statements (one transaction, nothing in between).
  recordRemoved: `INSERT OR IGNORE INTO removed_results (result_id, job_id, org_id, removed_at)
    SELECT result_id, job_id, org_id, @now FROM job_results WHERE job_id = @job AND org_id = @org ORDER BY seq LIMIT @n`,
  deleteResults: `DELETE FROM job_results WHERE result_id IN
    (SELECT result_id FROM job_results WHERE job_id = @job AND org_id = @org ORDER BY seq LIMIT @n)`,
  // RETURNING: the positions feed the events-deleted watermark (raiseEventsDeleted).
  deleteEvents: `DELETE FROM job_events WHERE position IN
    (SELECT position FROM job_events WHERE job_id = @job AND org_id = @org ORDER BY event_seq LIMIT @n) RETURNING position`,
  raiseEventsDeleted: `INSERT INTO store_watermarks (name, position) VALUES ('events_deleted_through', @position)
    ON CONFLICT (name) DO UPDATE SET position = max(position, excluded.position)`,
  // By key, not rowid (a table may become WITHOUT ROWID). Pending outbox entries stay: a
  // delivery still being attempted is not history.
  deleteNotifications: `DELETE FROM notifications WHERE notification_id IN
    (SELECT notification_id FROM notifications WHERE job_id = @job AND org_id = @org LIMIT @n)`,
  deleteSettledOutbox: `DELETE FROM notification_outbox WHERE entry_id IN
    (SELECT entry_id FROM notification_outbox WHERE job_id = @job AND org_id = @org AND status <> 'pending' LIMIT @n)`,
} as const;

const CHECKPOINT_EVERY_MS = 50;

type ScanRow = [org: string, job: string, status: JobStatus, finishedAt: number | null, results: number | null, events: number | null, notifications: number | null];

export interface RetentionQueries {
  scan: Statement<[{ org: string; job: string; limit: number }], unknown[]>;
  jobState: Statement<[string, string], { status: JobStatus; finished_at: number | null }>;
  recordRemoved: Statement<[{ now: number; job: string; org: string; n: number }]>;
  deleteResults: Statement<[{ job: string; org: string; n: number }]>;
  deleteEvents: Statement<[{ job: string; org: string; n: number }], number>;
  raiseEventsDeleted: Statement<[{ position: number }]>;
  deleteNotifications: Statement<[{ job: string; org: string; n: number }]>;
  deleteSettledOutbox: Statement<[{ job: string; org: string; n: number }]>;
}

export interface SqliteRetentionDeps {
  readonly db: Database;
  /** The database file (for the checkpointer's own connection). */
  readonly file: string;
  /** Runs `purgeOp` as a write op of the store's group-commit writer. */
  readonly purge: (cmd: PurgeCommand) => Promise<PurgeOutcome>;
  /** Throws STORE_UNAVAILABLE once the store is closed. */
  readonly assertOpen: () => void;
}

/** The retention port plus `close()`, which the store calls from its own close(). */
export function createSqliteRetention(deps: SqliteRetentionDeps): RetentionStore & { close(): Promise<void> } {
  let prepared: RetentionQueries | null = null;
  // Deletes dirty many pages: keep their WAL checkpoints off the event loop (see SqliteCheckpointer).
  const checkpointer = new SqliteCheckpointer(deps.file);
  let lastCheckpoint = 0;
  /** Prepared lazily: the tables exist only after migrate(). */
  const q = (): RetentionQueries => {
    deps.assertOpen();
    prepared ??= prepareRetentionQueries(deps.db);
    return prepared;
  };

  return {
    scanTerminalJobs: (after, limit) =>
      readAsync((): TerminalJobPage => {
        const n = Math.max(1, Math.floor(limit));
        // ('', '') sorts before every key: org ids are never empty.
        const rows = q().scan.all({ org: after?.orgId ?? '', job: after?.jobId ?? '', limit: n }) as ScanRow[];
        const jobs: TerminalJobStats[] = [];
        for (const [org, job, status, finishedAt, results, events, notifications] of rows) {
          if (!isTerminal(status)) continue;
          jobs.push({
            orgId: asOrgId(org),
            jobId: asJobId(job),
            status: status as TerminalStatus,
            finishedAt,
            resultCount: results ?? 0,
            eventCount: events ?? 0,
            notificationCount: notifications ?? 0,
          });
        }
        const last = rows[rows.length - 1];
        const next: JobKey | null = rows.length < n || !last ? null : { orgId: asOrgId(last[0]), jobId: asJobId(last[1]) };
        return { jobs, examined: rows.length, next };
      }),

    purgeJobData(cmd) {
      try {
        deps.assertOpen();
      } catch (e) {
        return Promise.reject(toStoreError(e));
      }
      return deps.purge(cmd).then(async (out) => {
        // Every CHECKPOINT_EVERY_MS of deleting, before the next delete begins: a few hundred
        // WAL pages per checkpoint, so the WAL rewinds and stays far below wal_autocheckpoint.
        if (out.resultsDeleted + out.eventsDeleted + out.notificationsDeleted > 0 && performance.now() - lastCheckpoint >= CHECKPOINT_EVERY_MS) {
          await checkpointer.checkpoint();
          lastCheckpoint = performance.now();
        }
        return out;
      });
    },

    close: () => checkpointer.close(),
  };
}

/** The retention statements, prepared on `db` (the reading connection or the writer's). */
export function prepareRetentionQueries(db: Database): RetentionQueries {
  const s = (sql: string) => db.prepare(sql);
  return {
    scan: s(SQL.scan).raw(true),
    jobState: s(SQL.jobState),
    recordRemoved: s(SQL.recordRemoved),
    deleteResults: s(SQL.deleteResults),
    deleteEvents: s(SQL.deleteEvents).pluck(),
    raiseEventsDeleted: s(SQL.raiseEventsDeleted),
    deleteNotifications: s(SQL.deleteNotifications),
    deleteSettledOutbox: s(SQL.deleteSettledOutbox),
  } as unknown as RetentionQueries;
}

/** The write op: runs inside the group transaction (see BatchExecutor). */
export function purgeOp(q: RetentionQueries, cmd: PurgeCommand): PurgeOutcome {
  let budget = Math.max(1, Math.floor(cmd.maxRows));
  let resultsDeleted = 0;
  let eventsDeleted = 0;
  let notificationsDeleted = 0;
  let jobsDone = 0;
  let highestEvent = 0;
  for (const key of cmd.jobs) {
    const row = q.jobState.get(key.orgId, key.jobId);
    const finishedAt = row && isTerminal(row.status) ? row.finished_at : null;
    if (finishedAt !== null) {
      if (budget === 0) break;
      const args = { job: key.jobId, org: key.orgId, n: budget };
      if (finishedAt <= cmd.resultsCutoff) {
        q.recordRemoved.run({ ...args, now: cmd.now });
        const n = q.deleteResults.run(args).changes;
        resultsDeleted += n;
        budget -= n;
        // Exactly the budget deleted: more may be left; the next call finds out.
        if (budget === 0) break;
        args.n = budget;
      }
      if (finishedAt <= cmd.eventsCutoff) {
        const positions = q.deleteEvents.all(args);
        for (const p of positions) if (p > highestEvent) highestEvent = p;
        const n = positions.length;
        eventsDeleted += n;
        budget -= n;
        if (budget === 0) break;
        args.n = budget;
      }
      if (cmd.notificationsCutoff !== null && finishedAt <= cmd.notificationsCutoff) {
        let n = q.deleteNotifications.run(args).changes;
        budget -= n;
        if (budget > 0) {
          args.n = budget;
          const m = q.deleteSettledOutbox.run(args).changes;
          budget -= m;
          n += m;
        }
        notificationsDeleted += n;
        if (budget === 0) break;
      }
    }
    jobsDone++;
  }
  // Same transaction as the deletes: a projection can never see the events gone but not the mark.
  if (highestEvent > 0) q.raiseEventsDeleted.run({ position: highestEvent });
  return { resultsDeleted, eventsDeleted, notificationsDeleted, jobsDone };
}
