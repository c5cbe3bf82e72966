import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { loadConfig } from '../../src/config/config.js';
import { defineAnalyzer } from '../../src/core/analyzer.js';
import { parseOrgId } from '../../src/core/ids.js';
import { createUpshift, type Upshift } from '../../src/main.js';
import { BullmqDispatcher } from '../../src/adapters/dispatch/bullmq/bullmqDispatcher.js';
import { BullmqOutboxRelay } from '../../src/adapters/dispatch/bullmq/bullmqOutboxRelay.js';
import { PostgresDispatchStore, type DispatchRow } from '../../src/adapters/dispatch/bullmq/postgresDispatchStore.js';
import type { JobStore } from '../../src/ports/jobStore.js';
import { drive, type Peer } from './peerCommon.js';

/**
 * Upshift in scale mode on the local PostgreSQL (full event history, result rows, notifications
 * as configured by default), library API, no HTTP. Same CLI and driver as the peers
 * (peerCommon.ts), in its own schema per run, dropped at the end:
 *   throughput <N> <concurrency> · latency <rate/s> <seconds>
 * "start" = the analyzer is invoked (as the peers' handler); "done" = the job.completed event
 * committed (the store's commit hook fires after COMMIT), so every timed completion is durable.
 * BENCH_UPSHIFT_DISPATCH=bullmq: PostgreSQL + BullMQ dispatch (UPSHIFT_DISPATCH_MODE=bullmq: a
 * transactional outbox relayed to a BullMQ queue on BENCH_REDIS_URL, default the local Redis;
 * the queue is named after the schema and obliterated at the end). BENCH_RELAY_GRACE_MS sets
 * UPSHIFT_DISPATCH_RELAY_GRACE_MS (how long the relay leaves directly published rows alone).
 */
const url = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `bench_up_${process.pid}_${Date.now()}`;
const [mode = 'throughput', , b = '50'] = process.argv.slice(2);
const concurrency = mode === 'throughput' ? b : '50';
const org = parseOrgId('bench');
const bullmq = process.env.BENCH_UPSHIFT_DISPATCH === 'bullmq';
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

const system = bullmq ? 'upshift-postgres-bullmq' : 'upshift-postgres';

