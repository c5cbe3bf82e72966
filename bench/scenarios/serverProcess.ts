import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver, type IntervalHistogram } from 'node:perf_hooks';
import { loadConfig } from '../../src/config/config.js';
import { createUpshift } from '../../src/main.js';
import { percentile } from '../harness.js';

/**
 * A real Upshift embedded server (the composition root `upshift serve` uses: HTTP API, workers,
 * notification dispatcher, SQLite file in a temp dir) in its own process, driven by the bench
 * orchestrators (upshiftHttp.ts, upshiftSse.ts) over the fork IPC channel. Configuration: the
 * UPSHIFT_* environment the orchestrator passes, over bench defaults (loopback, port 0, warn).
 *
 * IPC out: {ready: url} once listening; {stats} answering {cmd: 'stats'}.
 * IPC in:  {cmd: 'mark'} starts a measurement window (completions counted, event-loop delay
 *          histogram reset); {cmd: 'stats'} reports the window; {cmd: 'stop'} closes and exits.
 * CPU profiles: the orchestrator forks this with --cpu-prof (BENCH_CPU_PROF); close() then a
 * normal exit writes the profile.
 */
const dir = mkdtempSync(join(tmpdir(), 'upshift-bench-server-'));
const config = loadConfig(process.env, {
  // The orchestrator's system (serverSystems.ts) may point the server at PostgreSQL.
  UPSHIFT_DATABASE_URL: process.env.UPSHIFT_DATABASE_URL ?? `sqlite:${join(dir, 'bench.db')}`,
  UPSHIFT_DATA_DIR: dir,
  UPSHIFT_HOST: '127.0.0.1',
  UPSHIFT_PORT: '0',
  UPSHIFT_LOG_LEVEL: 'warn',
});
const up = await createUpshift({ config });
let completed = 0;
// occurred_at → commit-hook delivery in this process, per event (the server-side share of the
// SSE commit→client latency); wall clock, millisecond occurred_at.
let feedLag: number[] = [];
up.feed.subscribe((events) => {
  const now = Date.now();
  for (const e of events) {
    if (e.type === 'job.completed') completed++;
    if (feedLag.length < 1_000_000) feedLag.push(now - e.occurredAt);
  }
});
const url = (await up.start()) as string;

let markAt = performance.now();
let markCompleted = 0;
let markCpu = process.cpuUsage();
let loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 1 });
loop.enable();
// Garbage-collection pauses in the window (each one stops the event loop).
let gcPauses: number[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push(e.duration);
}).observe({ entryTypes: ['gc'] });

process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'mark') {
    markAt = performance.now();
    markCompleted = completed;
    markCpu = process.cpuUsage();
    feedLag = [];
    gcPauses = [];
    loop.disable();
    loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
  } else if (m.cmd === 'stats') {
    const seconds = (performance.now() - markAt) / 1000;
    process.send?.({
      stats: {
        seconds,
        completed: completed - markCompleted,
        completedPerSecond: (completed - markCompleted) / seconds,
        loopDelayP99Ms: loop.percentile(99) / 1e6,
        loopDelayMaxMs: loop.max / 1e6,
        feedLagP50Ms: percentile(feedLag.sort((x, y) => x - y), 50),
        feedLagP99Ms: percentile(feedLag, 99),
        rssMiB: process.memoryUsage().rss / 2 ** 20,
        gcPauseTotalMs: gcPauses.reduce((a, b) => a + b, 0),
        gcPauseMaxMs: Math.max(0, ...gcPauses),
        // CPU time this process used in the window, as a share of one core.
        cpuCores: (() => {
          const c = process.cpuUsage(markCpu);
          return (c.user + c.system) / 1e6 / seconds;
        })(),
      },
    });
  } else if (m.cmd === 'stop') {
    void shutdown();
  }
});
// Never outlive the orchestrator.
process.on('disconnect', () => void shutdown());

let stopping: Promise<void> | null = null;
function shutdown(): Promise<void> {
  stopping ??= (async () => {
    loop.disable();
    await up.close().catch((e: unknown) => process.stderr.write(`server close failed: ${String(e)}\n`));
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  })();
  return stopping;
}
process.send?.({ ready: url });
