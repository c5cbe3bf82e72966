import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type BetterSqlite3 from 'better-sqlite3';
import { loadSqliteDriver } from '../../src/adapters/store/sqlite/sqliteDriver.js';
import { percentile } from '../harness.js';

/**
 * Embedded-mode chaos run (issue 5, item 6; docs/chaos.md): `sleep` jobs with partials over
 * HTTP across several tenants, idempotent resubmits, cancels before start and while running,
 * and K SIGKILLs of the embedded server at seeded random moments, each followed by a restart
 * on the same SQLite file. Once every job is terminal (and the notification dispatcher has
 * drained), the invariants are checked from the store, read-only, with plain SQL.
 */

export interface ChaosOptions {
  readonly jobs: number;
  readonly kills: number;
  readonly seed: number;
  /** Lease of a running job; a killed server's jobs come back after it. */
  readonly leaseMs?: number;
  readonly heartbeatMs?: number;
  /** sleep ms of an ordinary job: uniform in [min, max]. */
  readonly sleepMinMs?: number;
  readonly sleepMaxMs?: number;
  /** sleep ms of a job meant to be canceled while running. */
  readonly longSleepMs?: number;
  /** Submit requests in flight. */
  readonly submitConcurrency?: number;
  readonly workerConcurrency?: number;
  /** Overall bound: the run fails if not every job is terminal by then. */
  readonly timeoutMs?: number;
  /** Bound on the wait for the in-app notifications after the last restart. */
  readonly drainTimeoutMs?: number;
  /** Progress lines on stderr. */
  readonly log?: (line: string) => void;
  /** Keep the temp directory (for inspection). */
  readonly keepDir?: boolean;
}

export interface Violation {
  readonly name: string;
  readonly count: number;
  readonly examples: string[];
}

export interface ChaosReport {
  readonly seed: number;
  readonly kills: number;
  readonly restarts: number;
  /** Jobs `running` in the store at the moments of the kills, summed over the kills. */
  readonly runningAtKills: number;
  readonly jobsSubmitted: number;
  readonly jobsInStore: number;
  readonly byStatus: Record<string, number>;
  readonly keyedSubmits: number;
  readonly cancelsBeforeStartRequested: number;
  readonly cancelsWhileRunningRequested: number;
  /** Those cancels, request sent → job.canceled committed (kills included: a cancel whose worker died waits for the recovery). */
  readonly runningCancelLatency: CancelLatency | null;
  readonly canceledBeforeStart: number;
  readonly canceledAfterStart: number;
  readonly retriedAttempts: number;
  readonly ambiguousUnkeyedSubmits: number;
  readonly invariants: Violation[];
  readonly durationMs: number;
  readonly processingMs: number;
  readonly drainMs: number;
  readonly dbFile: string;
}

export const TERMINAL = ['completed', 'failed', 'canceled'] as const;
const ORGS = ['chaos-a', 'chaos-b', 'chaos-c'] as const;
/**
 * A tenant capped at a few running jobs (UPSHIFT_ORG_MAX_RUNNING), so it always has a backlog:
 * the cancel-before-start jobs go there, at low priority, and are still queued when canceled.
 */
export const SLOW_ORG = 'chaos-slow';
export const SLOW_ORG_MAX_RUNNING = 4;

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bin', 'upshift.js'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root (package.json + bin/upshift.js) not found');
    dir = up;
  }
}

