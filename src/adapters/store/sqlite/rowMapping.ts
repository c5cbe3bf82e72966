import type { JobError, Json } from '../../../core/job.js';
import type { JobStatus } from '../../../core/jobState.js';
import { JOB_COLUMNS, rowMappers, type EventRowOf, type JobRowOf, type ResultRowOf } from '../storeRows.js';

export { JOB_COLUMNS, toApiKey, toRemovedResult, type ApiKeyRow, type RemovedResultRow } from '../storeRows.js';

/** Rows exactly as SQLite returns them (snake_case, JSON as text). */
export type JobRow = JobRowOf<string, string>;
export type EventRow = EventRowOf<string>;
export type ResultRow = ResultRowOf<string>;

/**
 * Job rows are read in raw (array) mode with the fixed column list JOB_COLUMNS and turned into
 * objects here: measurably cheaper than better-sqlite3 building a 25-property object per row,
 * and every writer reads a full row first.
 */
export const JOB_COLUMN_LIST = JOB_COLUMNS.join(', ');

/** Inverse of JOB_COLUMNS: one raw row → JobRow (undefined passes through). */
export function jobRowOf(v: unknown[] | undefined): JobRow | undefined {
  if (v === undefined) return undefined;
  return {
    job_id: v[0] as string,
    org_id: v[1] as string,
    analyzer: v[2] as string,
    input: v[3] as string,
    status: v[4] as JobStatus,
    attempt: v[5] as number,
    max_attempts: v[6] as number,
    priority: v[7] as number,
    idempotency_key: v[8] as string | null,
    request_hash: v[9] as string | null,
    progress_fraction: v[10] as number,
    progress_message: v[11] as string | null,
    created_at: v[12] as number,
    run_at: v[13] as number,
    started_at: v[14] as number | null,
    finished_at: v[15] as number | null,
    cancel_requested_at: v[16] as number | null,
    result_id: v[17] as string | null,
    partial_count: v[18] as number,
    error: v[19] as string | null,
    trace_context: v[20] as string | null,
    lease_token: v[21] as string | null,
    lease_expires_at: v[22] as number | null,
    worker_id: v[23] as string | null,
    last_event_seq: v[24] as number,
  };
}

export const jobRowsOf = (rows: unknown[][]): JobRow[] => rows.map((v) => jobRowOf(v) as JobRow);

export const toJson = (v: Json): string => JSON.stringify(v) ?? 'null';
const parseJson = (text: string): Json => JSON.parse(text) as Json;

export const { toJob, toClaimedJob, toEvent, toResult } = rowMappers<string, string>(parseJson, (e) => JSON.parse(e) as JobError);
