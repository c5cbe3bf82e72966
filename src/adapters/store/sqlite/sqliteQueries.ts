import type { Database, Statement } from 'better-sqlite3';
import { JOB_COLUMN_LIST, type ApiKeyRow, type EventRow, type RemovedResultRow, type ResultRow } from './rowMapping.js';
import type { InAppDelivery } from '../../../ports/deliveryStore.js';
import { prepareDeliveryQueries, type DeliveryQueries } from './sqliteDeliveryQueries.js';

// Every statement the SQLite store runs, prepared once per connection. Values are always
// bound. Queries on `status = 'queued' | 'running'` spell the literal so SQLite can use the
// partial indexes of 0001_init.sql.

const J = JOB_COLUMN_LIST;

/** The optional listJobs filters; `job_id < @before` is always applied (default '~' sorts after
 * every job id) so paging is an index range seek, not a scan from the newest job. */
const LIST_FILTERS = `job_id < @before
      AND (@analyzer IS NULL OR analyzer = @analyzer)
      AND (@createdAfter IS NULL OR created_at >= @createdAfter)
      AND (@createdBefore IS NULL OR created_at < @createdBefore)
    ORDER BY job_id DESC LIMIT @limit`;

/** Job-row selects, run in raw mode (see rowMapping.JOB_COLUMNS). */
const RAW_JOB_SQL = {
  jobByOrg: `SELECT ${J} FROM jobs WHERE org_id = ? AND job_id = ?`,
  jobByIdempotencyKey: `SELECT ${J} FROM jobs WHERE org_id = ? AND idempotency_key = ?`,
  // Claims also read the rowid (after the job columns): markRunning updates by rowid, one seek
  // less per claimed job than going through the primary key index again.
  claimable: `SELECT ${J}, rowid FROM jobs WHERE status = 'queued' AND org_id = ? AND run_at <= ?
    ORDER BY priority DESC, run_at, job_id LIMIT ?`,
  claimableFiltered: `SELECT ${J}, rowid FROM jobs WHERE status = 'queued' AND org_id = ? AND run_at <= ?
      AND analyzer IN (SELECT value FROM json_each(?))
    ORDER BY priority DESC, run_at, job_id LIMIT ?`,
  expiredLeases: `SELECT ${J} FROM jobs WHERE status = 'running' AND lease_expires_at < ?
    ORDER BY lease_expires_at, job_id LIMIT ?`,
  // A worker's finalization: the row (with its rowid) for the lease check, then one update by
  // rowid (see finishOp). Cheaper than one UPDATE ... RETURNING through the primary key index,
  // which SQLite runs with an ephemeral table for the returned row.
  leaseRow: `SELECT ${J}, rowid FROM jobs WHERE org_id = ? AND job_id = ?`,
  staleCancels: `SELECT ${J} FROM jobs WHERE status = 'running' AND cancel_requested_at IS NOT NULL AND cancel_requested_at < ?
    ORDER BY cancel_requested_at, job_id LIMIT ?`,
  // One statement per status so each uses the index that keeps it bounded (see 0001_init.sql);
  // INDEXED BY pins the choice instead of leaving it to statistics.
  listJobs: `SELECT ${J} FROM jobs WHERE org_id = @org AND ${LIST_FILTERS}`,
  listQueued: `SELECT ${J} FROM jobs INDEXED BY jobs_claim WHERE org_id = @org AND status = 'queued' AND ${LIST_FILTERS}`,
  listRunning: `SELECT ${J} FROM jobs INDEXED BY jobs_running WHERE org_id = @org AND status = 'running' AND ${LIST_FILTERS}`,
  listCompleted: `SELECT ${J} FROM jobs WHERE org_id = @org AND status = 'completed' AND ${LIST_FILTERS}`,
  listUnsuccessful: `SELECT ${J} FROM jobs INDEXED BY jobs_org_unsuccessful
    WHERE org_id = @org AND status = @status AND status IN ('failed', 'canceled') AND ${LIST_FILTERS}`,
} as const;

/**
 * Writers read the full row first (under the write lock) and compute the new row in JS, so
 * updates set explicit values and need no RETURNING (which costs a second row build).
 * Every job statement names org_id first: it leads the primary key.
 */
