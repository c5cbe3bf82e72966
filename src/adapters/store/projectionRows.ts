import { UpshiftError } from '../../core/errors.js';
import { asJobId, asOrgId } from '../../core/ids.js';
import type { JobEventType } from '../../core/events.js';
import type { JobStatus } from '../../core/jobState.js';
import type { JobFacts, ProjectionCheckpoint, ProjectionEvent } from '../../core/projection.js';
import type { ProjectionCommit } from '../../ports/projectionStore.js';

/** Rows of the projection queries, shared by the SQLite and PostgreSQL adapters (same column names). */
export interface EventRow {
  position: number;
  org_id: string;
  job_id: string;
  event_seq: number;
  type: JobEventType;
  occurred_at: number;
  analyzer: string;
  cancel_reason: string | null;
  started_at: number | null;
  finished_at: number | null;
  orphan: number | boolean;
}

export interface FactsRow {
  org_id: string;
  job_id: string;
  analyzer: string;
  status: JobStatus;
  started_at: number | null;
  finished_at: number | null;
}

export interface CheckpointRow {
  position: number;
  version: number;
  lease_owner: string | null;
  lease_expires_at: number;
  updated_at: number | null;
}

export const NO_CHECKPOINT: ProjectionCheckpoint = { position: 0, version: 0, leaseOwner: null, leaseExpiresAt: 0, updatedAt: null };

export const toProjectionEvent = (r: EventRow): ProjectionEvent => ({
  position: Number(r.position),
  orgId: asOrgId(r.org_id),
  jobId: asJobId(r.job_id),
  eventSeq: r.event_seq,
  type: r.type,
  occurredAt: Number(r.occurred_at),
  analyzer: r.analyzer,
  startedAt: r.started_at === null ? null : Number(r.started_at),
  finishedAt: r.finished_at === null ? null : Number(r.finished_at),
  cancelReason: typeof r.cancel_reason === 'string' ? r.cancel_reason : null,
  orphan: r.orphan === true || r.orphan === 1,
});

export const toFacts = (r: FactsRow): JobFacts => ({
  orgId: asOrgId(r.org_id),
  jobId: asJobId(r.job_id),
  analyzer: r.analyzer,
  status: r.status,
  startedAt: r.started_at === null ? null : Number(r.started_at),
  finishedAt: r.finished_at === null ? null : Number(r.finished_at),
});

export const toCheckpoint = (r: CheckpointRow | undefined): ProjectionCheckpoint =>
  r === undefined
    ? NO_CHECKPOINT
    : { position: Number(r.position), version: Number(r.version), leaseOwner: r.lease_owner, leaseExpiresAt: Number(r.lease_expires_at), updatedAt: r.updated_at === null ? null : Number(r.updated_at) };


/**
 * A batch read after `cmd.readFrom` cannot commit once retention deleted an event after that
 * position (`deletedThrough`, the store's watermark): the batch may lack events it should have
 * applied. PROJECTION_CONFLICT, like a moved checkpoint: the runner reads again, sees the
 * watermark above its checkpoint and rebuilds (ProjectionRunner.step).
 */
export function refuseAfterRetention(cmd: ProjectionCommit, deletedThrough: number): void {
  if (cmd.readFrom === undefined || deletedThrough <= cmd.readFrom) return;
  throw new UpshiftError('PROJECTION_CONFLICT', `projection ${cmd.name}: retention deleted events up to position ${deletedThrough}, after the batch's start ${cmd.readFrom}; rebuild`, {
    details: { projection: cmd.name },
  });
}
