import type { JobEventType } from './events.js';
import type { JobId, OrgId } from './ids.js';
import type { JobStatus, TerminalStatus } from './jobState.js';

/**
 * Event-sourced read models (SPEC §5).
 *
 * Glossary:
 * - projection: a named read model folded from the global event stream in `position` order,
 *   one state per org (`(state, event) → state`, pure, in core).
 * - checkpoint: the position of the last event a projection applied plus a `version` that every
 *   write of the projection bumps; a batch commits its states and the new checkpoint in one
 *   transaction only if the version it read is still current (compare-and-set), so an event is
 *   applied exactly once whatever crashes, restarts or concurrent runners happen.
 * - head: the highest committed position of the store.
 * - lag: head − checkpoint position (events not yet applied).
 * - seed job: a terminal job whose event log retention (partly) removed: a rebuild counts it
 *   from its job row instead of its events (see docs/projections.md "Retention").
 */

/**
 * One event as projections see it: the event's identity and type, plus the job row's
 * immutable facts. `analyzer` never changes; for terminal events the row is terminal too and
 * therefore immutable, so `startedAt`/`finishedAt` are the final values whenever the event is
 * read (replays read the same values).
 */
export interface ProjectionEvent {
  readonly position: number;
  readonly orgId: OrgId;
  readonly jobId: JobId;
  readonly eventSeq: number;
  readonly type: JobEventType;
  readonly occurredAt: number;
  readonly analyzer: string;
  /** Terminal events: the start of the final attempt (null: never started). Otherwise null. */
  readonly startedAt: number | null;
  /** Terminal events: the job's finished_at. Otherwise null. */
  readonly finishedAt: number | null;
  /** job.canceled: `payload.reason` (`cancel_before_start` = canceled while queued). Otherwise null. */
  readonly cancelReason: string | null;
  /**
   * The job's log no longer starts at event_seq 1: retention is deleting (or deleted) its
   * beginning. Such a job is terminal; folds skip its events and a rebuild counts it from its row
   * (seed job) instead, so a half-deleted log never counts a job twice or half.
   */
  readonly orphan: boolean;
}

/** A job as its row says (the source of verify, of the flag-off path and of rebuild seeds). */
export interface JobFacts {
  readonly orgId: OrgId;
  readonly jobId: JobId;
  readonly analyzer: string;
  readonly status: JobStatus;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
}

export interface SeedJob extends JobFacts {
  readonly status: TerminalStatus;
}

export interface ProjectionCheckpoint {
  /** Position of the last applied event (0: none yet). */
  readonly position: number;
  /** Bumped by every write of the projection (batch commit, rebuild). */
  readonly version: number;
  /** The runner holding the lease (null: none yet), and until when (epoch ms). */
  readonly leaseOwner: string | null;
  readonly leaseExpiresAt: number;
  readonly updatedAt: number | null;
}

/** A projection definition: its name and fold. States travel as JSON text. */
export interface Projection<S> {
  readonly name: ProjectionName;
  initial(): S;
  /** Applies one event of the state's org (pure). */
  apply(state: S, event: ProjectionEvent): S;
  /** Applies events of the state's org in order; equal to folding `apply` (pure, one copy). */
  applyAll(state: S, events: readonly ProjectionEvent[]): S;
  /** Counts a seed job (pure), as if its whole event log had been applied. */
  seed(state: S, job: SeedJob): S;
  /** Counts seed jobs; equal to folding `seed`. */
  seedAll(state: S, jobs: readonly SeedJob[]): S;
  encode(state: S): string;
  decode(text: string): S;
}

export const PROJECTION_NAMES = ['dashboard_stats'] as const;
export type ProjectionName = (typeof PROJECTION_NAMES)[number];
export const isProjectionName = (s: unknown): s is ProjectionName => typeof s === 'string' && (PROJECTION_NAMES as readonly string[]).includes(s);
