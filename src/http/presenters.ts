import type { JobEvent } from '../core/events.js';
import type { Job, JobResult } from '../core/job.js';
import type { Permalink } from '../app/jobService.js';
import type { EventJson, JobJson, ResultJson, SubmitAccepted } from './schemas.js';

/** Domain objects → snake_case JSON of the HTTP contract (timestamps ISO-8601 or null). */

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

export const jobUrl = (jobId: string): string => `/analyze/jobs/${jobId}`;

export function jobLinks(jobId: string) {
  const base = jobUrl(jobId);
  return { status_url: base, events_url: `${base}/events`, stream_url: `${base}/stream`, results_url: `${base}/results` };
}

export function toJobJson(job: Job): JobJson {
  return {
    job_id: job.jobId,
    analyzer: job.analyzer,
    status: job.status,
    attempt: job.attempt,
    max_attempts: job.maxAttempts,
    priority: job.priority,
    progress: { fraction: job.progress.fraction, message: job.progress.message },
    idempotency_key: job.idempotencyKey,
    created_at: iso(job.createdAt),
    started_at: isoOrNull(job.startedAt),
    finished_at: isoOrNull(job.finishedAt),
    cancel_requested_at: isoOrNull(job.cancelRequestedAt),
    result_id: job.resultId,
    partial_count: job.partialCount,
    error: job.error === null ? null : { code: job.error.code, message: job.error.message },
    ...jobLinks(job.jobId),
  };
}

export function toAccepted(job: Job): SubmitAccepted {
  const { status_url, events_url, stream_url } = jobLinks(job.jobId);
  return { job_id: job.jobId, status: job.status, status_url, events_url, stream_url };
}

/** State-based, so a repeated cancel answers exactly what the first one did. */
export function cancelState(job: Job): 'canceled' | 'requested' | 'noop' {
  if (job.status === 'canceled') return 'canceled';
  if (job.status === 'running' || (job.status === 'queued' && job.cancelRequestedAt !== null)) return 'requested';
  return 'noop';
}

export function toEventJson(e: JobEvent): EventJson {
  return {
    job_id: e.jobId,
    event_seq: e.eventSeq,
    type: e.type,
    status: e.status,
    payload: e.payload,
    occurred_at: iso(e.occurredAt),
    position: e.position,
  };
}

export function toResultJson(r: JobResult): ResultJson {
  return { result_id: r.resultId, kind: r.kind, chunk_key: r.chunkKey, seq: r.seq, payload: r.payload, created_at: iso(r.createdAt) };
}

export function toPermalinkJson(p: Permalink) {
  return {
    result_id: p.resultId,
    requested_result_id: p.requestedResultId,
    projection_mode: p.projectionMode,
    job_id: p.result.jobId,
    kind: p.result.kind,
    chunk_key: p.result.chunkKey,
    seq: p.result.seq,
    payload: p.result.payload,
    created_at: iso(p.result.createdAt),
    job_status: p.job.status,
  };
}
