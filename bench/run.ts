import { SERVER_SYSTEMS } from './scenarios/serverSystems.js';
import { loadavg } from 'node:os';
import { runChild, summarise, upshiftNodeFlags, writeReport, type Measurement } from './harness.js';

/**
 * `npm run bench -- <scenario> [--quick] [--reps N]`. Every measurement runs in a fresh
 * process; systems are interleaved per repetition (A B C A B C …); the report gives medians with
 * min–max and, for the comparative scenarios, ratios Upshift / peer from the same run.
 */
interface Context {
  readonly reps: number;
  readonly quick: boolean;
  /** `all --quick`: every scenario once, the comparative ones at one concurrency / rate (c = 50, 500/s). */
  readonly smoke: boolean;
  /** Measurements that failed (exit code, time bound of the child); reported, not hidden. */
  readonly failures: string[];
  /** What the table does not show and why (e.g. a mode a system does not have). */
  readonly notes: string[];
}

interface System {
  readonly name: string;
  readonly script: string;
  readonly env: Record<string, string>;
  /** Node flags of the measured process (Upshift's own, see harness.upshiftNodeFlags). */
  readonly execArgv?: readonly string[];
}

const UPSHIFT = 'upshift-embedded';
const UPSHIFT_PG = 'upshift-postgres';
const UPSHIFT_PG_BULLMQ = 'upshift-postgres-bullmq';
/** Upshift embedded and every peer, defaults and tuned (see bench/scenarios/*.ts for what "tuned" sets). */
const systems: System[] = [
  { name: UPSHIFT, script: 'scenarios/upshiftLifecycle.js', env: {}, execArgv: upshiftNodeFlags() },
  { name: UPSHIFT_PG, script: 'scenarios/upshiftPostgres.js', env: {}, execArgv: upshiftNodeFlags() },
  { name: UPSHIFT_PG_BULLMQ, script: 'scenarios/upshiftPostgres.js', env: { BENCH_UPSHIFT_DISPATCH: 'bullmq' }, execArgv: upshiftNodeFlags() },
  { name: 'bullmq-no-persistence', script: 'scenarios/bullmq.js', env: {} },
  { name: 'bullmq-aof-everysec', script: 'scenarios/bullmq.js', env: { BENCH_BULLMQ_AOF: '1' } },
  { name: 'graphile-worker-default', script: 'scenarios/graphileWorker.js', env: {} },
  { name: 'graphile-worker-tuned', script: 'scenarios/graphileWorker.js', env: { BENCH_GW_TUNED: '1' } },
  { name: 'pg-boss-default', script: 'scenarios/pgBoss.js', env: {} },
  { name: 'pg-boss-tuned', script: 'scenarios/pgBoss.js', env: { BENCH_PGBOSS_TUNED: '1' } },
];

const pgSystemNames = new Set([UPSHIFT_PG, UPSHIFT_PG_BULLMQ, 'graphile-worker-tuned', 'pg-boss-tuned']);

/** In-scenario time bound (the scenario reports what it counted), and the hard kill after it. */
const deadlineS = (quick: boolean) => (quick ? 20 : 60);

async function measure(ctx: Context, sys: System, args: string[]): Promise<Measurement[]> {
  const deadline = deadlineS(ctx.quick);
  const label = `${sys.name} ${args.join(' ')}`;
  process.stderr.write(`[bench] ${new Date().toISOString().slice(11, 19)} ${label} (load ${loadavg()[0]?.toFixed(2)})\n`);
  try {
    return await runChild(sys.script, args, { env: { ...sys.env, BENCH_DEADLINE_S: String(deadline) }, timeoutMs: (deadline + 60) * 1000, execArgv: sys.execArgv });
  } catch (e) {
    ctx.failures.push(`${label}: ${(e as Error).message}`);
    process.stderr.write(`[bench] FAILED ${label}: ${(e as Error).message}\n`);
    return [];
  }
}

