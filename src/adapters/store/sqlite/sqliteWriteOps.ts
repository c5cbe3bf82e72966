import type { Database } from 'better-sqlite3';
import type { JobId, OrgId } from '../../../core/ids.js';
import type { Json, LeaseRef } from '../../../core/job.js';
import type { InAppDelivery } from '../../../ports/deliveryStore.js';
import type { ApiKeyRecord, ClaimByIdCommand, ClaimCommand, FinishOutcome, HeartbeatCommand, SubmitJobCommand } from '../../../ports/jobStore.js';
import type { ProjectionCommit } from '../../../ports/projectionStore.js';
import type { PurgeCommand } from '../../../ports/retentionStore.js';
import { DELIVERY_WRITES } from './sqliteDeliveryStore.js';
import type { WriteOp } from './sqliteGroupCommit.js';
import { recoverExpiredLeasesOp, requestCancelOp, submitOp } from './sqliteJobWrites.js';
import { claimByIdOp, claimOp, finishOp, heartbeatOp, partialOp, progressOp } from './sqliteLeaseWrites.js';
import { prepareQueries, type Queries } from './sqliteQueries.js';
import { prepareProjectionWrites, projectionCommitOp, type ProjectionWriteQueries } from './sqliteProjections.js';
import { prepareRetentionQueries, purgeOp, type RetentionQueries } from './sqliteRetention.js';

/** The prepared statements of the connection that writes (prepared lazily: tables exist only after migrate). */
export class WriterQueries {
  private jobQueries: Queries | null = null;
  private retentionQueries: RetentionQueries | null = null;
  private projectionQueries: ProjectionWriteQueries | null = null;

  constructor(
    private readonly db: Database,
    private readonly inAppDelivery: InAppDelivery,
  ) {}

  get jobs(): Queries {
    this.jobQueries ??= prepareQueries(this.db, this.inAppDelivery);
    return this.jobQueries;
  }

  get retention(): RetentionQueries {
    this.retentionQueries ??= prepareRetentionQueries(this.db);
    return this.retentionQueries;
  }

  get projections(): ProjectionWriteQueries {
    this.projectionQueries ??= prepareProjectionWrites(this.db);
    return this.projectionQueries;
  }
}

type DeliveryWrites = typeof DELIVERY_WRITES;
const delivery = <N extends keyof DeliveryWrites>(name: N) =>
  (q: WriterQueries, args: Parameters<DeliveryWrites[N]>[1]): WriteOp<ReturnType<DeliveryWrites[N]>> =>
  () =>
    (DELIVERY_WRITES[name] as (q: unknown, a: unknown) => ReturnType<DeliveryWrites[N]>)(q.jobs.delivery, args);

/**
 * Every write of the SQLite store, by name. A write travels as `{ name, args }` — plain data
 * that can cross to the writer thread (sqliteWriterThread.ts) — and becomes a group-commit op
 * there (or in-thread, see sqliteWriter.ts). Arguments and results must be structured-clonable:
 * no functions, no class instances besides errors.
 */
export const WRITE_OPS = {
  /** Prepares the writer's statements (after migrate(): the tables exist), so the first real write does not. */
  warm:
    (q: WriterQueries, _: Record<string, never>): WriteOp<void> =>
    () => {
      void q.jobs;
      void q.retention;
      void q.projections;
    },
  submit: (q: WriterQueries, cmd: SubmitJobCommand) => submitOp(q.jobs, cmd),
  claim: (q: WriterQueries, cmd: ClaimCommand) => claimOp(q.jobs, cmd),
  claimById: (q: WriterQueries, cmd: ClaimByIdCommand) => claimByIdOp(q.jobs, cmd),
  heartbeat: (q: WriterQueries, cmd: HeartbeatCommand) => heartbeatOp(q.jobs, cmd),
  progress: (q: WriterQueries, a: { lease: LeaseRef; fraction: number; message: string | null; now: number }) =>
    progressOp(q.jobs, a.lease, a.fraction, a.message, a.now),
  partial: (q: WriterQueries, a: { lease: LeaseRef; chunkKey: string; payload: Json; now: number }) => partialOp(q.jobs, a.lease, a.chunkKey, a.payload, a.now),
  finish: (q: WriterQueries, a: { lease: LeaseRef; outcome: FinishOutcome; now: number }) => finishOp(q.jobs, a.lease, a.outcome, a.now),
  cancel: (q: WriterQueries, a: { orgId: OrgId; jobId: JobId; now: number }) => requestCancelOp(q.jobs, a.orgId, a.jobId, a.now),
  recover: (q: WriterQueries, a: { now: number; limit: number; plan: Readonly<Record<string, number | null>> }) =>
    recoverExpiredLeasesOp(q.jobs, a.now, a.limit, a.plan),
  createApiKey:
    (q: WriterQueries, r: ApiKeyRecord): WriteOp<void> =>
    () => {
      q.jobs.insertApiKey.run(r.keyId, r.orgId, r.hash, r.label, r.createdAt, r.revokedAt);
    },
  revokeApiKey:
    (q: WriterQueries, a: { keyId: string; now: number }): WriteOp<boolean> =>
    () =>
      q.jobs.revokeApiKey.run(a.now, a.keyId).changes > 0,
  purge: (q: WriterQueries, cmd: PurgeCommand) => () => purgeOp(q.retention, cmd),
  projectionCommit: (q: WriterQueries, cmd: ProjectionCommit) => () => projectionCommitOp(q.projections, cmd),
  claimOutbox: delivery('claimOutbox'),
  completeInApp: delivery('completeInApp'),
  recordWebhookAttempt: delivery('recordWebhookAttempt'),
  deferEntry: delivery('deferEntry'),
  markRead: delivery('markRead'),
  createWebhookEndpoint: delivery('createWebhookEndpoint'),
  updateWebhookEndpoint: delivery('updateWebhookEndpoint'),
  deleteWebhookEndpoint: delivery('deleteWebhookEndpoint'),
  redeliver: delivery('redeliver'),
};

export type WriteOps = typeof WRITE_OPS;
export type WriteName = keyof WriteOps;
export type WriteArgs<N extends WriteName> = Parameters<WriteOps[N]>[1];
export type WriteResult<N extends WriteName> = ReturnType<ReturnType<WriteOps[N]>>;

/** Builds the op for a named write (throws if the statements cannot be prepared). */
export function buildOp(q: WriterQueries, name: WriteName, args: unknown): WriteOp<unknown> {
  const build = WRITE_OPS[name] as ((q: WriterQueries, args: unknown) => WriteOp<unknown>) | undefined;
  if (build === undefined) throw new TypeError(`unknown SQLite write op ${String(name)}`);
  return build(q, args);
}
