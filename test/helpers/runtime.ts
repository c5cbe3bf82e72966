import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInProcessEventFeed } from '../../src/adapters/feed/inProcessEventFeed.js';
import { createSqliteJobStore } from '../../src/adapters/store/sqlite/sqliteJobStore.js';
import { AnalyzerRegistry } from '../../src/app/analyzerRegistry.js';
import { JobService } from '../../src/app/jobService.js';
import { WorkerRuntime, type WorkerOptions } from '../../src/app/workerRuntime.js';
import type { Analyzer } from '../../src/core/analyzer.js';
import { type JobEvent } from '../../src/core/events.js';
import type { Clock } from '../../src/ports/clock.js';
import { silentLogger } from '../../src/ports/logger.js';

/** A real SQLite file in a temp dir with the in-process feed, service and a worker. */
export async function createTestRuntime(opts: { analyzers: Analyzer<never, unknown>[]; clock: Clock; worker?: Partial<WorkerOptions> }) {
  const dir = mkdtempSync(join(tmpdir(), 'upshift-rt-'));
  const store = createSqliteJobStore({ file: join(dir, 'upshift.db') });
  await store.migrate();
  const feed = createInProcessEventFeed(store);
  const registry = new AnalyzerRegistry();
  for (const a of opts.analyzers) registry.register(a);
  const service = new JobService({ store, feed, registry, clock: opts.clock, defaultMaxAttempts: 3 });
  const events: JobEvent[] = [];
  const off = feed.subscribe((es) => events.push(...es));
  const worker = new WorkerRuntime({
    store,
    feed,
    registry,
    clock: opts.clock,
    logger: silentLogger,
    workerId: 'test-worker',
    concurrency: 4,
    leaseMs: 30_000,
    heartbeatMs: 10_000,
    pollMs: 20,
    cancelGraceMs: 1_000,
    defaultTimeoutMs: 60_000,
    backoff: { baseMs: 1000, maxMs: 60_000, jitter: 0 },
    fairness: { defaultWeight: 1, weights: {}, defaultMaxRunning: 0, maxRunning: {} },
    random: () => 1,
    ...opts.worker,
  });
  return {
    dir,
    store,
    feed,
    registry,
    service,
    worker,
    events,
    async close() {
      await worker.stop(1_000);
      off();
      await feed.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, stepMs = 5): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
