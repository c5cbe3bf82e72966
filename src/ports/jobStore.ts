import type { JobEvent } from '../core/events.js';
import type { JobId, OrgId, ResultId } from '../core/ids.js';
import type { ClaimedJob, Job, JobError, JobResult, Json, LeaseRef, RemovedResult } from '../core/job.js';
import type { JobStatus } from '../core/jobState.js';
import type { OrgReadiness } from '../core/fairness.js';

/**
 * The store port: system of record for jobs, their event logs and results.
 * Adapters: SQLite (embedded, MVP) and PostgreSQL (scale). One conformance suite
 * (`test/contracts/jobStore.contract.ts`) runs against every adapter.
 *
 * Common guarantees of every writing method:
 * - atomic: the state change, its events and its result rows commit together or not at all;
 * - events get the next gap-free `eventSeq` of their job and a global `position`;
 * - a returned promise resolves only after the write is durable (committed);
 * - timestamps come from the caller (`now`, epoch ms), never from the store's clock, so
 *   time-based behaviour is testable with an injected clock;
 * - tenant-bound: every read/write that takes an `orgId` never touches another org's rows;
 *   another org's id behaves exactly like a missing id.
 * Failures are UpshiftErrors (`STORE_UNAVAILABLE`, `STORE_CONFLICT`, ...), never raw driver errors.
 */
export interface JobStore {
  /** Short name for logs/metrics: 'sqlite' | 'postgres'. */
  readonly kind: string;

  /** Applies pending migrations. Refuses (STORE_SCHEMA_TOO_NEW) a database migrated by newer code. */
  migrate(): Promise<{ applied: string[] }>;
  /** Throws STORE_UNAVAILABLE / STORE_NOT_MIGRATED if the store cannot serve. */
  ping(): Promise<void>;
  /**
   * Optional start-up step after `migrate()`: prepares what the first jobs would otherwise
   * pay for (PostgreSQL: the pool's connections and their backends' catalog caches). Best
   * effort — resolves even when it could not do its work, never throws.
   */
  warmUp?(): Promise<void>;
  close(): Promise<void>;

  /**
   * Creates a queued job and its `job.queued` event. With an idempotency key: if the org
   * already has a job with that key and the same `requestHash`, returns it with
   * `created: false`; with a different hash, throws IDEMPOTENCY_CONFLICT. Race-safe.
   */
  submitJob(cmd: SubmitJobCommand): Promise<{ job: Job; created: boolean }>;

  getJob(orgId: OrgId, jobId: JobId): Promise<Job | undefined>;

  /** Newest first (by job id, i.e. creation time). Cursor is the last job id seen. */
  listJobs(orgId: OrgId, query: ListJobsQuery): Promise<Job[]>;

  /** Events with eventSeq > afterSeq, ascending, at most `limit`. */
  listEvents(orgId: OrgId, jobId: JobId, afterSeq: number, limit: number): Promise<JobEvent[]>;

  /**
   * The org's events with afterPosition < position ≤ scanUpTo, ascending by position, at most
   * `limit` (the org's event stream, GET /analyze/events). Bounded by the position window, not
   * by the org's events, so one call costs the same whatever other tenants wrote: callers walk
   * the log window by window up to headPosition().
   */
  listOrgEvents(orgId: OrgId, afterPosition: number, scanUpTo: number, limit: number): Promise<JobEvent[]>;

  /** The highest committed event position (0 for an empty log). */
  headPosition(): Promise<number>;

  /** All results of a job (partials and final) ascending by seq. */
  listResults(orgId: OrgId, jobId: JobId): Promise<JobResult[]>;

  getResult(orgId: OrgId, resultId: ResultId): Promise<JobResult | undefined>;

  /** Final result if any, else the newest partial. */
  getLatestResult(orgId: OrgId, jobId: JobId): Promise<JobResult | undefined>;

  /** A result id retention removed (for 410), or undefined. */
  getRemovedResult(orgId: OrgId, resultId: ResultId): Promise<RemovedResult | undefined>;

