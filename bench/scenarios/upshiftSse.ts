import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { percentile } from '../harness.js';
import { serverSystemEnv, serverSystemFromEnv } from './serverSystems.js';
import { forkChild, openFilesLimit, sleep, startServer } from './procs.js';
import type { SseConfig, SseResult } from './sseClients.js';

/**
 * The sse scenario: <streams> concurrent GET /analyze/jobs/{id}/stream against a real Upshift
 * embedded server (serverProcess.ts, UPSHIFT_WORKER_CONCURRENCY = streams so every job runs at
 * once), clients in a process of their own (sseClients.ts, which defines the latency).
 *   upshiftSse <streams> <seconds> <steps per second>
 * Each job is a `sleep` job running for the whole window, writing a partial (a result row and a
 * job.partial event) and a progress event each step: about streams × steps/s partials per
 * second, each delivered to the one stream following that job. The jobs are submitted evenly
 * over one step period, so their events are spread evenly in time (a steady event rate, not
 * 1,000 step timers firing together).
 * Needs about 2 × streams open files in the server and in the clients: if the soft limit is
 * lower, the scenario re-executes itself under `ulimit -n <hard limit>`.
 */
const [streamsArg = '1000', secondsArg = '10', stepsArg = '1'] = process.argv.slice(2);
const streams = Number(streamsArg);
const seconds = Number(secondsArg);
const stepsPerSecond = Number(stepsArg);
const emit = (metric: string, value: number, unit: string, extra?: Record<string, number | string>) =>
  process.stdout.write(JSON.stringify({ system: serverSystemFromEnv(), metric, value, unit, extra }) + '\n');

const needFiles = 2 * streams + 1024;
const limit = openFilesLimit();
if (limit < needFiles) {
  if (process.env.BENCH_SSE_RAISED === '1') throw new Error(`open-files limit ${limit} < ${needFiles} even after raising it to the hard limit`);
  process.stderr.write(`sse: ulimit -n is ${limit}, below ${needFiles}: re-running under the hard limit\n`);
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync('sh', ['-c', 'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"', process.execPath, self, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, BENCH_SSE_RAISED: '1' },
  });
  process.exit(r.status ?? 1);
}

// The jobs outlive the window (warm-up included); the stop ends the streams, close() the jobs.
const sleepMs = (seconds + 20) * 1000;
const target = serverSystemEnv(serverSystemFromEnv());
const server = await startServer({ ...target.env, UPSHIFT_WORKER_CONCURRENCY: String(streams) });
try {
  const cfg: SseConfig = { url: server.url, org: 'bench', streams, sleepMs, steps: Math.round((sleepMs / 1000) * stepsPerSecond), spreadMs: 1000 / stepsPerSecond };
  const clients = forkChild(new URL('./sseClients.js', import.meta.url), { BENCH_SSE: JSON.stringify(cfg) });
  const opened = await clients.next<number>('open', 120_000);
  await sleep(1000);
  clients.send({ cmd: 'measure' });
  server.mark();
  await sleep(seconds * 1000);
  const stats = await server.stats();
  clients.send({ cmd: 'stop' });
  const r = await clients.next<SseResult>('result', 30_000);
  await clients.exited();
  const xs = [...r.latencies].sort((a, b) => a - b);
  const extra = { streams, open_at_start: opened, samples: xs.length };
  for (const p of [50, 95, 99]) emit(`SSE commit→client p${p} (${streams} streams)`, percentile(xs, p), 'ms', extra);
  emit(`SSE commit→client max (${streams} streams)`, xs[xs.length - 1] ?? NaN, 'ms');
  emit('SSE events delivered/s', xs.length / seconds, 'events/s', r.byType);
  emit('SSE streams open (of requested)', opened, 'streams', { requested: streams, bad_status: r.badStatus, errors: r.errors, ended_early: r.ended });
  emit('server occurred_at→commit listener p99', stats.feedLagP99Ms, 'ms', { p50: stats.feedLagP50Ms });
  emit('server CPU during SSE window (cores)', stats.cpuCores, 'cores');
  emit('server event-loop delay p99 during SSE window', stats.loopDelayP99Ms, 'ms');
  emit('client event-loop delay p99 during SSE window', r.clientLoopDelayP99Ms, 'ms');
  if (opened < streams || r.errors > 0 || r.badStatus > 0) process.exitCode = 1;
} finally {
  await server.stop();
  await target.cleanup();
}
process.exit(process.exitCode ?? 0);