const SQL = {
  insertJob: `INSERT INTO jobs (job_id, org_id, analyzer, input, status, attempt, max_attempts, priority,
      idempotency_key, request_hash, created_at, run_at, trace_context, last_event_seq)
    VALUES (?, ?, ?, ?, 'queued', 1, ?, ?, ?, ?, ?, ?, ?, 1)`,
  complete: `UPDATE jobs SET status = 'completed', result_id = ?, finished_at = ?, progress_fraction = 1, error = NULL,
      lease_token = NULL, lease_expires_at = NULL, last_event_seq = ? WHERE rowid = ?`,
  markRunning: `UPDATE jobs SET status = 'running', lease_token = ?, lease_expires_at = ?, worker_id = ?, started_at = ?,
      last_event_seq = ? WHERE rowid = ?`,
  extendLease: `UPDATE jobs SET lease_expires_at = ? WHERE org_id = ? AND job_id = ?`,
  setProgress: `UPDATE jobs SET progress_fraction = ?, progress_message = ?, last_event_seq = ? WHERE org_id = ? AND job_id = ?`,
  addPartial: `UPDATE jobs SET result_id = ?, partial_count = ?, last_event_seq = ? WHERE org_id = ? AND job_id = ?`,
  fail: `UPDATE jobs SET status = 'failed', error = ?, finished_at = ?,
      lease_token = NULL, lease_expires_at = NULL, last_event_seq = ? WHERE org_id = ? AND job_id = ?`,
  cancel: `UPDATE jobs SET status = 'canceled', finished_at = ?, cancel_requested_at = ?,
      lease_token = NULL, lease_expires_at = NULL, last_event_seq = ? WHERE org_id = ? AND job_id = ?`,
  requeue: `UPDATE jobs SET status = 'queued', attempt = ?, run_at = ?, error = ?,
      lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, last_event_seq = ? WHERE org_id = ? AND job_id = ?`,
  markCancelRequested: `UPDATE jobs SET cancel_requested_at = ?, last_event_seq = ? WHERE org_id = ? AND job_id = ?`,
  insertEvent: `INSERT INTO job_events (job_id, event_seq, org_id, type, status, payload, occurred_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)`,

  resultByChunk: `SELECT * FROM job_results WHERE job_id = ? AND chunk_key = ?`,
  insertResult: `INSERT INTO job_results (result_id, job_id, org_id, kind, chunk_key, seq, payload, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,

  listEvents: `SELECT * FROM job_events WHERE job_id = ? AND org_id = ? AND event_seq > ? ORDER BY event_seq LIMIT ?`,
  // A rowid range (position is the rowid), filtered by org: bounded by the window.
  listOrgEvents: `SELECT * FROM job_events WHERE position > ? AND position <= ? AND org_id = ? ORDER BY position LIMIT ?`,
  listResults: `SELECT * FROM job_results WHERE job_id = ? AND org_id = ? ORDER BY seq`,
  resultByOrg: `SELECT * FROM job_results WHERE result_id = ? AND org_id = ?`,
  latestResult: `SELECT * FROM job_results WHERE job_id = ? AND org_id = ? ORDER BY kind = 'final' DESC, seq DESC LIMIT 1`,
  removedResult: `SELECT * FROM removed_results WHERE result_id = ? AND org_id = ?`,

  // Loose index scan over jobs_claim: one index seek per distinct org, however long the backlog.
  readyOrgs: `WITH RECURSIVE ready(org_id) AS (
      SELECT (SELECT org_id FROM jobs WHERE status = 'queued' AND run_at <= @now ORDER BY org_id LIMIT 1)
      UNION ALL
      SELECT (SELECT j.org_id FROM jobs j WHERE j.status = 'queued' AND j.org_id > ready.org_id AND j.run_at <= @now
              ORDER BY j.org_id LIMIT 1)
      FROM ready WHERE ready.org_id IS NOT NULL)
    SELECT org_id FROM ready WHERE org_id IS NOT NULL`,
  readyOrgsFiltered: `WITH RECURSIVE ready(org_id) AS (
      SELECT (SELECT org_id FROM jobs WHERE status = 'queued' AND run_at <= @now
              AND analyzer IN (SELECT value FROM json_each(@analyzers)) ORDER BY org_id LIMIT 1)
      UNION ALL
      SELECT (SELECT j.org_id FROM jobs j WHERE j.status = 'queued' AND j.org_id > ready.org_id AND j.run_at <= @now
              AND j.analyzer IN (SELECT value FROM json_each(@analyzers)) ORDER BY j.org_id LIMIT 1)
      FROM ready WHERE ready.org_id IS NOT NULL)
    SELECT org_id FROM ready WHERE org_id IS NOT NULL`,
  // INDEXED BY: the primary key is ordered by org_id too, but holds the whole history.
  runningCounts: `SELECT org_id, COUNT(*) AS n FROM jobs INDEXED BY jobs_running WHERE status = 'running' GROUP BY org_id`,
  queueStats: `SELECT (SELECT COUNT(*) FROM jobs WHERE status = 'queued') AS queued,
      (SELECT COUNT(*) FROM jobs WHERE status = 'running') AS running,
      (SELECT MIN(run_at) FROM jobs WHERE status = 'queued' AND run_at <= ?) AS oldest`,

  insertApiKey: `INSERT INTO api_keys (key_id, org_id, hash, label, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)`,
  apiKeyByHash: `SELECT * FROM api_keys WHERE hash = ?`,
  revokeApiKey: `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE key_id = ?`,
  listApiKeys: `SELECT * FROM api_keys ORDER BY created_at, key_id`,
  listApiKeysByOrg: `SELECT * FROM api_keys WHERE org_id = ? ORDER BY created_at, key_id`,
} as const;

export interface ListParams {
  org: string;
  status?: string;
  before: string;
  analyzer: string | null;
  createdAfter: number | null;
  createdBefore: number | null;
  limit: number;
}

type S<P extends unknown[] | object, R = unknown> = Statement<P extends unknown[] ? P : [P], R>;

type Raw<P extends unknown[] | object> = S<P, unknown[]>;
/** (org_id, job_id): the primary key of jobs. */
type Key = [orgId: string, jobId: string];

export interface Queries {
  jobByOrg: Raw<[string, string]>;
  jobByIdempotencyKey: Raw<[string, string]>;
  claimable: Raw<[string, number, number]>;
  claimableFiltered: Raw<[string, number, string, number]>;
  expiredLeases: Raw<[number, number]>;
  staleCancels: Raw<[number, number]>;
  leaseRow: Raw<Key>;
  listJobs: Raw<ListParams>;
  listQueued: Raw<ListParams>;
  listRunning: Raw<ListParams>;
  listCompleted: Raw<ListParams>;
  listUnsuccessful: Raw<ListParams>;

  insertJob: S<[string, string, string, string, number, number, string | null, string | null, number, number, string | null]>;
  complete: S<[string, number, number, rowid: number]>;
  markRunning: S<[string, number, string, number, number, rowid: number]>;
  extendLease: S<[number, ...Key]>;
  setProgress: S<[number, string | null, number, ...Key]>;
  addPartial: S<[string, number, number, ...Key]>;
  fail: S<[string, number, number, ...Key]>;
  cancel: S<[number, number, number, ...Key]>;
  requeue: S<[number, number, string | null, number, ...Key]>;
  markCancelRequested: S<[number, number, ...Key]>;
  insertEvent: S<[string, number, string, string, string, string, number]>;
  resultByChunk: S<[string, string], ResultRow>;
  insertResult: S<[string, string, string, string, string | null, number, string, number]>;
  listEvents: S<[string, string, number, number], EventRow>;
  listOrgEvents: S<[number, number, string, number], EventRow>;
  listResults: S<[string, string], ResultRow>;
  resultByOrg: S<[string, string], ResultRow>;
  latestResult: S<[string, string], ResultRow>;
  removedResult: S<[string, string], RemovedResultRow>;
  readyOrgs: S<{ now: number }, { org_id: string }>;
  readyOrgsFiltered: S<{ now: number; analyzers: string }, { org_id: string }>;
  runningCounts: S<[], { org_id: string; n: number }>;
  queueStats: S<[number], { queued: number; running: number; oldest: number | null }>;
  insertApiKey: S<[string, string, string, string | null, number, number | null]>;
  apiKeyByHash: S<[string], ApiKeyRow>;
  revokeApiKey: S<[number, string]>;
  listApiKeys: S<[], ApiKeyRow>;
  listApiKeysByOrg: S<[string], ApiKeyRow>;
  /** Outbox, inbox and webhook statements (sqliteDeliveryQueries.ts). */
  delivery: DeliveryQueries;
  /** How terminal writes deliver the in-app notification (the store's creation option). */
  inAppDelivery: InAppDelivery;
}

/** Every statement's SQL by name (tests check the query plans of the hot ones). */
export const QUERY_SQL: Readonly<Record<string, string>> = { ...RAW_JOB_SQL, ...SQL };

export function prepareQueries(db: Database, inAppDelivery: InAppDelivery): Queries {
  const out: Record<string, Statement<unknown[]>> = {};
  for (const [name, sql] of Object.entries(RAW_JOB_SQL)) out[name] = db.prepare(sql).raw(true);
  for (const [name, sql] of Object.entries(SQL)) out[name] = db.prepare(sql);
  return { ...(out as unknown as Omit<Queries, 'delivery' | 'inAppDelivery'>), delivery: prepareDeliveryQueries(db), inAppDelivery };
}
