import type { JobEvent, JobEventType } from '../../../core/events.js';
import { asJobId, asOrgId, asResultId } from '../../../core/ids.js';
import type { ClaimedJob, Job, JobError, JobResult, Json, RemovedResult, ResultKind } from '../../../core/job.js';
import type { JobStatus } from '../../../core/jobState.js';
import type { ApiKeyRecord } from '../../../ports/jobStore.js';

/** A jobs row as pg returns it: jsonb parsed, bigint as number (see postgresConnection). */
export interface JobRow {
  job_id: string;
  org_id: string;
  analyzer: string;
  input: Json;
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
  error: JobError | null;
  trace_context: string | null;
  lease_token: string | null;
  lease_expires_at: number | null;
  worker_id: string | null;
  last_event_seq: number;
}

export const JOB_COLUMNS = [
  'job_id', 'org_id', 'analyzer', 'input', 'status', 'attempt', 'max_attempts', 'priority', 'idempotency_key',
  'request_hash', 'progress_fraction', 'progress_message', 'created_at', 'run_at', 'started_at', 'finished_at',
  'cancel_requested_at', 'result_id', 'partial_count', 'error', 'trace_context', 'lease_token', 'lease_expires_at',
  'worker_id', 'last_event_seq',
] as const satisfies ReadonlyArray<keyof JobRow>;

/** `j.job_id, j.org_id, …` for a given table alias. */
export const jobCols = (alias?: string): string => JOB_COLUMNS.map((c) => (alias ? `${alias}.${c}` : c)).join(', ');

export interface EventRow {
  position: number;
  job_id: string;
  event_seq: number;
  org_id: string;
  type: JobEventType;
  status: JobStatus;
  payload: Json;
  occurred_at: number;
}

export interface ResultRow {
  result_id: string;
  job_id: string;
  org_id: string;
  kind: ResultKind;
  chunk_key: string | null;
  seq: number;
  payload: Json;
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

/** JSON text for a jsonb parameter (never let pg turn a JS array into a Postgres array). */
export const toJsonText = (v: Json): string => JSON.stringify(v) ?? 'null';

export function toJob(r: JobRow): Job {
  return {
    jobId: asJobId(r.job_id),
    orgId: asOrgId(r.org_id),
    analyzer: r.analyzer,
    input: r.input,
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
    error: r.error === null ? null : { code: r.error.code, message: r.error.message },
    traceContext: r.trace_context,
  };
}

export function toClaimedJob(r: JobRow): ClaimedJob {
  return { ...toJob(r), status: 'running', leaseToken: r.lease_token ?? '', leaseExpiresAt: r.lease_expires_at ?? 0, workerId: r.worker_id ?? '' };
}

export function toEvent(r: EventRow): JobEvent {
  return {
    jobId: asJobId(r.job_id),
    orgId: asOrgId(r.org_id),
    eventSeq: r.event_seq,
    type: r.type,
    status: r.status,
    payload: r.payload,
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
    payload: r.payload,
    createdAt: r.created_at,
  };
}

export function toRemovedResult(r: RemovedResultRow): RemovedResult {
  return { resultId: asResultId(r.result_id), jobId: asJobId(r.job_id), orgId: asOrgId(r.org_id), removedAt: r.removed_at };
}

export function toApiKey(r: ApiKeyRow): ApiKeyRecord {
  return { keyId: r.key_id, orgId: asOrgId(r.org_id), hash: r.hash, label: r.label, createdAt: r.created_at, revokedAt: r.revoked_at };
}