const scenarios: Record<string, (ctx: Context) => Promise<Measurement[]>> = {
  /** Adds without workers: awaited one by one, 50 in flight, bulk; every system interleaved. */
  async enqueue(ctx) {
    const sizes: Record<string, string> = ctx.quick ? { serial: '1000', inflight50: '5000', bulk: '10000' } : { serial: '5000', inflight50: '20000', bulk: '50000' };
    ctx.notes.push(`${UPSHIFT}, ${UPSHIFT_PG}, ${UPSHIFT_PG_BULLMQ}: bulk is n/a — the library API has no bulk submit (concurrent submits share one group commit instead; see "50 in flight").`);
    const out: Measurement[] = [];
    for (let i = 0; i < ctx.reps; i++) {
      for (const [how, n] of Object.entries(sizes)) {
        for (const sys of systems) if (!(how === 'bulk' && (sys.name === UPSHIFT || sys.name === UPSHIFT_PG || sys.name === UPSHIFT_PG_BULLMQ))) out.push(...(await measure(ctx, sys, ['enqueue', how, n])));
      }
    }
    return out;
  },
  async lifecycle({ reps, quick }) {
    const n = quick ? '5000' : '20000';
    const seconds = quick ? '3' : '10';
    const out: Measurement[] = [];
    for (let i = 0; i < reps; i++) {
      out.push(...(await runChild('scenarios/upshiftLifecycle.js', ['throughput', n, '50'], { execArgv: upshiftNodeFlags() })));
      out.push(...(await runChild('scenarios/upshiftLifecycle.js', ['latency', '500', seconds], { execArgv: upshiftNodeFlags() })));
    }
    return out;
  },
  /** N noop jobs pre-enqueued, time to process all, at concurrency 10 and 50; every system interleaved. */
  async process(ctx) {
    const n = ctx.quick ? '5000' : '20000';
    const out: Measurement[] = [];
    for (let i = 0; i < ctx.reps; i++) {
      for (const c of ctx.smoke ? ['50'] : ['10', '50']) for (const sys of systems) out.push(...(await measure(ctx, sys, ['throughput', n, c])));
    }
    return out;
  },
  /** Open-loop producer at 500/s and 200/s: add→start and add→done p50/p95/p99; every system interleaved. */
  async latency(ctx) {
    const seconds = ctx.quick ? '3' : '10';
    const out: Measurement[] = [];
    for (let i = 0; i < ctx.reps; i++) {
      for (const rate of ctx.smoke ? ['500'] : ['500', '200']) for (const sys of systems) out.push(...(await measure(ctx, sys, ['latency', rate, seconds])));
    }
    return out;
  },
  /**
   * PostgreSQL mode against the PostgreSQL peers (issue 4's acceptance, issue 5's PostgreSQL
   * targets): throughput (N = 20,000 noop pre-enqueued, c = 50) and add→start / add→done at
   * 500/s and 200/s, Upshift PostgreSQL-only beside graphile-worker and pg-boss tuned,
   * interleaved. Every run uses its own schema, dropped afterwards.
   */
  async pg(ctx) {
    const n = ctx.quick ? '5000' : '20000';
    const seconds = ctx.quick ? '3' : '10';
    const pgSystems = systems.filter((s) => pgSystemNames.has(s.name));
    const out: Measurement[] = [];
    for (let i = 0; i < ctx.reps; i++) {
      for (const sys of pgSystems) out.push(...(await measure(ctx, sys, ['throughput', n, '50'])));
      for (const rate of ctx.smoke ? ['500'] : ['500', '200']) for (const sys of pgSystems) out.push(...(await measure(ctx, sys, ['latency', rate, seconds])));
    }
    return out;
  },
  /**
   * HTTP API of a real server (bench/scenarios/upshiftHttp.ts) per server system — embedded,
   * PostgreSQL, PostgreSQL + BullMQ (serverSystems.ts), interleaved: GET /analyze/jobs/{id}
   * open-loop at 2,000/s idle and while a producer process submits 1,000 jobs/s, then POST and GET
   * max with autocannon; every load generator in its own process. Upshift only (no peer has an HTTP API).
   */
  async http({ reps, quick }) {
    const out: Measurement[] = [];
    for (let i = 0; i < reps; i++) {
      for (const system of serverSystems()) out.push(...(await runChild('scenarios/upshiftHttp.js', ['2000', '1000', quick ? '3' : '10', '32'], { env: { BENCH_SERVER_SYSTEM: system } })));
    }
    return out;
  },
  /** 1,000 concurrent SSE streams, commit→client latency (bench/scenarios/upshiftSse.ts), per server system. Upshift only. */
  async sse({ reps, quick }) {
    const out: Measurement[] = [];
    for (let i = 0; i < reps; i++) {
      for (const system of serverSystems()) out.push(...(await runChild('scenarios/upshiftSse.js', ['1000', quick ? '3' : '10', '1'], { env: { BENCH_SERVER_SYSTEM: system } })));
    }
    return out;
  },
  // Retention under API load (bench/scenarios/retention.ts): >= 1,000,000 eligible events.
  async retention({ reps, quick }) {
    const out: Measurement[] = [];
    for (let i = 0; i < reps; i++) out.push(...(await runChild('scenarios/retention.js', quick ? ['200000', '500', '4'] : ['1000000', '500', '10'], { timeoutMs: 900_000, execArgv: upshiftNodeFlags() })));
    return out;
  },
};