/** mulberry32: small, seeded, good enough to pick moments and job shapes reproducibly. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

interface Server {
  readonly child: ChildProcess;
  readonly url: string;
  readonly exited: Promise<number | string>;
  readonly output: () => string;
}

async function startServer(root: string, env: Record<string, string>, port: number, deadlineMs = 60_000): Promise<Server> {
  const child = spawn(process.execPath, [join(root, 'bin', 'upshift.js'), 'serve', '--port', String(port)], {
    env: { ...process.env, UPSHIFT_LOG_LEVEL: 'warn', UPSHIFT_OTEL_ENABLED: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`server exited early (${child.exitCode ?? child.signalCode}):\n${out}`);
    try {
      const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not become healthy within ${deadlineMs} ms:\n${out}`);
    }
    await sleep(50);
  }
  return { child, url, exited, output: () => out };
}

export interface Planned {
  readonly i: number;
  readonly org: string;
  readonly input: { ms: number; steps: number; fail?: 'permanent' | 'retryable' };
  readonly maxAttempts?: number;
  readonly priority?: number;
  readonly key: string | null;
  readonly cancel: 'none' | 'before-start' | 'while-running';
}

export function plan(opts: Required<Pick<ChaosOptions, 'jobs' | 'seed' | 'sleepMinMs' | 'sleepMaxMs' | 'longSleepMs'>>): Planned[] {
  const r = rng(opts.seed);
  const out: Planned[] = [];
  for (let i = 0; i < opts.jobs; i++) {
    // 8 % of the ordinary jobs go to the capped tenant, to keep its backlog.
    const org = r() < 0.08 ? SLOW_ORG : (ORGS[Math.floor(r() * ORGS.length)] ?? 'chaos-a');
    const steps = 1 + Math.floor(r() * 4);
    const ms = opts.sleepMinMs + Math.floor(r() * (opts.sleepMaxMs - opts.sleepMinMs + 1));
    const key = r() < 0.3 ? `chaos-${opts.seed}-${i}` : null;
    const x = r();
    if (x < 0.03) out.push({ i, org: SLOW_ORG, input: { ms, steps }, priority: -100, key, cancel: 'before-start' });
    else if (x < 0.05) out.push({ i, org, input: { ms: opts.longSleepMs, steps: 4 }, key, cancel: 'while-running' });
    else if (x < 0.07) out.push({ i, org, input: { ms, steps, fail: 'retryable' }, maxAttempts: 2, key, cancel: 'none' });
    else if (x < 0.08) out.push({ i, org, input: { ms, steps, fail: 'permanent' }, key, cancel: 'none' });
    else out.push({ i, org, input: { ms, steps }, key, cancel: 'none' });
  }
  return out;
}

export interface ApiAnswer<T> {
  readonly status: number;
  readonly body: T;
  /** Tries it took: more than one means an earlier try may have reached the server too. */
  readonly attempts: number;
  readonly replayed: boolean;
}

/** An HTTP call to the API as `org` that survives kills: retried on network errors and 5xx. */
export type ApiCall = <T>(method: string, path: string, org: string, body?: unknown, headers?: Record<string, string>) => Promise<ApiAnswer<T>>;

