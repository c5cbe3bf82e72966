import { isUpshiftError } from '../core/errors.js';
import type { OrgId } from '../core/ids.js';
import type { Projection, ProjectionCheckpoint } from '../core/projection.js';
import type { Clock } from '../ports/clock.js';
import type { EventFeed } from '../ports/eventFeed.js';
import type { Logger } from '../ports/logger.js';
import type { ProjectionStore } from '../ports/projectionStore.js';
import { WakeableLoop } from './wakeableLoop.js';

/** Events grouped by org, each group in position order. */
export function byOrg<E extends { readonly orgId: OrgId }>(events: readonly E[]): Map<OrgId, E[]> {
  const out = new Map<OrgId, E[]>();
  for (const e of events) {
    const list = out.get(e.orgId);
    if (list) list.push(e);
    else out.set(e.orgId, [e]);
  }
  return out;
}

export const PROJECTION_DEFAULTS = { batchSize: 500, pollMs: 1000, leaseMs: 15_000, minIntervalMs: 100 } as const;

export interface ProjectionRunnerOptions<S> {
  readonly store: ProjectionStore;
  readonly projection: Projection<S>;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Committed events wake the runner (a hint: the runner always reads the store). */
  readonly feed?: EventFeed;
  /** Identifies this runner in the lease (unique per process). */
  readonly ownerId: string;
  readonly batchSize?: number;
  readonly pollMs?: number;
  /** How long a commit keeps other runners away; renewed by every commit. */
  readonly leaseMs?: number;
  /**
   * Least time between two batches that are not full. Feed wake-ups come with every commit; without
   * this the runner would apply a handful of events per batch and pay a batch's fixed cost (reads,
   * JSON, a commit) for each. A full batch is followed by the next at once. Default 100 ms.
   */
  readonly minIntervalMs?: number;
  /** Called after every committed batch with the number of events it applied. */
  readonly onApplied?: (events: number) => void;
  /**
   * Rebuilds the projection from the source tables (rebuildProjection), for two cases:
   * - `onlyIfNeverBuilt: true` — the bootstrap of a never-built projection (checkpoint version 0),
   *   instead of replaying the live log from 0: a store whose retention already deleted event logs
   *   (an upgrade, a copied store) needs the rebuild's seed jobs to count them. Runners of several
   *   processes race for it; one builds it.
   * - `onlyIfNeverBuilt: false` — the repair when retention deleted events after the checkpoint
   *   (the runner was stopped longer than the events TTL): applying what is left would miss them.
   * Without it, such a runner stops committing (PROJECTION_CONFLICT) until someone rebuilds.
   */
  readonly rebuild?: (opts: { readonly onlyIfNeverBuilt: boolean }) => Promise<unknown>;
}

export type StepOutcome = 'applied' | 'idle' | 'leased_elsewhere' | 'conflict';

/**
 * Keeps one projection up to date (SPEC §5): reads a batch of events after its checkpoint,
 * folds them into the states of their orgs and commits states + new checkpoint in one
 * transaction with a compare-and-set on the checkpoint version (ProjectionStore). A crash
 * anywhere before the commit loses only the uncommitted batch, which the next runner re-reads;
 * a crash after it loses nothing. So every event is applied exactly once.
 *
 * One active runner per projection: every commit takes a lease (`leaseMs`). Runners of other
 * processes see the lease in the checkpoint and stay idle until it expires (the owner died or
 * went idle); if two still race, the version check lets exactly one commit. The job hot path is
 * not touched: the runner reads the log asynchronously, in batches, on its own transactions.
 */
export class ProjectionRunner<S> {
  private readonly loop: WakeableLoop;
  private readonly batchSize: number;
  private readonly leaseMs: number;
  private readonly minIntervalMs: number;
  private off: (() => void) | null = null;
  private lastStepAt = -Infinity;
  private wakeTimer: ReturnType<typeof setTimeout> | null = null;
  private lastBatchFull = false;

  constructor(private readonly o: ProjectionRunnerOptions<S>) {
    this.batchSize = Math.max(1, o.batchSize ?? PROJECTION_DEFAULTS.batchSize);
    this.leaseMs = Math.max(1, o.leaseMs ?? PROJECTION_DEFAULTS.leaseMs);
    this.minIntervalMs = Math.max(0, o.minIntervalMs ?? PROJECTION_DEFAULTS.minIntervalMs);
    this.loop = new WakeableLoop(
      async () => {
        this.lastStepAt = performance.now();
        return (await this.step()) === 'applied' && this.lastBatchFull;
      },
      o.pollMs ?? PROJECTION_DEFAULTS.pollMs,
      (e) => o.logger.warn({ err: e, projection: o.projection.name }, 'projection runner: batch failed; retrying'),
    );
  }

