import type { JobEvent } from '../core/events.js';

/**
 * Live feed of committed job events, used for SSE streams, sync waits, worker wake-ups and
 * cancel signals. In-process adapter: fed by the store's commit hook. Scale mode: fed by
 * PostgreSQL NOTIFY / Redis pub/sub so every process sees every commit.
 *
 * Guarantees: delivers only committed events, in commit order per job; it is a hint, not a
 * log — consumers that must not miss anything re-read the store (e.g. SSE resumes from
 * `listEvents` and de-duplicates by eventSeq).
 */
export interface EventFeed {
  subscribe(listener: (events: readonly JobEvent[]) => void): () => void;
  close(): Promise<void>;
}