  /**
   * Orgs that have queued jobs, with their running count, for the fairness planner.
   * Must stay cheap with a large backlog (loose index scan, not a full count).
   */
  readyOrgs(now: number, analyzers: readonly string[] | null): Promise<OrgReadiness[]>;

  /**
   * Claims up to `limit` queued jobs of one org with runAt <= now, highest priority then
   * oldest first, moving each to running with a fresh lease and a `job.started` event.
   * Concurrent claimers never get the same job (SKIP LOCKED / single writer). `startedAt` is
   * set to `now` on every claim: it is the start of the current attempt.
   */
  claimJobs(cmd: ClaimCommand): Promise<ClaimedJob[]>;

  /**
   * Claims the named jobs that are queued and due: the same compare-and-set as claimJobs
   * (queued → running, a fresh lease, `job.started`), for a dispatcher that learns job ids from
   * a queue (BullMQ dispatch). One result per named job, in order. Tenant-bound per job: a job
   * named with another org's id is `gone`, like a missing one; a job named twice is claimed
   * once (the second is `gone`). Claims of one event-loop turn share a transaction with the
   * other writes of that turn (group commit).
   */
  claimJobsById(cmd: ClaimByIdCommand): Promise<ClaimByIdResult[]>;

  /**
   * Extends the leases the worker still holds. Returns, per job, whether the lease is still
   * held and whether a cancel was requested (so a worker that missed the live signal aborts).
   * A lease that expired but was not yet recovered is still held (and extended).
   */
  heartbeat(cmd: HeartbeatCommand): Promise<HeartbeatResult[]>;

  /** Progress update + `job.progress` event; JOB_LEASE_LOST if the lease is not held. */
  recordProgress(lease: LeaseRef, fraction: number, message: string | null, now: number): Promise<void>;

  /**
   * Partial snapshot, idempotent by (jobId, chunkKey): the first write creates the result
   * row and a `job.partial` event; a repeat returns the existing result and writes nothing.
   * JOB_LEASE_LOST if the lease is not held.
   */
  recordPartial(lease: LeaseRef, chunkKey: string, payload: Json, now: number): Promise<{ result: JobResult; created: boolean }>;

  /**
   * The guarded finalization (compare-and-set on status=running + attempt + lease token).
   * Exactly one of concurrent finishers wins; the loser gets JOB_LEASE_LOST and changes
   * nothing. Outcomes:
   *  - completed: final result row + `job.completed`;
   *  - failed: `job.failed` with the error;
   *  - retry: back to queued, attempt+1, runAt = retryAt, `job.retrying` — unless a cancel was
   *    requested, then canceled (`job.canceled`, cancel_observed): a job the tenant asked to
   *    cancel never goes back to the queue;
   *  - canceled: `job.canceled` (cancel observed or forced).
   */
  finishJob(lease: LeaseRef, outcome: FinishOutcome, now: number): Promise<Job>;

  /**
   * Idempotent cancel. queued → canceled now (`job.canceled`); running → sets
   * cancelRequestedAt once and writes one `job.cancel_requested`; terminal → unchanged.
   * Returns the job after the call, or undefined if it does not exist for this org.
   */
  requestCancel(orgId: OrgId, jobId: JobId, now: number): Promise<{ job: Job; changed: boolean } | undefined>;

  /**
   * Running jobs whose lease expired before `now`: cancel-requested → canceled; attempts
   * left → queued with attempt+1 and runAt from `retryAt(job)`; else failed (LEASE_EXPIRED).
   * Returns the jobs it moved. Safe to run from many processes at once.
   */
  recoverExpiredLeases(now: number, limit: number, retryAt: (job: Job) => number): Promise<Job[]>;

  /**
   * Running jobs with cancel requested before `olderThan` (for the forced-cancel sweep), with
   * their current lease so the sweeper can finish them as `cancel_forced`.
   */
  listStaleCancels(olderThan: number, limit: number): Promise<ClaimedJob[]>;