/** One try of an ApiCall against `baseUrl`: throws on a network error or a 5xx, for the caller to retry. */
export async function apiTry<T>(baseUrl: string, method: string, path: string, org: string, body?: unknown, headers?: Record<string, string>): Promise<Omit<ApiAnswer<T>, 'attempts'>> {
  const r = await fetch(baseUrl + path, {
    method,
    headers: { 'x-org-id': org, ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
    ...(body !== undefined && { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await r.text();
  if (r.status >= 500) throw new Error(`HTTP ${r.status}: ${text}`);
  return { status: r.status, body: (text ? JSON.parse(text) : null) as T, replayed: r.headers.get('idempotent-replayed') === 'true' };
}

/** What the submitters saw; submitPlanned records into it. */
export interface SubmitLog {
  /** Plan index → the job id the API answered. */
  readonly ids: Map<number, string>;
  readonly idemViolations: string[];
  /** Unkeyed submits that took more than one try: each may have created a second job. */
  ambiguousUnkeyed: number;
  submitted: number;
}

export const newSubmitLog = (): SubmitLog => ({ ids: new Map(), idemViolations: [], ambiguousUnkeyed: 0, submitted: 0 });

/**
 * Submits a planned job and returns its id; a keyed one is submitted again, which must answer
 * as a replay of the same job.
 */
export async function submitPlanned(call: ApiCall, p: Planned, log: SubmitLog): Promise<string> {
  const headers = p.key ? { 'idempotency-key': p.key } : undefined;
  const body = { analyzer: 'sleep', input: p.input, ...(p.maxAttempts !== undefined && { max_attempts: p.maxAttempts }), ...(p.priority !== undefined && { priority: p.priority }) };
  const first = await call<{ job_id: string }>('POST', '/analyze/jobs', p.org, body, headers);
  if (first.status !== 202) throw new Error(`submit ${p.i}: HTTP ${first.status} ${JSON.stringify(first.body)}`);
  if (!p.key && first.attempts > 1) log.ambiguousUnkeyed++;
  log.ids.set(p.i, first.body.job_id);
  if (p.key) {
    const again = await call<{ job_id: string }>('POST', '/analyze/jobs', p.org, body, headers);
    // A replay answers 202 with the same job and `Idempotent-Replayed: true`.
    if (again.status !== 202 || !again.replayed || again.body.job_id !== first.body.job_id) {
      log.idemViolations.push(`${p.key}: first ${first.body.job_id}, resubmit HTTP ${again.status} replayed=${again.replayed} ${again.body.job_id}`);
    }
  }
  log.submitted++;
  return first.body.job_id;
}

/** Jobs picked for a cancel while running, watched in the store (see watchRunningCancels). */
export interface RunningCancels {
  /** Adds a submitted job to cancel once the store shows it running. */
  add(jobId: string, p: Planned): void;
  /** Cancels sent so far. */
  sent(): number;
  /** When each cancel was sent (epoch ms), by job id. */
  readonly sentAt: ReadonlyMap<string, number>;
  /** Stops watching and waits for the cancels in flight. */
  stop(): Promise<void>;
}

/**
 * Cancels of running jobs: every 50 ms reads the candidates' status from the store (read-only;
 * `read` returns [] when the store cannot answer right now) and sends each one's cancel through
 * the API as soon as it is `running`; a candidate that ended first is dropped.
 */
export function watchRunningCancels(read: (jobIds: string[]) => Promise<{ job_id: string; status: string }[]>, call: ApiCall): RunningCancels {
  const candidates = new Map<string, Planned>();
  const inFlight = new Set<Promise<unknown>>();
  const sentAt = new Map<string, number>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const rows = candidates.size === 0 ? [] : await read([...candidates.keys()]);
      for (const row of rows) {
        const p = candidates.get(row.job_id);
        if (!p) continue;
        if (row.status === 'running') {
          candidates.delete(row.job_id);
          sentAt.set(row.job_id, Date.now());
          const cancel: Promise<unknown> = call('POST', `/analyze/jobs/${row.job_id}/cancel`, p.org)
            .catch(() => undefined)
            .finally(() => inFlight.delete(cancel));
          inFlight.add(cancel);
        } else if ((TERMINAL as readonly string[]).includes(row.status)) candidates.delete(row.job_id);
      }
      // Unref'd: a run that fails before stop() is not kept alive by its watcher.
      await new Promise((r) => setTimeout(r, 50).unref());
    }
  })();
  return {
    add: (jobId, p) => void candidates.set(jobId, p),
    sent: () => sentAt.size,
    sentAt,
    stop: async () => {
      stopped = true;
      await loop;
      await Promise.all([...inFlight]);
    },
  };
}

/** Cancel of a running job sent → its `job.canceled` event (its occurred_at), for the jobs that have one. */
export interface CancelLatency {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export function cancelLatency(sentAt: ReadonlyMap<string, number>, canceledAt: readonly { job_id: string; at: number }[]): CancelLatency | null {
  const ms = canceledAt.flatMap((r) => (sentAt.has(r.job_id) ? [Math.max(0, r.at - (sentAt.get(r.job_id) as number))] : [])).sort((a, b) => a - b);
  if (ms.length === 0) return null;
  return { n: ms.length, p50: percentile(ms, 50), p99: percentile(ms, 99), max: ms.at(-1) as number };
}

export const formatCancelLatency = (l: CancelLatency | null): string => (l === null ? 'none canceled after the request' : `n = ${l.n}: p50 ${l.p50} ms, p99 ${l.p99} ms, max ${l.max} ms`);

/** Runs one chaos run; throws only when the run itself cannot proceed (timeout, server won't start). */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const o = {
    leaseMs: 1500,
    heartbeatMs: 300,
    sleepMinMs: 5,
    sleepMaxMs: 60,
    longSleepMs: 600,
    submitConcurrency: 16,
    workerConcurrency: 32,
    timeoutMs: 15 * 60_000,
    drainTimeoutMs: 60_000,
    log: (l: string) => process.stderr.write(l + '\n'),
    keepDir: false,
    ...options,
  };
  const t0 = Date.now();
  const deadline = t0 + o.timeoutMs;
  const root = repoRoot();
  const dir = mkdtempSync(join(tmpdir(), 'upshift-chaos-'));
  const dbFile = join(dir, 'upshift.db');
  const env = {
    UPSHIFT_DATABASE_URL: `sqlite:${dbFile}`,
    UPSHIFT_DATA_DIR: dir,
    UPSHIFT_LEASE_MS: String(o.leaseMs),
    UPSHIFT_HEARTBEAT_MS: String(o.heartbeatMs),
    UPSHIFT_BACKOFF_BASE_MS: '20',
    UPSHIFT_BACKOFF_MAX_MS: '200',
    UPSHIFT_POLL_MS: '100',
    UPSHIFT_CANCEL_GRACE_MS: '500',
    UPSHIFT_MAX_ATTEMPTS: '8',
    UPSHIFT_WORKER_CONCURRENCY: String(o.workerConcurrency),
    UPSHIFT_NOTIFICATIONS_POLL_MS: '200',
    UPSHIFT_SHUTDOWN_GRACE_MS: '2000',
    UPSHIFT_ORG_MAX_RUNNING: `${SLOW_ORG}=${SLOW_ORG_MAX_RUNNING}`,
  };
  const rnd = rng(o.seed ^ 0x9e3779b9);
  const jobs = plan({ jobs: o.jobs, seed: o.seed, sleepMinMs: o.sleepMinMs, sleepMaxMs: o.sleepMaxMs, longSleepMs: o.longSleepMs });

  // ---- the server, killed and restarted under the clients' feet ----
  const allServers: Server[] = [];
  try {
    let port = await freePort();
    let server = await startServer(root, env, port);
    allServers.push(server);
    let up: Promise<void> = Promise.resolve();
    let kills = 0;
    let restarts = 0;
    let runningAtKills = 0;

    const Database = loadSqliteDriver();
    let reader: BetterSqlite3.Database | undefined;
    const db = (): BetterSqlite3.Database => (reader ??= new Database(dbFile, { readonly: true, fileMustExist: true }));

    const checkDeadline = (what: string): void => {
      if (Date.now() > deadline) throw new Error(`chaos: timed out after ${o.timeoutMs} ms (${what})`);
    };

    /** One HTTP call that survives kills: retried (after the restart) on network errors and 5xx. */
    async function call<T>(method: string, path: string, org: string, body?: unknown, headers?: Record<string, string>): Promise<ApiAnswer<T>> {
      for (let attempts = 1; ; attempts++) {
        checkDeadline(`${method} ${path}`);
        await up;
        const url = server.url;
        try {
          return { ...(await apiTry<T>(url, method, path, org, body, headers)), attempts };
        } catch {
          await sleep(20 + Math.floor(Math.random() * 80));
        }
      }
    }

    // ---- submitters ----
    const submits = newSubmitLog();
    let cancelsBefore = 0;

    async function submitOne(p: Planned): Promise<void> {
      const jobId = await submitPlanned(call, p, submits);
      if (p.cancel === 'before-start') {
        cancelsBefore++;
        await call('POST', `/analyze/jobs/${jobId}/cancel`, p.org);
      } else if (p.cancel === 'while-running') {
        runningCancels.add(jobId, p);
      }
    }

    let next = 0;
    const submitters = Array.from({ length: o.submitConcurrency }, async () => {
      for (;;) {
        const p = jobs[next++];
        if (!p) return;
        await submitOne(p);
      }
    });
    const submitting = Promise.all(submitters);
    let submitDone = false;
    let submitError: unknown;
    void submitting.then(
      () => (submitDone = true),
      (e: unknown) => (submitError = e),
    );

    // ---- cancels of running jobs: watch the candidates in the store, cancel once running ----
    const runningCancels = watchRunningCancels(async (ids) => {
      try {
        return db()
          .prepare(`SELECT job_id, status FROM jobs WHERE job_id IN (SELECT value FROM json_each(?))`)
          .all(JSON.stringify(ids)) as { job_id: string; status: string }[];
      } catch {
        return []; // SQLITE_BUSY while a restarted server recovers the WAL: next round
      }
    }, call);

    // ---- progress: 0..1 over submission (40 %) and completion (60 %) ----
    const counts = (): { total: number; terminal: number; byStatus: Record<string, number> } => {
      const rows = db().prepare(`SELECT status, count(*) AS n FROM jobs GROUP BY status`).all() as { status: string; n: number }[];
      const byStatus: Record<string, number> = {};
      let total = 0;
      let terminal = 0;
      for (const r of rows) {
        byStatus[r.status] = r.n;
        total += r.n;
        if ((TERMINAL as readonly string[]).includes(r.status)) terminal += r.n;
      }
      return { total, terminal, byStatus };
    };

    // ---- the killer ----
    const thresholds = Array.from({ length: o.kills }, () => 0.02 + rnd() * 0.83).sort((a, b) => a - b);
    const jitters = thresholds.map(() => Math.floor(rnd() * 250));
    let lastLog = 0;
    const tProcessing = Date.now();
    for (;;) {
      checkDeadline('waiting for every job to be terminal');
      if (submitError !== undefined) throw submitError;
      let c: ReturnType<typeof counts>;
      try {
        c = counts();
      } catch {
        // SQLITE_BUSY while a restarted server recovers the WAL: next round.
        await sleep(50);
        continue;
      }
      const progress = 0.4 * (submits.submitted / o.jobs) + 0.6 * Math.min(1, c.terminal / o.jobs);
      if (Date.now() - lastLog > 5_000) {
        lastLog = Date.now();
        o.log(`chaos: ${((Date.now() - t0) / 1000).toFixed(1)} s, submitted ${submits.submitted}/${o.jobs}, terminal ${c.terminal}/${c.total}, kills ${kills}/${o.kills}`);
      }
      const threshold = thresholds[kills];
      if (threshold !== undefined && (progress >= threshold || (submitDone && c.terminal >= c.total))) {
        await sleep(jitters[kills] ?? 0);
        let release: () => void = () => undefined;
        up = new Promise<void>((r) => (release = r));
        const victim = server;
        runningAtKills += c.byStatus.running ?? 0;
        victim.child.kill('SIGKILL');
        await victim.exited;
        kills++;
        try {
          server = await startServer(root, env, port);
        } catch {
          // The port was taken meanwhile: another one.
          port = await freePort();
          server = await startServer(root, env, port);
        }
        allServers.push(server);
        restarts++;
        release();
        continue;
      }
      if (kills >= o.kills && submitDone && c.total > 0 && c.terminal === c.total) break;
      await sleep(50);
    }
    await submitting;
    await runningCancels.stop();
    const processingMs = Date.now() - tProcessing;

    // ---- the dispatcher drains: one in-app notification per terminal job ----
    const tDrain = Date.now();
    const drainDeadline = Math.min(deadline, tDrain + o.drainTimeoutMs);
    for (;;) {
      const missing = (
        db()
          .prepare(
            `SELECT count(*) AS n FROM jobs j WHERE j.status IN ('completed','failed','canceled')
               AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.job_id = j.job_id AND n.channel = 'in_app')`,
          )
          .get() as { n: number }
      ).n;
      if (missing === 0 || Date.now() > drainDeadline) break;
      await sleep(100);
    }
    const drainMs = Date.now() - tDrain;

    server.child.kill('SIGTERM');
    const stopped = await Promise.race([server.exited, sleep(15_000).then(() => 'timeout' as const)]);
    if (stopped === 'timeout') {
      server.child.kill('SIGKILL');
      await server.exited;
    }
    reader?.close();
    reader = undefined;

    // ---- invariants, from the store ----
    const ro = new Database(dbFile, { readonly: true, fileMustExist: true });
    try {
      const invariants: Violation[] = [];
      const check = (name: string, sql: string, params: unknown[] = []): void => {
        const rows = ro.prepare(sql).all(...params) as { v: string }[];
        invariants.push({ name, count: rows.length, examples: rows.slice(0, 5).map((r) => r.v) });
      };
      check('every job terminal', `SELECT job_id || ' ' || status AS v FROM jobs WHERE status NOT IN ('completed','failed','canceled')`);
      check(
        'event_seq gap-free 1..n (= last_event_seq)',
        `SELECT j.job_id || ' count=' || ifnull(e.c, 0) || ' min=' || ifnull(e.mn, 0) || ' max=' || ifnull(e.mx, 0) || ' last=' || j.last_event_seq AS v
           FROM jobs j LEFT JOIN (SELECT job_id, count(*) AS c, min(event_seq) AS mn, max(event_seq) AS mx FROM job_events GROUP BY job_id) e
             ON e.job_id = j.job_id
          WHERE e.c IS NULL OR e.mn <> 1 OR e.mx <> e.c OR e.mx <> j.last_event_seq`,
      );
      check(
        'at most one terminal event per job',
        `SELECT job_id || ' ' || count(*) AS v FROM job_events WHERE type IN ('job.completed','job.failed','job.canceled')
          GROUP BY job_id HAVING count(*) > 1`,
      );
      check(
        'terminal event matches job status and is the last event',
        `SELECT j.job_id || ' status=' || j.status || ' terminal=' || ifnull(t.type, '-') AS v
           FROM jobs j LEFT JOIN job_events t
             ON t.job_id = j.job_id AND t.type IN ('job.completed','job.failed','job.canceled')
          WHERE j.status IN ('completed','failed','canceled')
            AND (t.type IS NULL OR t.type <> 'job.' || j.status OR t.event_seq <> j.last_event_seq)`,
      );
      check(
        'partial chunk keys unique per job',
        `SELECT job_id || ' ' || chunk_key || ' x' || count(*) AS v FROM job_results WHERE kind = 'partial'
          GROUP BY job_id, chunk_key HAVING count(*) > 1`,
      );
      check(
        'partial results = job.partial events (= partial_count)',
        `SELECT j.job_id || ' results=' || ifnull(r.n, 0) || ' events=' || ifnull(e.n, 0) || ' partial_count=' || j.partial_count AS v
           FROM jobs j
           LEFT JOIN (SELECT job_id, count(*) AS n FROM job_results WHERE kind = 'partial' GROUP BY job_id) r ON r.job_id = j.job_id
           LEFT JOIN (SELECT job_id, count(*) AS n FROM job_events WHERE type = 'job.partial' GROUP BY job_id) e ON e.job_id = j.job_id
          WHERE ifnull(r.n, 0) <> ifnull(e.n, 0) OR ifnull(r.n, 0) <> j.partial_count`,
      );
      check(
        'completed: every step-1..K partial and one final result (= result_id)',
        `SELECT j.job_id || ' steps=' || json_extract(j.input, '$.steps') || ' partials=' || ifnull(p.n, 0) || ' finals=' || ifnull(f.n, 0) AS v
           FROM jobs j
           LEFT JOIN (SELECT job_id, count(*) AS n FROM job_results WHERE kind = 'partial' GROUP BY job_id) p ON p.job_id = j.job_id
           LEFT JOIN (SELECT job_id, count(*) AS n, max(result_id) AS rid FROM job_results WHERE kind = 'final' GROUP BY job_id) f ON f.job_id = j.job_id
          WHERE j.status = 'completed'
            AND (ifnull(p.n, 0) <> json_extract(j.input, '$.steps') OR ifnull(f.n, 0) <> 1 OR f.rid IS NOT j.result_id
                 OR EXISTS (SELECT 1 FROM job_results x WHERE x.job_id = j.job_id AND x.kind = 'partial'
                             AND (x.chunk_key NOT LIKE 'step-%' OR CAST(substr(x.chunk_key, 6) AS INTEGER) NOT BETWEEN 1 AND json_extract(j.input, '$.steps'))))`,
      );
      check(
        'not completed: no final result',
        `SELECT j.job_id || ' ' || j.status AS v FROM jobs j WHERE j.status <> 'completed'
            AND EXISTS (SELECT 1 FROM job_results r WHERE r.job_id = j.job_id AND r.kind = 'final')`,
      );
      check(
        'exactly one in-app notification per terminal job (type matches)',
        `SELECT j.job_id || ' ' || j.status || ' notifications=' || count(n.notification_id) AS v
           FROM jobs j LEFT JOIN notifications n ON n.job_id = j.job_id AND n.channel = 'in_app'
          WHERE j.status IN ('completed','failed','canceled')
          GROUP BY j.job_id
         HAVING count(n.notification_id) <> 1 OR max(n.type) <> 'async.job.' || j.status`,
      );
      check('no notification for a non-terminal job', `SELECT n.job_id AS v FROM notifications n JOIN jobs j ON j.job_id = n.job_id WHERE j.status NOT IN ('completed','failed','canceled')`);
      check(
        'canceled before start: no result row',
        `SELECT j.job_id AS v FROM jobs j WHERE j.status = 'canceled'
            AND NOT EXISTS (SELECT 1 FROM job_events e WHERE e.job_id = j.job_id AND e.type = 'job.started')
            AND EXISTS (SELECT 1 FROM job_results r WHERE r.job_id = j.job_id)`,
      );
      // Idempotency: every keyed plan entry is exactly one job in the store, the one both submits answered.
      const keyed = jobs.filter((p) => p.key !== null);
      const byKey = ro.prepare(`SELECT job_id FROM jobs WHERE org_id = ? AND idempotency_key = ?`);
      const idem = [...submits.idemViolations];
      for (const p of keyed) {
        const rows = byKey.all(p.org, p.key) as { job_id: string }[];
        if (rows.length !== 1 || rows[0]?.job_id !== submits.ids.get(p.i)) idem.push(`${p.key}: store has ${rows.map((r) => r.job_id).join(',') || 'none'}, client saw ${submits.ids.get(p.i)}`);
      }
      invariants.push({ name: 'idempotent resubmit created no second job', count: idem.length, examples: idem.slice(0, 5) });
      // Every job the clients were answered is in the store.
      const exists = ro.prepare(`SELECT 1 FROM jobs WHERE job_id = ?`);
      const lost = [...submits.ids.values()].filter((id) => exists.get(id) === undefined);
      invariants.push({ name: 'every accepted job is in the store', count: lost.length, examples: lost.slice(0, 5) });

      const byStatus: Record<string, number> = {};
      for (const r of ro.prepare(`SELECT status, count(*) AS n FROM jobs GROUP BY status`).all() as { status: string; n: number }[]) byStatus[r.status] = r.n;
      const one = (sql: string): number => (ro.prepare(sql).get() as { n: number }).n;
      const report: ChaosReport = {
        seed: o.seed,
        kills,
        restarts,
        runningAtKills,
        jobsSubmitted: submits.ids.size,
        jobsInStore: one(`SELECT count(*) AS n FROM jobs`),
        byStatus,
        keyedSubmits: keyed.length,
        cancelsBeforeStartRequested: cancelsBefore,
        cancelsWhileRunningRequested: runningCancels.sent(),
        runningCancelLatency: cancelLatency(
          runningCancels.sentAt,
          ro
            .prepare(`SELECT job_id, occurred_at AS at FROM job_events WHERE type = 'job.canceled' AND job_id IN (SELECT value FROM json_each(?))`)
            .all(JSON.stringify([...runningCancels.sentAt.keys()])) as { job_id: string; at: number }[],
        ),
        canceledBeforeStart: one(`SELECT count(*) AS n FROM jobs j WHERE status = 'canceled' AND NOT EXISTS (SELECT 1 FROM job_events e WHERE e.job_id = j.job_id AND e.type = 'job.started')`),
        canceledAfterStart: one(`SELECT count(*) AS n FROM jobs j WHERE status = 'canceled' AND EXISTS (SELECT 1 FROM job_events e WHERE e.job_id = j.job_id AND e.type = 'job.started')`),
        retriedAttempts: one(`SELECT ifnull(sum(attempt - 1), 0) AS n FROM jobs`),
        ambiguousUnkeyedSubmits: submits.ambiguousUnkeyed,
        invariants,
        durationMs: Date.now() - t0,
        processingMs,
        drainMs,
        dbFile,
      };
      return report;
    } finally {
      ro.close();
    }
  } finally {
    for (const s of allServers) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
    if (!o.keepDir) rmSync(dir, { recursive: true, force: true });
  }
}

export function violations(r: ChaosReport): number {
  return r.invariants.reduce((n, v) => n + v.count, 0);
}

export function formatReport(r: ChaosReport): string {
  const rows: [string, string][] = [
    ['seed', String(r.seed)],
    ['kills (SIGKILL + restart)', `${r.kills} (${r.restarts} restarts; ${r.runningAtKills} jobs running in the store at the kills, summed)`],
    ['jobs submitted (answered)', String(r.jobsSubmitted)],
    ['jobs in store', `${r.jobsInStore} (${r.ambiguousUnkeyedSubmits} unkeyed submits retried after a kill)`],
    ...TERMINAL.map((s): [string, string] => [`  ${s}`, String(r.byStatus[s] ?? 0)]),
    ['  not terminal', String(Object.entries(r.byStatus).filter(([s]) => !(TERMINAL as readonly string[]).includes(s)).reduce((n, [, c]) => n + c, 0))],
    ['keyed submits (each resubmitted once)', String(r.keyedSubmits)],
    ['cancels requested: before start / while running', `${r.cancelsBeforeStartRequested} / ${r.cancelsWhileRunningRequested}`],
    ['canceled: before start / after start', `${r.canceledBeforeStart} / ${r.canceledAfterStart}`],
    ['cancel of a running job → job.canceled committed', formatCancelLatency(r.runningCancelLatency)],
    ['extra attempts (retries + lease recoveries)', String(r.retriedAttempts)],
    ...r.invariants.map((v): [string, string] => [`invariant: ${v.name}`, v.count === 0 ? '0 violations' : `${v.count} VIOLATIONS e.g. ${v.examples.join('; ')}`]),
    ['duration', `${(r.durationMs / 1000).toFixed(1)} s (processing ${(r.processingMs / 1000).toFixed(1)} s, notification drain ${(r.drainMs / 1000).toFixed(1)} s)`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const line = `+${'-'.repeat(w + 2)}+${'-'.repeat(24)}`;
  return [line, ...rows.map(([k, v]) => `| ${k.padEnd(w)} | ${v}`), line].join('\n');
}

function argValue(args: string[], name: string, def: number): number {
  const i = args.indexOf(name);
  if (i < 0) return def;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} expects a non-negative integer, got ${args[i + 1]}`);
  return v;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const jobs = argValue(args, '--jobs', 10_000);
  const kills = argValue(args, '--kills', 20);
  const seed = argValue(args, '--seed', Math.floor(Math.random() * 2 ** 31));
  const timeoutMs = argValue(args, '--timeout-ms', 30 * 60_000);
  const modeIdx = args.indexOf('--mode');
  const mode = modeIdx >= 0 ? args[modeIdx + 1] : 'embedded';
  if (mode === 'scale') {
    // Loaded on demand: scale.ts imports this module's helpers.
    const { runScaleChaos, formatScaleReport } = await import('./scale.js');
    const apis = argValue(args, '--apis', 2);
    const workers = argValue(args, '--workers', 2);
    const dispatch = args.includes('--dispatch-store') ? 'store' : 'bullmq';
    process.stderr.write(`chaos scale: ${jobs} jobs, ${kills} kills, ${apis} API + ${workers} worker processes, ${dispatch} dispatch, seed ${seed}\n`);
    const r = await runScaleChaos({ jobs, kills, seed, timeoutMs, apis, workers, dispatch });
    process.stdout.write(formatScaleReport(r) + '\n');
    const n = r.invariants.reduce((a, v) => a + v.count, 0);
    process.stdout.write(n === 0 ? 'chaos: 0 violations\n' : `chaos: ${n} VIOLATIONS\n`);
    process.exitCode = n === 0 ? 0 : 1;
    return;
  }
  if (mode !== 'embedded') throw new Error(`--mode expects embedded or scale, got ${mode}`);
  process.stderr.write(`chaos: ${jobs} jobs, ${kills} kills, seed ${seed}\n`);
  const report = await runChaos({ jobs, kills, seed, timeoutMs });
  process.stdout.write(formatReport(report) + '\n');
  const n = violations(report);
  process.stdout.write(n === 0 ? 'chaos: 0 violations\n' : `chaos: ${n} VIOLATIONS\n`);
  process.exitCode = n === 0 ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`chaos: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