await drive(system, async (): Promise<Peer> => {
  await removeOrphans();
  const dir = mkdtempSync(join(tmpdir(), 'upshift-bench-pg-'));
  let onStart: (i: number) => void = () => undefined;
  // The built-in noop (returns its input as the result) plus the start hook.
  const noop = defineAnalyzer<{ i: number }, { i: number }>({
    name: 'bench-noop',
    version: '1.0.0',
    inputSchema: {},
    run: (input) => {
      onStart(input.i);
      return Promise.resolve(input);
    },
  });
  const config = loadConfig({}, {
    UPSHIFT_DATABASE_URL: url,
    UPSHIFT_DATABASE_SCHEMA: schema,
    UPSHIFT_DATA_DIR: dir,
    UPSHIFT_LOG_LEVEL: 'warn',
    UPSHIFT_WORKER_CONCURRENCY: concurrency,
    UPSHIFT_POLL_MS: '1000',
    // BENCH_UPSHIFT_PREFETCH: held claimed jobs beyond the concurrency (default: the store's auto).
    ...(process.env.BENCH_UPSHIFT_PREFETCH !== undefined && { UPSHIFT_WORKER_PREFETCH: process.env.BENCH_UPSHIFT_PREFETCH }),
    ...(bullmq ? { UPSHIFT_DISPATCH_MODE: 'bullmq', UPSHIFT_REDIS_URL: redisUrl } : { UPSHIFT_DISPATCH_MODE: 'store' }),
    ...(process.env.BENCH_RELAY_GRACE_MS !== undefined && { UPSHIFT_DISPATCH_RELAY_GRACE_MS: process.env.BENCH_RELAY_GRACE_MS }),
  });
  const hops = process.env.BENCH_HOPS === '1' && bullmq ? traceHops() : null;
  const up: Upshift = await createUpshift({ config, http: false, analyzers: [noop] });
  if (process.env.BENCH_TRACE === '1') traceStore(up);
  hops?.attach(up.store);
  const numberOf = new Map<string, number>();
  // The processing window (from start() to close()): CPU of this process and of its backends,
  // and WAL written (server-wide: exact only on a private server).
  let window: { cpu: NodeJS.CpuUsage; pg: number; wal: string } | null = null;
  const submit = async (i: number): Promise<void> => {
    const t = performance.now();
    const { job } = await up.service.submit(org, { analyzer: 'bench-noop', input: { i } });
    numberOf.set(job.jobId, i);
    hops?.mark(job.jobId, 0, t);
  };
  if (hops) {
    up.store.onCommitted((events) => {
      const t = performance.now();
      for (const e of events) if (e.type === 'job.queued') hops.mark(e.jobId, 1, t);
    });
    const run = noop.run;
    (noop as { run: typeof run }).run = (input, ctx) => {
      hops.mark(ctx.jobId, 5, performance.now());
      return run(input, ctx);
    };
  }
  return {
    async addBulk(items) {
      await Promise.all(items.map(submit));
    },
    addOne: submit,
    async start(_c, started, done) {
      onStart = started;
      window = { cpu: process.cpuUsage(), pg: cpuSecondsOf(await ownBackends(url)).seconds, wal: await walLsn() };
      up.store.onCommitted((events) => {
        for (const e of events) {
          if (e.type !== 'job.completed') continue;
          const i = numberOf.get(e.jobId);
          if (i !== undefined) done(i);
        }
      });
      await up.start();
    },
    async close() {
      // CPU of this process and of its PostgreSQL backends: on a shared machine CPU per job is
      // steadier than wall-clock throughput.
      const pgCpu = cpuSecondsOf(await ownBackends(url));
      const cpu = process.cpuUsage();
      process.stderr.write(`${system} ${mode}: node CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s, PostgreSQL backends CPU ${pgCpu.seconds.toFixed(2)} s (${pgCpu.backends} backends), load ${loadavg()[0]?.toFixed(2)}\n`);
      if (window !== null) {
        const w = process.cpuUsage(window.cpu);
        const wal = await walBytesSince(window.wal);
        process.stderr.write(`${system} ${mode} processing window: node CPU ${((w.user + w.system) / 1e6).toFixed(2)} s, PostgreSQL backends CPU ${(pgCpu.seconds - window.pg).toFixed(2)} s, WAL ${(wal / 1e6).toFixed(1)} MB (server-wide), jobs ${numberOf.size}\n`);
      }
      // Bounded (the driver's hard stop comes 30 s after the deadline): the schema and the
      // queue are removed even when a graceful close hangs.
      const closed = await Promise.race([up.close().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 15_000).unref())]);
      if (!closed) process.stderr.write(`${system}: close did not finish within 15 s; terminating its backends and cleaning up\n`);
      rmSync(dir, { recursive: true, force: true });
      if (bullmq) {
        const queue = new Queue(`dispatch-${schema}`, { connection: { url: redisUrl }, prefix: 'upshift' });
        await queue.obliterate({ force: true });
        await queue.close();
      }
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      if (!closed) await admin.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [await ownBackends(url)]);
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    },
  };
});

/**
 * BENCH_HOPS=1 (BullMQ dispatch): per-job timestamps of every hop between the submit and the
 * analyzer, printed to stderr at exit as mean / p50 / p99 of each hop's share:
 *   submit call → submit commit (job.queued committed) → BullMQ add accepted (the committing
 *   process's direct publish, or the relay's) → processor invoked (BullMQ's fetch) → claim by
 *   id resolved → analyzer invoked. Relay rounds (outbox transactions) are counted.
 * Patches prototypes of the dispatch classes before the instance is built (bench only).
 */
