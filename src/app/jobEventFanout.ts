import type { JobEvent } from '../core/events.js';
import type { JobId, OrgId } from '../core/ids.js';
import type { EventFeed } from '../ports/eventFeed.js';

/**
 * Routes the live feed to per-job followers (SSE streams, sync waits): one feed subscription
 * for all of them, and each committed batch is dispatched by job id — O(events) per commit,
 * instead of every follower scanning every batch (O(events × followers), which made 1,000
 * open streams cost 1,000 scans per commit). Subscribes to the feed only while someone
 * follows. Listeners get events in feed order; job followers must check the org themselves
 * (job ids are unique, the org check is tenancy); org followers get only their org's events.
 */
export class JobEventFanout {
  private readonly byJob = new Map<string, Set<(e: JobEvent) => void>>();
  /** Org-wide followers (GET /analyze/events/stream), dispatched by org id. */
  private readonly byOrg = new Map<string, Set<(e: JobEvent) => void>>();
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly feed: EventFeed,
    private readonly onListenerError: (e: unknown) => void = () => undefined,
  ) {}

  /** Calls `listener` with every live event of `jobId` until the returned function is called. */
  follow(jobId: JobId, listener: (e: JobEvent) => void): () => void {
    return this.add(this.byJob, jobId, listener);
  }

  /** Calls `listener` with every live event of the org's jobs until the returned function is called. */
  followOrg(orgId: OrgId, listener: (e: JobEvent) => void): () => void {
    return this.add(this.byOrg, orgId, listener);
  }

  private add(map: Map<string, Set<(e: JobEvent) => void>>, key: string, listener: (e: JobEvent) => void): () => void {
    let set = map.get(key);
    if (!set) {
      set = new Set();
      map.set(key, set);
    }
    set.add(listener);
    this.unsubscribe ??= this.feed.subscribe((events) => this.dispatch(events));
    const s = set;
    return () => {
      if (!s.delete(listener) || s.size > 0) return;
      if (map.get(key) === s) map.delete(key);
      if (this.byJob.size === 0 && this.byOrg.size === 0 && this.unsubscribe) {
        this.unsubscribe();
        this.unsubscribe = null;
      }
    };
  }

  /** Jobs currently followed (for tests and metrics). */
  get size(): number {
    return this.byJob.size;
  }

  private dispatch(events: readonly JobEvent[]): void {
    for (const e of events) {
      this.call(this.byJob.get(e.jobId), e);
      if (this.byOrg.size > 0) this.call(this.byOrg.get(e.orgId), e);
    }
  }

  private call(set: Set<(e: JobEvent) => void> | undefined, e: JobEvent): void {
    if (!set) return;
    for (const l of set) {
      try {
        l(e);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }
}
