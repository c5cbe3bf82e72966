import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { apiTry, freePort, plan, repoRoot, rng, sleep, SLOW_ORG, SLOW_ORG_MAX_RUNNING, newSubmitLog, submitPlanned, TERMINAL, watchRunningCancels, cancelLatency, formatCancelLatency, type ApiAnswer, type CancelLatency, type Planned, type Violation } from './embedded.js';
import { checkPgInvariants, MISSING_IN_APP_SQL } from './pgInvariants.js';
import { startPrivatePostgres, startPrivateRedis } from './privateServices.js';

/**
 * Scale-mode chaos run (`npm run chaos -- --mode scale`; docs/chaos.md): a PRIVATE PostgreSQL
 * cluster and a PRIVATE redis-server (own temp dirs and ports, never the shared ones), several
 * `upshift api` and `upshift worker` processes, BullMQ dispatch by default. The same job mix
 * as embedded mode (plan() of embedded.ts) goes in over HTTP through random API processes;
 * K SIGKILLs hit random API and worker processes (each restarted); PostgreSQL is stopped
 * (immediate shutdown) for 10 s and Redis killed for 10 s mid-run. Every process that exits —
 * killed or on its own during an outage — is restarted. Then the invariants are checked from
 * the PostgreSQL store (pgInvariants.ts).
 */