function traceHops(): { mark(jobId: string, hop: number, t: number): void; attach(store: JobStore): void } {
  const HOP_NAMES = ['submit call', 'submit commit', 'BullMQ add done', 'processor invoked', 'claim done', 'analyzer start', 'fetch sent'];
  const at = new Map<string, Float64Array>();
  const mark = (jobId: string, hop: number, t: number): void => {
    let a = at.get(jobId);
    if (!a) at.set(jobId, (a = new Float64Array(HOP_NAMES.length).fill(NaN)));
    if (Number.isNaN(a[hop])) a[hop] = t;
  };
  const store = PostgresDispatchStore.prototype as unknown as { drainOutbox(limit: number, before: number, publish: (rows: DispatchRow[]) => Promise<void>): Promise<number> };
  const drain = store.drainOutbox;
  const relayStats = { rounds: 0, empty: 0, rows: 0 };
  store.drainOutbox = async function (this: unknown, limit, before, publish) {
    relayStats.rounds++;
    const n = await drain.call(this, limit, before, publish);
    if (n === 0) relayStats.empty++;
    relayStats.rows += n;
    return n;
  };
  const relay = BullmqOutboxRelay.prototype as unknown as { publish(rows: readonly DispatchRow[]): Promise<void> };
  const publish = relay.publish;
  relay.publish = async function (this: unknown, rows) {
    await publish.call(this, rows);
    const t = performance.now();
    for (const r of rows) mark(r.jobId, 2, t);
  };
  // The per-job handler of the dispatcher: `handle` (own fetch loop) or `process` (BullMQ's processor, before).
  const proc = BullmqDispatcher.prototype as unknown as Record<string, (job: { data: { jobId: string } }, ...rest: unknown[]) => Promise<void>>;
  for (const name of ['handle', 'process']) {
    const f = proc[name];
    if (!f) continue;
    proc[name] = function (this: unknown, job, ...rest) {
      mark(job.data.jobId, 3, performance.now());
      return f.call(this, job, ...rest);
    };
  }
  // The dispatcher's fetches (BullMQ manual processing): latency of each call, by outcome.
  const fetchStats = { calls: 0, jobs: 0, ms: 0, emptyMs: 0 };
  const wproto = Worker.prototype as unknown as { getNextJob(token: string, o?: { block?: boolean }): Promise<{ data: { jobId: string } } | undefined> };
  const getNext = wproto.getNextJob;
  wproto.getNextJob = async function (this: unknown, token, o) {
    const t = performance.now();
    const job = await getNext.call(this, token, o);
    const ms = performance.now() - t;
    fetchStats.calls++;
    if (job) {
      fetchStats.jobs++;
      fetchStats.ms += ms;
      mark(job.data.jobId, 6, t);
    } else fetchStats.emptyMs += ms;
    return job;
  };
  // Round trips: Redis commands by name (scripts by the name BullMQ gave them), PostgreSQL queries.
  const counts: Record<string, number> = {};
  const redisProto = Redis.prototype as unknown as { sendCommand(cmd: { name: string; args?: unknown[] }, stream?: unknown): unknown };
  const send = redisProto.sendCommand;
  redisProto.sendCommand = function (this: unknown, cmd, stream) {
    const k = `redis ${cmd.name}`;
    counts[k] = (counts[k] ?? 0) + 1;
    return send.call(this, cmd, stream);
  };
  const pgQuery = pg.Client.prototype.query as unknown as (...a: unknown[]) => unknown;
  (pg.Client.prototype as unknown as { query: (...a: unknown[]) => unknown }).query = function (this: unknown, ...a: unknown[]) {
    counts['pg queries'] = (counts['pg queries'] ?? 0) + 1;
    return pgQuery.apply(this, a);
  };
  const elu0 = performance.eventLoopUtilization();
  process.on('exit', () => {
    const lines: string[] = [];
    const jobs = Math.max(1, at.size);
    lines.push(`  per job: ${Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${(n / jobs).toFixed(2)}`).join(', ')}`);
    lines.push(`  fetches: ${fetchStats.calls} calls, ${fetchStats.jobs} with a job (mean ${(fetchStats.ms / Math.max(1, fetchStats.jobs)).toFixed(2)} ms), empty ones ${(fetchStats.emptyMs / 1000).toFixed(1)} s in all`);
    lines.push(`  relay: ${relayStats.rounds} rounds, ${relayStats.empty} found nothing, ${relayStats.rows} rows`);
    lines.push(`  event loop utilization ${performance.eventLoopUtilization(elu0).utilization.toFixed(2)}`);
    // Hop 6 (fetch sent) exists only with the dispatcher's own fetch loop.
    const fetchHop = [...at.values()].some((a) => !Number.isNaN(a[6]));
    const full = [...at.values()].filter((a) => a.every((x, i) => !Number.isNaN(x) || (i === 6 && !fetchHop)));
    const stat = (xs: number[]): string => {
      xs.sort((x, y) => x - y);
      const mean = xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
      return `mean ${mean.toFixed(2)} p50 ${(xs[Math.floor(xs.length * 0.5)] ?? NaN).toFixed(2)} p99 ${(xs[Math.floor(xs.length * 0.99)] ?? NaN).toFixed(2)}`;
    };
    const pairs: Array<[number, number]> = [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [0, 5]];
    if (fetchHop) pairs.push([2, 6], [6, 3]);
    const hopLines = (jobs: Float64Array[], indent: string): void => {
      for (const [a, b] of pairs) lines.push(`${indent}${HOP_NAMES[a]} → ${HOP_NAMES[b]}: ${stat(jobs.map((x) => (x[b] as number) - (x[a] as number)))} ms`);
    };
    hopLines(full, '  ');
    // The cold start: the first 125 jobs submitted (the Map keeps submit order).
    const first = full.slice(0, 125);
    lines.push(`  the first ${first.length} jobs:`);
    hopLines(first, '    ');
    process.stderr.write(`hops (${full.length} of ${at.size} jobs with every hop):\n${lines.join('\n')}\n`);
  });
  // The dispatcher calls the store's claimJobsById at each claim: wrapped on the instance.
  const attach = (target: JobStore): void => {
    const claim = target.claimJobsById.bind(target);
    target.claimJobsById = async (cmd) => {
      const results = await claim(cmd);
      const t = performance.now();
      results.forEach((r, i) => r.kind === 'claimed' && mark(cmd.jobs[i]?.jobId as string, 4, t));
      return results;
    };
  };
  return { mark, attach };
}

/**
 * BENCH_TRACE=1: calls, total wall time and rows per store method, printed to stderr at exit
 * (where a run spends its time: planning reads, claims, completions, outbox claims).
 */
function traceStore(up: Upshift): void {
  const store = up.store as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
  const stats: Record<string, { n: number; ms: number; rows: number }> = {};
  for (const m of ['readyOrgs', 'claimJobs', 'claimJobsById', 'finishJob', 'submitJob', 'heartbeat', 'recoverExpiredLeases', 'claimOutbox', 'completeInApp']) {
    const f = store[m]?.bind(store);
    if (!f) continue;
    store[m] = async (...a: unknown[]) => {
      const t = performance.now();
      const r = await f(...a);
      const s = (stats[m] ??= { n: 0, ms: 0, rows: 0 });
      s.n++;
      s.ms += performance.now() - t;
      if (Array.isArray(r)) s.rows += r.length;
      return r;
    };
  }
  process.on('exit', () => process.stderr.write(`store trace: ${JSON.stringify(stats)}\n`));
}

async function walLsn(): Promise<string> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    return (await admin.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn ?? '0/0';
  } finally {
    await admin.end();
  }
}

async function walBytesSince(lsn: string): Promise<number> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    return Number((await admin.query<{ n: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::text AS n', [lsn])).rows[0]?.n ?? 0);
  } finally {
    await admin.end();
  }
}

/** Pids of the PostgreSQL backends serving this process (matched by our sockets' local ports). */
async function ownBackends(connectionString: string): Promise<number[]> {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1] as string);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && inodes.has(f[9] as string)) ports.add(parseInt((f[1] as string).split(':')[1] as string, 16));
  }
  const admin = new pg.Client({ connectionString });
  await admin.connect();
  try {
    return (await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[]) AND pid <> pg_backend_pid()', [[...ports]])).rows.map((r) => r.pid);
  } finally {
    await admin.end();
  }
}

function cpuSecondsOf(pids: readonly number[]): { seconds: number; backends: number } {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // exited
    }
  }
  return { seconds: ticks / 100, backends: pids.length };
}

/**
 * A run that is killed (the driver's hard stop, the harness's time bound) cannot clean up after
 * itself; the next run does: schemas `bench_up_<pid>_<ms>` whose process no longer exists on
 * this machine are dropped, with their BullMQ queues.
 */
async function removeOrphans(): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const orphans: string[] = [];
  try {
    const rows = (await admin.query<{ nspname: string }>(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench\\_up\\_%'`)).rows;
    for (const { nspname } of rows) {
      const pid = /^bench_up_(\d+)_\d+$/.exec(nspname)?.[1];
      if (pid === undefined || existsSync(`/proc/${pid}`)) continue;
      await admin.query(`DROP SCHEMA IF EXISTS "${nspname}" CASCADE`);
      orphans.push(nspname);
    }
  } finally {
    await admin.end();
  }
  for (const nspname of orphans) {
    const queue = new Queue(`dispatch-${nspname}`, { connection: { url: redisUrl, connectTimeout: 2_000, maxRetriesPerRequest: 1 }, prefix: 'upshift' });
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close().catch(() => undefined);
  }
  if (orphans.length > 0) process.stderr.write(`${system}: removed ${orphans.length} schema(s) of killed runs: ${orphans.join(', ')}\n`);
}
