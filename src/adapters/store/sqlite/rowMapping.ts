import type { JobEvent, JobEventType } from '../../../core/events.js';
import { asJobId, asOrgId, asResultId } from '../../../core/ids.js';
import type { ClaimedJob, Job, JobError, JobResult, Json, RemovedResult, ResultKind } from '../../../core/job.js';
import type { JobStatus } from '../../../core/jobState.js';
import type { ApiKeyRecord } from '../../../ports/jobStore.js';

/** Rows exactly as SQLite returns them (snake_case, JSON as text). */
export interface JobRow {
  job_id: string;
  org_id: string;
  analyzer: string;
  input: string;
  status: JobStatus;
  attempt: number;
  max_attempts: number;
  priority: number;
  idempotency_key: string | null;
  request_hash: string | null;
  progress_fraction: number;
  progress_message: string | null;
  created_at: number;
  run_at: number;
  started_at: number | null;
  finished_at: number | null;
  cancel_requested_at: number | null;
  result_id: string | null;
  partial_count: number;
  error: string | null;
  trace_context: string | null;
  lease_token: string | null;
  lease_expires_at: number | null;
  worker_id: string | null;
  last_event_seq: number;
}

/**
 * Job rows are read in raw (array) mode with this fixed column list and turned into objects
 * here: measurably cheaper than better-sqlite3 building a 25-property object per row, and
 * every writer reads a full row first.
 */
export const JOB_COLUMNS = [
  'job_id', 'org_id', 'analyzer', 'input', 'status', 'attempt', 'max_attempts', 'priority', 'idempotency_key',
  'request_hash', 'progress_fraction', 'progress_message', 'created_at', 'run_at', 'started_at', 'finished_at',
  'cancel_requested_at', 'result_id', 'partial_count', 'error', 'trace_context', 'lease_token', 'lease_expires_at',
  'worker_id', 'last_event_seq',
] as const satisfies ReadonlyArray<keyof JobRow>;

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

export interface EventRow {
  position: number;
  job_id: string;
  event_seq: number;
  org_id: string;
  type: JobEventType;
  status: JobStatus;
  payload: string;
  occurred_at: number;
}

export interface ResultRow {
  result_id: string;
  job_id: string;
  org_id: string;
  kind: ResultKind;
  chunk_key: string | null;
  seq: number;
  payload: string;
  created_at: number;
}

export interface RemovedResultRow {
  result_id: string;
  job_id: string;
  org_id: string;
  removed_at: number;
}

export interface ApiKeyRow {
  key_id: string;
  org_id: string;
  hash: string;
  label: string | null;
  created_at: number;
  revoked_at: number | null;
}

export const toJson = (v: Json): string => JSON.stringify(v) ?? 'null';
const parseJson = (text: string): Json => JSON.parse(text) as Json;

export function toJob(r: JobRow): Job {
  return {
    jobId: asJobId(r.job_id),
    orgId: asOrgId(r.org_id),
    analyzer: r.analyzer,
    input: parseJson(r.input),
    status: r.status,
    attempt: r.attempt,
    maxAttempts: r.max_attempts,
    priority: r.priority,
    idempotencyKey: r.idempotency_key,
    progress: { fraction: r.progress_fraction, message: r.progress_message },
    createdAt: r.created_at,
    runAt: r.run_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    cancelRequestedAt: r.cancel_requested_at,
    resultId: r.result_id === null ? null : asResultId(r.result_id),
    partialCount: r.partial_count,
    error: r.error === null ? null : (JSON.parse(r.error) as JobError),
    traceContext: r.trace_context,
  };
}

/**
 * A running row with its lease; only valid for rows the caller just claimed or checked.
 * Spelled out rather than spread from toJob: this runs for every claimed job.
 */
export function toClaimedJob(r: JobRow): ClaimedJob {
  return {
    jobId: asJobId(r.job_id),
    orgId: asOrgId(r.org_id),
    analyzer: r.analyzer,
    input: parseJson(r.input),
    status: 'running',
    attempt: r.attempt,
    maxAttempts: r.max_attempts,
    priority: r.priority,
    idempotencyKey: r.idempotency_key,
    progress: { fraction: r.progress_fraction, message: r.progress_message },
    createdAt: r.created_at,
    runAt: r.run_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    cancelRequestedAt: r.cancel_requested_at,
    resultId: r.result_id === null ? null : asResultId(r.result_id),
    partialCount: r.partial_count,
    error: r.error === null ? null : (JSON.parse(r.error) as JobError),
    traceContext: r.trace_context,
    leaseToken: r.lease_token ?? '',
    leaseExpiresAt: r.lease_expires_at ?? 0,
    workerId: r.worker_id ?? '',
  };
}

export function toEvent(r: EventRow): JobEvent {
  return {
    jobId: asJobId(r.job_id),
    orgId: asOrgId(r.org_id),
    eventSeq: r.event_seq,
    type: r.type,
    status: r.status,
    payload: parseJson(r.payload),
    occurredAt: r.occurred_at,
    position: r.position,
  };
}

export function toResult(r: ResultRow): JobResult {
  return {
    resultId: asResultId(r.result_id),
    jobId: asJobId(r.job_id),
    orgId: asOrgId(r.org_id),
    kind: r.kind,
    chunkKey: r.chunk_key,
    seq: r.seq,
    payload: parseJson(r.payload),
    createdAt: r.created_at,
  };
}

export function toRemovedResult(r: RemovedResultRow): RemovedResult {
  return { resultId: asResultId(r.result_id), jobId: asJobId(r.job_id), orgId: asOrgId(r.org_id), removedAt: r.removed_at };
}

export function toApiKey(r: ApiKeyRow): ApiKeyRecord {
  return { keyId: r.key_id, orgId: asOrgId(r.org_id), hash: r.hash, label: r.label, createdAt: r.created_at, revokedAt: r.revoked_at };
}