export interface ScaleChaosOptions {
  readonly jobs: number;
  readonly kills: number;
  readonly seed: number;
  readonly apis?: number;
  readonly workers?: number;
  readonly dispatch?: 'bullmq' | 'store';
  readonly pgOutageMs?: number;
  readonly redisOutageMs?: number;
  readonly timeoutMs?: number;
  readonly drainTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

export interface ScaleChaosReport {
  readonly seed: number;
  readonly kills: { readonly api: number; readonly worker: number };
  readonly unplannedExits: number;
  readonly outages: string[];
  readonly jobsSubmitted: number;
  readonly jobsInStore: number;
  readonly byStatus: Record<string, number>;
  readonly keyedSubmits: number;
  readonly cancelsRequested: number;
  /** Of those, sent once the store showed the job running. */
  readonly cancelsOfRunning: number;
  /** Those cancels, request sent → job.canceled committed (kills and outages included). */
  readonly runningCancelLatency: CancelLatency | null;
  readonly canceledBeforeStart: number;
  readonly canceledAfterStart: number;
  readonly retriedAttempts: number;
  readonly ambiguousUnkeyedSubmits: number;
  readonly invariants: Violation[];
  readonly durationMs: number;
  readonly drainMs: number;
}

interface Slot {
  readonly role: 'api' | 'worker';
  readonly port: number;
  child: ChildProcess | null;
  url: string | null;
  killedByUs: boolean;
}

export async function runScaleChaos(options: ScaleChaosOptions): Promise<ScaleChaosReport> {
  const o = { apis: 2, workers: 2, dispatch: 'bullmq' as const, pgOutageMs: 10_000, redisOutageMs: 10_000, timeoutMs: 20 * 60_000, drainTimeoutMs: 60_000, log: (l: string) => process.stderr.write(l + '\n'), ...options };
  const t0 = Date.now();
  const deadline = t0 + o.timeoutMs;
  const root = repoRoot();
  const dir = mkdtempSync(join(tmpdir(), 'upshift-chaos-scale-'));
  chmodSync(dir, 0o755); // the postgres OS user runs the private cluster below it
  const pgsrv = await startPrivatePostgres(dir);
  const redis = o.dispatch === 'bullmq' ? await startPrivateRedis(dir) : null;
  const pool = new pg.Pool({ connectionString: pgsrv.url, max: 2, options: '-c search_path=upshift' });
  pool.on('error', () => undefined);
  const env: Record<string, string> = {
    UPSHIFT_DATABASE_URL: pgsrv.url,
    UPSHIFT_DATA_DIR: dir,
    UPSHIFT_DISPATCH_MODE: o.dispatch,
    ...(redis && { UPSHIFT_REDIS_URL: redis.url }),
    UPSHIFT_LEASE_MS: '2000',
    UPSHIFT_HEARTBEAT_MS: '400',
    UPSHIFT_BACKOFF_BASE_MS: '20',
    UPSHIFT_BACKOFF_MAX_MS: '200',
    UPSHIFT_POLL_MS: '200',
    UPSHIFT_CANCEL_GRACE_MS: '500',
    UPSHIFT_MAX_ATTEMPTS: '8',
    UPSHIFT_WORKER_CONCURRENCY: '16',
    UPSHIFT_NOTIFICATIONS_POLL_MS: '200',
    UPSHIFT_SHUTDOWN_GRACE_MS: '2000',
    UPSHIFT_ORG_MAX_RUNNING: `${SLOW_ORG}=${SLOW_ORG_MAX_RUNNING}`,
    UPSHIFT_LOG_LEVEL: 'error',
    UPSHIFT_OTEL_ENABLED: 'false',
  };
  const slots: Slot[] = [];
  for (let i = 0; i < o.apis + o.workers; i++) slots.push({ role: i < o.apis ? 'api' : 'worker', port: await freePort(), child: null, url: null, killedByUs: false });
  let stopping = false;
  let unplannedExits = 0;
  const kills = { api: 0, worker: 0 };
  const outages: string[] = [];
  const checkDeadline = (what: string): void => {
    if (Date.now() > deadline) throw new Error(`chaos scale: timed out after ${o.timeoutMs} ms (${what})`);
  };

  /** Keeps the slot's process running: (re)starts it whenever it exits, until the run stops. */
  async function keep(slot: Slot): Promise<void> {
    while (!stopping) {
      const args = slot.role === 'api' ? ['api', '--port', String(slot.port)] : ['worker'];
      const child = spawn(process.execPath, [join(root, 'bin', 'upshift.js'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
      let tail = '';
      child.stderr?.on('data', (d: Buffer) => (tail = (tail + d.toString()).slice(-6000)));
      slot.child = child;
      slot.killedByUs = false;
      const spawnedAt = Date.now();
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      // Workers have no HTTP listener: only API processes are health-checked (and called).
      void (async () => {
        while (slot.role === 'api' && child.exitCode === null && child.signalCode === null && !stopping) {
          try {
            if ((await fetch(`http://127.0.0.1:${slot.port}/health`, { signal: AbortSignal.timeout(1000) })).ok) {
              slot.url = `http://127.0.0.1:${slot.port}`;
              return;
            }
          } catch {
            // not listening yet
          }
          await sleep(50);
        }
      })();
      await exited;
      slot.url = null;
      if (stopping) return;
      if (!slot.killedByUs) {
        unplannedExits++;
        const lines = tail.trim().split('\n');
        // A refused start (store down) says so in its last line; anything else gets its stack.
        const last = lines[lines.length - 1] ?? '';
        o.log(`chaos scale: ${slot.role} ${slot.port} exited on its own after ${Date.now() - spawnedAt} ms (${child.exitCode ?? child.signalCode}): ${last.startsWith('upshift:') ? last : lines.slice(-25).join('\n')}`);
      }
      await sleep(slot.killedByUs ? 0 : 500);
    }
  }
  // The first process (an API) migrates the schema alone; the others start once it is healthy.
  const keepers = [keep(slots[0] as Slot)];
  while (!slots[0]?.url) {
    checkDeadline('first process healthy');
    await sleep(50);
  }
  for (const s of slots.slice(1)) keepers.push(keep(s));

  try {
    const apiSlots = slots.filter((s) => s.role === 'api');
    async function call<T>(method: string, path: string, org: string, body?: unknown, headers?: Record<string, string>): Promise<ApiAnswer<T>> {
      for (let attempts = 1; ; attempts++) {
        checkDeadline(`${method} ${path}`);
        const live = apiSlots.filter((s) => s.url !== null);
        const target = live[Math.floor(Math.random() * live.length)];
        if (!target?.url) {
          await sleep(50);
          continue;
        }
        try {
          return { ...(await apiTry<T>(target.url, method, path, org, body, headers)), attempts };
        } catch {
          await sleep(50 + Math.floor(Math.random() * 150));
        }
      }
    }

    const jobs = plan({ jobs: o.jobs, seed: o.seed, sleepMinMs: 5, sleepMaxMs: 60, longSleepMs: 600 });
    const submits = newSubmitLog();
    let cancels = 0;
    async function submitOne(p: Planned): Promise<void> {
      const jobId = await submitPlanned(call, p, submits);
      if (p.cancel === 'before-start') {
        // Right away, through any API process (mostly before the job starts).
        cancels++;
        await call('POST', `/analyze/jobs/${jobId}/cancel`, p.org);
      } else if (p.cancel === 'while-running') runningCancels.add(jobId, p);
    }
    // Cancels of running jobs, through a random API process while a worker of another process
    // runs the job: a fixed delay after the submit mostly hit jobs still queued behind the
    // backlog, so the candidates are watched in the store and canceled once running.
    const runningCancels = watchRunningCancels(
      (ids) =>
        pool.query<{ job_id: string; status: string }>(`SELECT job_id, status FROM jobs WHERE job_id = ANY($1::text[])`, [ids]).then(
          (r) => r.rows,
          () => [], // PostgreSQL is down (the outage): next round
        ),
      call,
    );

    let next = 0;
    let submitError: unknown;
    let submitDone = false;
    void Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let p = jobs[next++]; p; p = jobs[next++]) await submitOne(p);
      }),
    ).then(
      () => (submitDone = true),
      (e: unknown) => (submitError = e),
    );

    const counts = async (): Promise<{ total: number; terminal: number } | null> => {
      try {
        const { rows } = await pool.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM jobs GROUP BY status`);
        let total = 0;
        let terminal = 0;
        for (const r of rows) {
          total += r.n;
          if ((TERMINAL as readonly string[]).includes(r.status)) terminal += r.n;
        }
        return { total, terminal };
      } catch {
        return null; // PostgreSQL is down (the outage) or restarting
      }
    };

    const rnd = rng(o.seed ^ 0x51ed270b);
    const thresholds = Array.from({ length: o.kills }, () => 0.02 + rnd() * 0.83).sort((a, b) => a - b);
    const outagePlan: { at: number; what: 'postgres' | 'redis'; done: boolean }[] = [{ at: 0.3, what: 'postgres', done: false }];
    if (redis) outagePlan.push({ at: 0.6, what: 'redis', done: false });
    let killCount = 0;
    let lastLog = 0;
    for (;;) {
      checkDeadline('waiting for every job to be terminal');
      if (submitError !== undefined) throw submitError;
      const c = await counts();
      if (!c) {
        await sleep(100);
        continue;
      }
      const progress = 0.4 * (submits.submitted / o.jobs) + 0.6 * Math.min(1, c.terminal / o.jobs);
      if (Date.now() - lastLog > 5_000) {
        lastLog = Date.now();
        o.log(`chaos scale: ${((Date.now() - t0) / 1000).toFixed(1)} s, submitted ${submits.submitted}/${o.jobs}, terminal ${c.terminal}/${c.total}, kills ${killCount}/${o.kills}`);
      }
      const outage = outagePlan.find((x) => !x.done && progress >= x.at);
      if (outage) {
        outage.done = true;
        const ms = outage.what === 'postgres' ? o.pgOutageMs : o.redisOutageMs;
        o.log(`chaos scale: stopping ${outage.what} for ${ms} ms`);
        if (outage.what === 'postgres') pgsrv.stop();
        else await redis?.stop();
        await sleep(ms);
        if (outage.what === 'postgres') pgsrv.start();
        else await redis?.start();
        outages.push(`${outage.what} stopped ${ms / 1000} s at ${Math.round(progress * 100)} % progress`);
        continue;
      }
      const threshold = thresholds[killCount];
      if (threshold !== undefined && (progress >= threshold || (submitDone && c.terminal >= c.total))) {
        await sleep(Math.floor(rnd() * 250));
        const victim = slots[Math.floor(rnd() * slots.length)] as Slot;
        if (victim.child && victim.child.exitCode === null && victim.child.signalCode === null) {
          victim.killedByUs = true;
          victim.child.kill('SIGKILL');
          kills[victim.role]++;
          killCount++;
        }
        continue;
      }
      if (killCount >= o.kills && outagePlan.every((x) => x.done) && submitDone && c.total > 0 && c.terminal === c.total) break;
      await sleep(50);
    }

    await runningCancels.stop();

    const tDrain = Date.now();
    for (;;) {
      const missing = await pool.query<{ n: number }>(MISSING_IN_APP_SQL).then((r) => r.rows[0]?.n ?? 0, () => -1);
      if (missing === 0 || Date.now() > Math.min(deadline, tDrain + o.drainTimeoutMs)) break;
      await sleep(100);
    }
    const drainMs = Date.now() - tDrain;
    stopping = true;
    for (const s of slots) s.child?.kill('SIGTERM');
    await Promise.race([Promise.all(keepers), sleep(15_000)]);

    const c = await pool.connect();
    try {
      const invariants = await checkPgInvariants(c);
      const keyed = jobs.filter((p) => p.key !== null);
      const idem = [...submits.idemViolations];
      for (const p of keyed) {
        const { rows } = await c.query<{ job_id: string }>(`SELECT job_id FROM jobs WHERE org_id = $1 AND idempotency_key = $2`, [p.org, p.key]);
        if (rows.length !== 1 || rows[0]?.job_id !== submits.ids.get(p.i)) idem.push(`${p.key}: store has ${rows.map((r) => r.job_id).join(',') || 'none'}, client saw ${submits.ids.get(p.i)}`);
      }
      invariants.push({ name: 'idempotent resubmit created no second job', count: idem.length, examples: idem.slice(0, 5) });
      const { rows: found } = await c.query<{ job_id: string }>(`SELECT job_id FROM jobs WHERE job_id = ANY($1::text[])`, [[...submits.ids.values()]]);
      const have = new Set(found.map((r) => r.job_id));
      const lost = [...submits.ids.values()].filter((id) => !have.has(id));
      invariants.push({ name: 'every accepted job is in the store', count: lost.length, examples: lost.slice(0, 5) });
      const byStatus: Record<string, number> = {};
      for (const r of (await c.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM jobs GROUP BY status`)).rows) byStatus[r.status] = r.n;
      const one = async (sql: string): Promise<number> => (await c.query<{ n: number }>(sql)).rows[0]?.n ?? 0;
      const started = `EXISTS (SELECT 1 FROM job_events e WHERE e.job_id = j.job_id AND e.type = 'job.started')`;
      return {
        seed: o.seed,
        kills,
        unplannedExits,
        outages,
        jobsSubmitted: submits.ids.size,
        jobsInStore: await one(`SELECT count(*)::int AS n FROM jobs`),
        byStatus,
        keyedSubmits: keyed.length,
        cancelsRequested: cancels + runningCancels.sent(),
        cancelsOfRunning: runningCancels.sent(),
        runningCancelLatency: cancelLatency(
          runningCancels.sentAt,
          (
            await c.query<{ job_id: string; at: number }>(`SELECT job_id, occurred_at::float8 AS at FROM job_events WHERE type = 'job.canceled' AND job_id = ANY($1::text[])`, [
              [...runningCancels.sentAt.keys()],
            ])
          ).rows,
        ),
        canceledBeforeStart: await one(`SELECT count(*)::int AS n FROM jobs j WHERE status = 'canceled' AND NOT ${started}`),
        canceledAfterStart: await one(`SELECT count(*)::int AS n FROM jobs j WHERE status = 'canceled' AND ${started}`),
        retriedAttempts: await one(`SELECT coalesce(sum(attempt - 1), 0)::int AS n FROM jobs`),
        ambiguousUnkeyedSubmits: submits.ambiguousUnkeyed,
        invariants,
        durationMs: Date.now() - t0,
        drainMs,
      };
    } finally {
      c.release();
    }
  } finally {
    stopping = true;
    for (const s of slots) if (s.child && s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
    await pool.end().catch(() => undefined);
    await redis?.destroy();
    pgsrv.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatScaleReport(r: ScaleChaosReport): string {
  const rows: [string, string][] = [
    ['seed', String(r.seed)],
    ['kills (SIGKILL, restarted): api / worker', `${r.kills.api} / ${r.kills.worker}`],
    ['processes that exited on their own (restarted)', String(r.unplannedExits)],
    ['outages', r.outages.join('; ') || 'none'],
    ['jobs submitted (answered)', String(r.jobsSubmitted)],
    ['jobs in store', `${r.jobsInStore} (${r.ambiguousUnkeyedSubmits} unkeyed submits retried)`],
    ...TERMINAL.map((s): [string, string] => [`  ${s}`, String(r.byStatus[s] ?? 0)]),
    ['keyed submits (each resubmitted once)', String(r.keyedSubmits)],
    ['cancels requested (of running jobs) / canceled before start / after start', `${r.cancelsRequested} (${r.cancelsOfRunning}) / ${r.canceledBeforeStart} / ${r.canceledAfterStart}`],
    ['cancel of a running job → job.canceled committed', formatCancelLatency(r.runningCancelLatency)],
    ['extra attempts (retries + lease recoveries)', String(r.retriedAttempts)],
    ...r.invariants.map((v): [string, string] => [`invariant: ${v.name}`, v.count === 0 ? '0 violations' : `${v.count} VIOLATIONS e.g. ${v.examples.join('; ')}`]),
    ['duration', `${(r.durationMs / 1000).toFixed(1)} s (notification drain ${(r.drainMs / 1000).toFixed(1)} s)`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const line = `+${'-'.repeat(w + 2)}+${'-'.repeat(24)}`;
  return [line, ...rows.map(([k, v]) => `| ${k.padEnd(w)} | ${v}`), line].join('\n');
}