  get name(): string {
    return this.o.projection.name;
  }

  start(): void {
    this.off ??= this.o.feed?.subscribe(() => this.wake()) ?? null;
    this.loop.start();
  }

  /** Finishes the batch in progress (or abandons it uncommitted) and stops. */
  async stop(): Promise<void> {
    this.off?.();
    this.off = null;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    await this.loop.stop();
  }

  /** A committed event: run a batch now, or once minIntervalMs has passed since the last one. */
  private wake(): void {
    if (this.wakeTimer) return;
    const wait = this.lastStepAt + this.minIntervalMs - performance.now();
    if (wait <= 0) {
      this.loop.poke();
      return;
    }
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = null;
      this.loop.poke();
    }, wait);
  }

  /** One batch: reads, folds, commits. Never applies an event twice (see the class comment). */
  async step(): Promise<StepOutcome> {
    const { store, projection, clock } = this.o;
    const cp = await store.readCheckpoint(projection.name);
    const now = clock.now();
    if (this.leasedElsewhere(cp, now)) return 'leased_elsewhere';
    if (cp.version === 0 && this.o.rebuild) {
      await this.o.rebuild({ onlyIfNeverBuilt: true });
      this.lastBatchFull = true; // go on at once from the bootstrapped checkpoint
      return 'applied';
    }
    const deletedThrough = await store.eventsDeletedThrough();
    if (deletedThrough > cp.position) {
      // Retention deleted events this projection never applied: what is left would count wrong.
      if (!this.o.rebuild) return 'conflict';
      this.o.logger.warn(
        { projection: projection.name, checkpoint: cp.position, events_deleted_through: deletedThrough },
        'projection runner: retention deleted events this projection had not applied yet; rebuilding it',
      );
      await this.o.rebuild({ onlyIfNeverBuilt: false });
      this.lastBatchFull = true;
      return 'applied';
    }
    const events = await store.readProjectionEvents(cp.position, this.batchSize);
    this.lastBatchFull = events.length === this.batchSize;
    const last = events.at(-1);
    if (last === undefined) return 'idle';
    const orgs = [...new Set(events.map((e) => e.orgId))];
    const stored = await store.readStates(projection.name, orgs);
    const states = new Map<OrgId, S>();
    for (const org of orgs) {
      const text = stored.get(org);
      states.set(org, text === undefined ? projection.initial() : projection.decode(text));
    }
    for (const [org, own] of byOrg(events)) states.set(org, projection.applyAll(states.get(org) as S, own));
    try {
      await store.commitProjection({
        name: projection.name,
        expectedVersion: cp.version,
        position: last.position,
        states: orgs.map((orgId) => ({ orgId, state: projection.encode(states.get(orgId) as S) })),
        replaceAll: false,
        leaseOwner: this.o.ownerId,
        leaseExpiresAt: now + this.leaseMs,
        now,
        // Refused if retention deletes an event after cp.position before this commits (a race
        // with the check above); the next step then sees the watermark and rebuilds.
        readFrom: cp.position,
      });
    } catch (e) {
      // Another runner or a rebuild committed since our read: nothing of ours was written.
      if (isUpshiftError(e, 'PROJECTION_CONFLICT')) return 'conflict';
      throw e;
    }
    this.o.onApplied?.(events.length);
    return 'applied';
  }

  /**
   * Applies batches until the checkpoint reaches the head read at the call, or another owner's
   * lease stops it. Resolves with the checkpoint position reached (CLI verify, tests).
   */
  async catchUp(): Promise<{ position: number; head: number; blocked: boolean }> {
    const head = await this.o.store.headPosition();
    for (;;) {
      const cp = await this.o.store.readCheckpoint(this.o.projection.name);
      if (cp.position >= head) return { position: cp.position, head, blocked: false };
      const outcome = await this.step();
      if (outcome === 'leased_elsewhere') return { position: cp.position, head, blocked: true };
      if (outcome === 'idle') return { position: cp.position, head, blocked: false };
    }
  }

  private leasedElsewhere(cp: ProjectionCheckpoint, now: number): boolean {
    return cp.leaseOwner !== null && cp.leaseOwner !== this.o.ownerId && cp.leaseExpiresAt > now;
  }
}
