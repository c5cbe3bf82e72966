import type { JobEvent } from '../core/events.js';
import type { JobId } from '../core/ids.js';
import type { EventFeed } from '../ports/eventFeed.js';

/**
 * Routes the live feed to per-job followers (SSE streams, sync waits): one feed subscription
 * for all of them, and each committed batch is dispatched by job id — O(events) per commit,
 * instead of every follower scanning every batch (O(events × followers), which made 1,000
 * open streams cost 1,000 scans per commit). Subscribes to the feed only while someone
 * follows. Listeners get events in feed order; they must check the org themselves (job ids
 * are unique, the org check is tenancy).
 */
export class JobEventFanout {
  private readonly byJob = new Map<string, Set<(e: JobEvent) => void>>();
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly feed: EventFeed,
    private readonly onListenerError: (e: unknown) => void = () => undefined,
  ) {}

  /** Calls `listener` with every live event of `jobId` until the returned function is called. */
  follow(jobId: JobId, listener: (e: JobEvent) => void): () => void {
    let set = this.byJob.get(jobId);
    if (!set) {
      set = new Set();
      this.byJob.set(jobId, set);
    }
    set.add(listener);
    this.unsubscribe ??= this.feed.subscribe((events) => this.dispatch(events));
    const s = set;
    return () => {
      if (!s.delete(listener) || s.size > 0) return;
      if (this.byJob.get(jobId) === s) this.byJob.delete(jobId);
      if (this.byJob.size === 0 && this.unsubscribe) {
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
      const set = this.byJob.get(e.jobId);
      if (!set) continue;
      for (const l of set) {
        try {
          l(e);
        } catch (err) {
          this.onListenerError(err);
        }
      }
    }
  }
}
