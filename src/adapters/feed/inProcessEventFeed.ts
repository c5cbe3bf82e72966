import type { JobEvent } from '../../core/events.js';
import type { EventFeed } from '../../ports/eventFeed.js';
import type { JobStore } from '../../ports/jobStore.js';

/**
 * Embedded mode: every commit happens in this process, so the store's commit hook is the
 * complete live feed. Listener errors are isolated so one bad subscriber cannot stop others.
 */
export function createInProcessEventFeed(store: JobStore, onListenerError?: (e: unknown) => void): EventFeed {
  const listeners = new Set<(events: readonly JobEvent[]) => void>();
  const off = store.onCommitted((events) => {
    for (const l of listeners) {
      try {
        l(events);
      } catch (e) {
        onListenerError?.(e);
      }
    }
  });
  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      off();
      listeners.clear();
      return Promise.resolve();
    },
  };
}
