import type { Env } from '../config/config.js';
import type { JobStore } from '../ports/jobStore.js';
import type { ProjectionStore } from '../ports/projectionStore.js';
import { configFromFlags } from './configFlags.js';

/**
 * Opens the store named by --database / --data-dir / UPSHIFT_DATABASE_URL for a store-only
 * command, runs `use`, and always closes it.
 */
export async function withStore<T>(opts: Readonly<Record<string, unknown>>, env: Env, use: (store: JobStore & ProjectionStore) => Promise<T>): Promise<T> {
  const config = configFromFlags(opts, env);
  const { createStore } = await import('../main.js');
  const store = createStore(config);
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}
