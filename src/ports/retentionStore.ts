import type { JobId, OrgId } from '../core/ids.js';
import type { TerminalStatus } from '../core/jobState.js';

/**
 * The retention port (SPEC §4.2): page through terminal jobs and delete their result,
 * event and notification rows in small transactions. The use case (`app/retention.ts`) decides what is
 * eligible and paces the work; the store guarantees that whatever it is asked, it never
 * deletes anything but eligible rows of terminal jobs. Implemented by every store adapter
 * (the SQLite store object implements it beside `JobStore`, sharing its connection and
 * writer); `test/contracts/retentionStore.contract.ts` runs against each.
 *
 * Common guarantees:
 * - bounded: every call does a bounded amount of work (`limit` jobs, `maxRows` rows), so an
 *   API sharing the process or the database is never stuck behind one long statement;
 * - job rows are never deleted or changed (status, timestamps, attempt, error,
 *   partial_count, result_id and last_event_seq stay as they are);
 * - rows of non-terminal jobs are never read for deletion, let alone deleted;
 * - time comes from the caller (`now`, cutoffs in epoch ms), never from the store's clock.
 * Failures are UpshiftErrors (`STORE_UNAVAILABLE`, ...), never raw driver errors.
 */
export interface RetentionStore {
  /**
   * Examines at most `limit` jobs (of every status and org) strictly after `after` in the
   * store's total order over job keys, and returns the terminal ones among them with the
   * number of result rows and event rows each has at the time of the read. Reads only.
   * `next` is the key to pass as `after` for the following page, or null once the scan has
   * examined the last job. A full scan (from `after: null` until `next` is null) visits
   * every job that existed for the whole scan exactly once.
   */
  scanTerminalJobs(after: JobKey | null, limit: number): Promise<TerminalJobPage>;

  /**
   * Deletes, in one atomic transaction, the eligible rows of the listed jobs, in list order:
   * - a job's result rows (partials and final) if the job is terminal and its `finishedAt`
   *   is not null and `<= resultsCutoff`; each deleted result id is recorded as removed
   *   (`removedAt = now`, same transaction), so `JobStore.getRemovedResult` finds it for the
   *   job's own org only and its permalink answers 410 there (404 elsewhere);
   * - its event rows if it is terminal and `finishedAt <= eventsCutoff`;
   * - its in-app notifications and its settled (delivered or failed, never pending) outbox
   *   entries if it is terminal and `notificationsCutoff` is not null and `finishedAt <=` it.
   * The eligibility is re-checked inside the transaction: a key of a missing, non-terminal,
   * too-young or timestamp-less job (or with the wrong org) deletes nothing and counts as done.
   * At most `maxRows` rows (results + events + notifications) are deleted per call, in that
   * order of kinds, results and events oldest first (by seq);
   * `jobsDone` tells how many leading jobs of the list have no eligible row left — call again
   * with the remaining ones. Idempotent: repeating a call deletes only what is still there.
   */
  purgeJobData(cmd: PurgeCommand): Promise<PurgeOutcome>;
}

/** A job's primary key. */
export interface JobKey {
  readonly orgId: OrgId;
  readonly jobId: JobId;
}

export interface TerminalJobStats extends JobKey {
  readonly status: TerminalStatus;
  readonly finishedAt: number | null;
  readonly resultCount: number;
  readonly eventCount: number;
  /** In-app inbox entries plus settled (not pending) notification outbox entries. */
  readonly notificationCount: number;
}

export interface TerminalJobPage {
  /** Terminal jobs among the examined ones, in scan order. */
  readonly jobs: readonly TerminalJobStats[];
  /** How many jobs were examined (terminal or not), <= limit. */
  readonly examined: number;
  readonly next: JobKey | null;
}

export interface PurgeCommand {
  readonly jobs: readonly JobKey[];
  /** Epoch ms: results of jobs that finished at or before this are deleted. */
  readonly resultsCutoff: number;
  /** Epoch ms: events of jobs that finished at or before this are deleted. */
  readonly eventsCutoff: number;
  /**
   * Epoch ms: in-app notifications and settled outbox entries of jobs that finished at or
   * before this are deleted; null: none are.
   */
  readonly notificationsCutoff: number | null;
  /** Upper bound on rows deleted by this call (>= 1). */
  readonly maxRows: number;
  /** Recorded as the removal time of deleted results. */
  readonly now: number;
}

export interface PurgeOutcome {
  readonly resultsDeleted: number;
  readonly eventsDeleted: number;
  /** In-app notifications plus settled outbox entries deleted. */
  readonly notificationsDeleted: number;
  /** Leading jobs of `cmd.jobs` with no eligible row left after this call. */
  readonly jobsDone: number;
}