/** The server systems of the http/sse scenarios that `--systems` left in (all three by default). */
function serverSystems(): string[] {
  return SERVER_SYSTEMS.filter((name) => systems.some((s) => s.name === name));
}

const comparative = new Set(['enqueue', 'process', 'latency', 'pg']);
/** The system the ratios of a comparative scenario are computed for (default: Upshift embedded). */
const ratioBase: Record<string, string> = { pg: UPSHIFT_PG };

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const repsIdx = args.indexOf('--reps');
  const reps = repsIdx >= 0 ? Number(args[repsIdx + 1]) : 3;
  const names = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--reps' && args[i - 1] !== '--systems');
  // --systems a,b,c: only these systems in the comparative scenarios (a shorter side-by-side run).
  const systemsIdx = args.indexOf('--systems');
  if (systemsIdx >= 0) {
    const keep = new Set((args[systemsIdx + 1] ?? '').split(',').filter(Boolean));
    const unknown = [...keep].filter((k) => !systems.some((s) => s.name === k));
    if (keep.size === 0 || unknown.length > 0) {
      console.error(`--systems: unknown or missing system names ${unknown.join(', ')}; known: ${systems.map((s) => s.name).join(', ')}`);
      process.exit(2);
    }
    for (let i = systems.length - 1; i >= 0; i--) if (!keep.has(systems[i]!.name)) systems.splice(i, 1);
  }
  const wanted = names.length === 0 || names.includes('all') ? Object.keys(scenarios) : names;
  for (const name of wanted) {
    const scenario = scenarios[name];
    if (!scenario) {
      console.error(`unknown scenario "${name}"; known: ${Object.keys(scenarios).join(', ')}, all`);
      process.exit(2);
    }
    // --quick without --reps: a single scenario that is comparative keeps 3 repetitions (it is
    // bounded); everything else, and `all --quick` (a smoke run of every scenario), runs once.
    const smoke = quick && (wanted.length > 1 || !comparative.has(name));
    const ctx: Context = { reps: repsIdx >= 0 ? reps : smoke ? 1 : 3, quick, smoke: quick && (names.length === 0 || names.includes('all')), failures: [], notes: [] };
    const loadAtStart = loadavg();
    let measured: Measurement[] = [];
    try {
      measured = await scenario(ctx);
    } catch (e) {
      // One broken scenario must not hide the others' results: reported, and the exit code says so.
      ctx.failures.push(`${name}: ${(e as Error).message}`);
      process.exitCode = 1;
    }
    const summaries = summarise(measured);
    console.log(writeReport(name, summaries, `npm run bench -- ${args.join(' ')}`, comparative.has(name) ? (ratioBase[name] ?? UPSHIFT) : undefined, ctx.failures, loadAtStart, ctx.notes));
  }
}

await main();
