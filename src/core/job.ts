import type { JobId, OrgId, ResultId } from './ids.js';
import type { JobStatus } from './jobState.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface JobError {
  readonly code: string;
  readonly message: string;
}

export interface JobProgress {
  /** 0..1 */
  readonly fraction: number;
  readonly message: string | null;
}

/** A job as stored. Timestamps are epoch milliseconds. */
export interface Job {
  readonly jobId: JobId;
  readonly orgId: OrgId;
  readonly analyzer: string;
  readonly input: Json;
  readonly status: JobStatus;
  /** 1-based number of the current (or next) attempt. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** Higher runs first within one org. */
  readonly priority: number;
  readonly idempotencyKey: string | null;
  readonly progress: JobProgress;
  readonly createdAt: number;
  /** Earliest time a queued job may be claimed (backoff). */
  readonly runAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  readonly cancelRequestedAt: number | null;
  /** Latest result (final if any, else newest partial). */
  readonly resultId: ResultId | null;
  readonly partialCount: number;
  readonly error: JobError | null;
  /** Carrier for trace context (W3C traceparent) so the worker span joins the submit trace. */
  readonly traceContext: string | null;
}

/** A job handed to a worker, with the lease that authorises its writes. */
export interface ClaimedJob extends Job {
  readonly status: 'running';
  readonly leaseToken: string;
  readonly leaseExpiresAt: number;
  readonly workerId: string;
}

/** The fencing triple every worker-side write must present. */
export interface LeaseRef {
  readonly orgId: OrgId;
  readonly jobId: JobId;
  readonly attempt: number;
  readonly leaseToken: string;
}

export type ResultKind = 'partial' | 'final';

export interface JobResult {
  readonly resultId: ResultId;
  readonly jobId: JobId;
  readonly orgId: OrgId;
  readonly kind: ResultKind;
  /** Partial chunk key; `null` for the final result. */
  readonly chunkKey: string | null;
  /** 1-based order of results within the job. */
  readonly seq: number;
  readonly payload: Json;
  readonly createdAt: number;
}

/** A result id that retention removed: the permalink answers 410 to its own tenant. */
export interface RemovedResult {
  readonly resultId: ResultId;
  readonly jobId: JobId;
  readonly orgId: OrgId;
  readonly removedAt: number;
}
