import type { JobId, OrgId } from './ids.js';
import type { Json } from './job.js';
import type { JobStatus } from './jobState.js';

export const EVENT_TYPES = [
  'job.queued',
  'job.started',
  'job.progress',
  'job.partial',
  'job.retrying',
  'job.cancel_requested',
  'job.completed',
  'job.failed',
  'job.canceled',
] as const;
export type JobEventType = (typeof EVENT_TYPES)[number];

/**
 * One entry of a job's append-only event log. `eventSeq` is 1-based and gap-free per job;
 * `position` is a global order over all events of the store (commit order).
 */
export interface JobEvent {
  readonly jobId: JobId;
  readonly orgId: OrgId;
  readonly eventSeq: number;
  readonly type: JobEventType;
  /** The job status after this event. */
  readonly status: JobStatus;
  readonly payload: Json;
  readonly occurredAt: number;
  readonly position: number;
}

export const TERMINAL_EVENT_TYPES: readonly JobEventType[] = ['job.completed', 'job.failed', 'job.canceled'];

export const isTerminalEvent = (t: JobEventType): boolean => TERMINAL_EVENT_TYPES.includes(t);
