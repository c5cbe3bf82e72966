import type { OrgId } from '../core/ids.js';
import type { JobFacts, ProjectionCheckpoint, ProjectionEvent, ProjectionName, SeedJob } from '../core/projection.js';

/**
 * Storage of event-sourced read models (SPEC §5): reading the global event stream after a
 * position, and storing projection states (one JSON text per org) with the projection's
 * checkpoint. Implemented by every store adapter beside JobStore (tables `projection_offsets`
 * and `projection_states`); `test/contracts/projectionStore.contract.ts` runs against each.
 *
 * Guarantees:
 * - `commitProjection` writes the states and the checkpoint in one transaction, and only if the
 *   checkpoint's version is still the one the caller read (compare-and-set): a runner that crashed,
 *   was stopped or raced another runner or a rebuild never applies an event twice — its commit
 *   fails with PROJECTION_CONFLICT and changes nothing.
 * - event reads see only committed events, in position order, and never skip a position that
 *   commits later (positions are commit order in both stores; docs/postgres.md).
 * - tenant reads (`readTenantProjection`, `scanTenantJobs`) are bound to one org (RLS on
 *   PostgreSQL); everything else is cross-tenant internals.
 * Failures are UpshiftErrors (`STORE_UNAVAILABLE`, `PROJECTION_CONFLICT`, ...).
 */
export interface ProjectionStore {
  /** The highest committed event position (0 for an empty log). */
  headPosition(): Promise<number>;

  /**
   * The highest event position retention ever deleted (0: none; never decreases; written in the
   * transaction of the deletes). A projection whose checkpoint is below it may have missed events.
   */
  eventsDeletedThrough(): Promise<number>;

  /** The projection's checkpoint; a projection that never committed is at position 0, version 0. */
  readCheckpoint(name: ProjectionName): Promise<ProjectionCheckpoint>;

  /**
   * Up to `limit` events with `position > after`, ascending, with their job's immutable facts.
   * `orphan` is always false here: the live runner reads events long before retention may delete
   * any of their job (only snapshots check it, see scanProjectionSnapshot).
   */
  readProjectionEvents(after: number, limit: number): Promise<ProjectionEvent[]>;

  /** The stored states of these orgs (an org without a state is absent from the map). */
  readStates(name: ProjectionName, orgs: readonly OrgId[]): Promise<Map<OrgId, string>>;

  /**
   * One atomic transaction: if the checkpoint's version is still `expectedVersion`, (with
   * `replaceAll`) deletes every state of the projection, upserts `states`, and sets the checkpoint
   * to `position`, version + 1 and the lease; otherwise throws PROJECTION_CONFLICT and writes nothing.
   */
  commitProjection(cmd: ProjectionCommit): Promise<ProjectionCheckpoint>;

  /**
   * Tenant-bound: one org's state (null: none yet), the checkpoint, and how many of the org's
   * events lie after the checkpoint (counted up to `maxPending`: the count reads only the
   * unapplied part of the log, and at most that many rows of it).
   */
  readTenantProjection(name: ProjectionName, orgId: OrgId, maxPending: number): Promise<{ state: string | null; checkpoint: ProjectionCheckpoint; pendingEvents: number }>;

  /**
   * Reads a consistent snapshot (one read transaction: REPEATABLE READ on PostgreSQL, one SQLite
   * read transaction) and hands it to `visit` in pages, in this order: states, seed jobs, events
   * (ascending position, up to the head or the checkpoint position of the same snapshot; an event
   * of a job whose log no longer starts at event_seq 1 is marked `orphan` — that job is a seed job),
   * source jobs. Only the parts with a visitor are read. `orgId` limits every part to one org.
   */
  scanProjectionSnapshot(req: SnapshotRequest, visit: SnapshotVisitor): Promise<{ head: number; checkpoint: ProjectionCheckpoint }>;

  /** Tenant-bound: every job row of the org as facts, in pages (the source-table computation). */
  scanTenantJobs(orgId: OrgId, visit: (jobs: readonly JobFacts[]) => void): Promise<void>;
}

export interface ProjectionCommit {
  readonly name: ProjectionName;
  readonly expectedVersion: number;
  readonly position: number;
  readonly states: readonly { readonly orgId: OrgId; readonly state: string }[];
  /** Delete every state of the projection first (a full rebuild). */
  readonly replaceAll: boolean;
  readonly leaseOwner: string;
  readonly leaseExpiresAt: number;
  readonly now: number;
  /**
   * A batch commit: the checkpoint position its events were read after. Refused with
   * PROJECTION_CONFLICT, writing nothing, when retention has deleted an event after it since
   * (eventsDeletedThrough > readFrom): the batch may lack events it should have applied.
   */
  readonly readFrom?: number;
}

export interface SnapshotRequest {
  readonly name: ProjectionName;
  readonly orgId: OrgId | null;
  /** Events up to the snapshot's head, or up to the snapshot's checkpoint position. */
  readonly eventsUpTo: 'head' | 'checkpoint';
}

export interface SnapshotVisitor {
  /** The orgs with events after the snapshot's checkpoint (not yet applied), read first. */
  pendingOrgs?(orgs: ReadonlySet<OrgId>): void;
  states?(states: ReadonlyMap<OrgId, string>): void;
  seed?(jobs: readonly SeedJob[]): void;
  events?(events: readonly ProjectionEvent[]): void;
  jobs?(jobs: readonly JobFacts[]): void;
}