  /** Queue depth and lag for readiness/metrics. */
  queueStats(now: number): Promise<QueueStats>;

  /** Registers a listener called after every commit with the events it committed, in order. */
  onCommitted(listener: (events: readonly JobEvent[]) => void): () => void;

  /** API keys (hashed); see app/apiKeys.ts. */
  createApiKey(record: ApiKeyRecord): Promise<void>;
  findApiKeyByHash(hash: string): Promise<ApiKeyRecord | undefined>;
  /** Idempotent: true if the key exists (a repeat keeps the first revocation time). */
  revokeApiKey(keyId: string, now: number): Promise<boolean>;
  listApiKeys(orgId: OrgId | null): Promise<ApiKeyRecord[]>;
}

export interface SubmitJobCommand {
  readonly jobId: JobId;
  readonly orgId: OrgId;
  readonly analyzer: string;
  readonly input: Json;
  readonly priority: number;
  readonly maxAttempts: number;
  readonly idempotencyKey: string | null;
  /** Hash of the canonical request body, compared on idempotent replays. */
  readonly requestHash: string | null;
  readonly traceContext: string | null;
  readonly now: number;
  /** Delay the first run until this time (default: now). */
  readonly runAt?: number;
}

export interface ListJobsQuery {
  readonly status?: JobStatus;
  readonly analyzer?: string;
  /** Inclusive: createdAt >= createdAfter. */
  readonly createdAfter?: number;
  /** Exclusive: createdAt < createdBefore. */
  readonly createdBefore?: number;
  /** Exclusive: return jobs older than this job id. */
  readonly beforeJobId?: JobId;
  readonly limit: number;
}

export interface ClaimCommand {
  readonly orgId: OrgId;
  readonly limit: number;
  readonly workerId: string;
  readonly now: number;
  readonly leaseMs: number;
  /** Only claim jobs of these analyzers (null = any). */
  readonly analyzers: readonly string[] | null;
}

export interface ClaimByIdCommand {
  readonly jobs: ReadonlyArray<{ readonly orgId: OrgId; readonly jobId: JobId }>;
  readonly workerId: string;
  readonly now: number;
  readonly leaseMs: number;
}

export type ClaimByIdResult =
  | { readonly kind: 'claimed'; readonly job: ClaimedJob }
  /** Still queued but not due yet (a retry's backoff, or clocks disagree): ask again at runAt. */
  | { readonly kind: 'not_due'; readonly runAt: number }
  /** Queued and due, but its row was locked by another writer (PostgreSQL): ask again shortly. */
  | { readonly kind: 'busy' }
  /** Not queued any more (claimed elsewhere, canceled, finished), unknown, or another org's: drop the signal. */
  | { readonly kind: 'gone' };

export interface HeartbeatCommand {
  readonly workerId: string;
  readonly leases: readonly LeaseRef[];
  readonly now: number;
  readonly leaseMs: number;
}

export interface HeartbeatResult {
  readonly jobId: JobId;
  readonly held: boolean;
  readonly cancelRequested: boolean;
}

export type FinishOutcome =
  | { readonly status: 'completed'; readonly resultId: ResultId; readonly payload: Json }
  | { readonly status: 'failed'; readonly error: JobError }
  | { readonly status: 'retry'; readonly error: JobError; readonly retryAt: number }
  | { readonly status: 'canceled'; readonly reason: 'cancel_observed' | 'cancel_forced' };

export interface QueueStats {
  readonly queued: number;
  readonly running: number;
  /** Age in ms of the oldest job that is ready to run (runAt <= now), 0 if none. */
  readonly oldestReadyAgeMs: number;
}

export interface ApiKeyRecord {
  readonly keyId: string;
  readonly orgId: OrgId;
  /** SHA-256 of the secret; the secret itself is never stored. */
  readonly hash: string;
  readonly label: string | null;
  readonly createdAt: number;
  readonly revokedAt: number | null;
}
