import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFailed, onTestFinished } from 'vitest';
import { api, freePort, repoRoot } from '../helpers/proc.js';
import { dropSchema, requirePostgres, requireRedis, testSchemaName } from '../helpers/services.js';
import { until } from '../helpers/runtime.js';

// Scale mode end to end (issue 4): 2 `upshift api` + 2 `upshift worker` processes from dist/,
// PostgreSQL (own schema) and a PRIVATE redis-server on its own port (the shared one is never
// stopped). BullMQ dispatch through the outbox relay. Checks: cross-process SSE, cross-process
// cancel (latency measured), 5,000 jobs submitted alternately to both APIs while a worker is
// killed with SIGKILL and Redis is killed for 10 s — every job ends exactly once, from the store.

const pgUrl = await requirePostgres();
// The shared Redis is only probed: the test needs redis-server to be installed and runs its own.
const redisAvailable = await requireRedis();

const N = Number(process.env.SCALE_E2E_JOBS ?? 5_000);
const SUBMIT_RATE = 250; // jobs/s, alternating APIs: the run lasts ~20 s, the disruptions happen inside it

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | string>;
}

function spawnProc(name: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'upshift.js'), ...args], {
    env: { ...process.env, UPSHIFT_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { name, child, output: () => out, exited };
}

async function startRedis(port: number, dir: string): Promise<Proc> {
  // No persistence: a restart loses every BullMQ entry, the worst case for "no job lost".
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const deadline = Date.now() + 10_000;
  while (!out.includes('Ready to accept connections')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server did not start:\n${out}`);
    await sleep(20);
  }
  return { name: 'redis', child, output: () => out, exited };
}

async function waitHealthy(url: string, p: Proc): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (p.child.exitCode !== null) throw new Error(`${p.name} exited early:\n${p.output()}`);
    try {
      if ((await fetch(`${url}/health`)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${p.name} did not become healthy:\n${p.output()}`);
    await sleep(50);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
}

describe.skipIf(!pgUrl || !redisAvailable)('scale mode: 2 API + 2 worker processes, PostgreSQL + BullMQ (private Redis)', () => {
  const schema = testSchemaName();
  const dir = mkdtempSync(join(tmpdir(), 'upshift-scale-'));
  const procs: Proc[] = [];
  let redis: Proc;
  let redisPort: number;
  let db: pg.Client;
  const apis: string[] = [];
  let env: Record<string, string>;
  const report: string[] = [];

  const startWorker = (name: string): Proc => {
    const w = spawnProc(name, ['worker'], env);
    procs.push(w);
    return w;
  };

  beforeAll(async () => {
    redisPort = await freePort();
    redis = await startRedis(redisPort, dir);
    env = {
      UPSHIFT_DATABASE_URL: pgUrl!,
      UPSHIFT_DATABASE_SCHEMA: schema,
      UPSHIFT_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      UPSHIFT_DISPATCH_MODE: 'bullmq',
      UPSHIFT_DATA_DIR: dir,
      UPSHIFT_WORKER_CONCURRENCY: '50',
      // A killed worker's jobs come back within ~10 s, not the production 30 s. Heartbeats stay
      // rare: each one locks every running row of the worker (see the report on store deadlocks).
      UPSHIFT_LEASE_MS: '10000',
      UPSHIFT_HEARTBEAT_MS: '3000',
      UPSHIFT_BACKOFF_BASE_MS: '100',
      UPSHIFT_BACKOFF_MAX_MS: '500',
      UPSHIFT_DISPATCH_SWEEP_MS: '1000',
      UPSHIFT_DISPATCH_SWEEP_GRACE_MS: '2000',
      UPSHIFT_NOTIFICATIONS_ENABLED: 'false',
      UPSHIFT_SHUTDOWN_GRACE_MS: '2000',
    };
    // The first API migrates the schema; the others then start in parallel.
    const port1 = await freePort();
    const a1 = spawnProc('api1', ['api', '--port', String(port1)], env);
    procs.push(a1);
    apis.push(`http://127.0.0.1:${port1}`);
    await waitHealthy(apis[0]!, a1);
    const port2 = await freePort();
    const a2 = spawnProc('api2', ['api', '--port', String(port2)], env);
    procs.push(a2);
    apis.push(`http://127.0.0.1:${port2}`);
    startWorker('worker1');
    startWorker('worker2');
    await waitHealthy(apis[1]!, a2);
    db = new pg.Client({ connectionString: pgUrl! });
    await db.connect();
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGTERM');
    await Promise.race([Promise.all(procs.map((p) => p.exited)), sleep(8_000)]);
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    if (redis?.child.exitCode === null) redis.child.kill('SIGKILL');
    await db?.end();
    await dropSchema(pgUrl!, schema).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    if (report.length > 0) console.log(`\nscale-mode e2e:\n  ${report.join('\n  ')}`);
  });

  const submit = async (i: number, input: unknown, analyzer = 'sleep'): Promise<string> => {
    const r = await api<{ job_id: string }>(apis[i % 2]!, '/analyze/jobs', { body: { analyzer, input }, org: `org${i % 3}` });
    if (r.status !== 202) throw new Error(`submit answered ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body.job_id;
  };
  const status = async (i: number, jobId: string): Promise<string> =>
    (await api<{ status: string }>(apis[i % 2]!, `/analyze/jobs/${jobId}`, { org: `org${i % 3}` })).body.status;

  it('readiness reports PostgreSQL and Redis on both APIs', async () => {
    for (const url of apis) {
      const r = await api<{ checks: Record<string, string> }>(url, '/ready');
      expect(r.status).toBe(200);
      expect(r.body.checks).toMatchObject({ store: 'ok', queue: 'ok', dispatch: 'bullmq' });
    }
  });

  it('an SSE stream on API 1 follows a job submitted to API 2 and run by a worker process', async () => {
    const jobId = await submit(1, { ms: 600, steps: 4 });
    const res = await fetch(`${apis[0]}/analyze/jobs/${jobId}/stream`, { headers: { 'x-org-id': 'org1' } });
    expect(res.status).toBe(200);
    const text = await res.text(); // the server ends the stream after the terminal event
    const events = [...text.matchAll(/^id: (\d+)\nevent: ([a-z._]+)$/gm)].map((m) => ({ seq: Number(m[1]), type: m[2] }));
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events[0]?.type).toBe('job.queued');
    expect(events.map((e) => e.type)).toContain('job.started');
    expect(events.filter((e) => e.type === 'job.partial')).toHaveLength(4);
    expect(events.at(-1)?.type).toBe('job.completed');
  });

  it('the org event stream on API 1 carries a job submitted to API 2 and run by a worker process, in commit order', async () => {
    const ac = new AbortController();
    // Resume from position 0: the stream replays org 'org-stream' (empty so far), then goes live.
    const res = await fetch(`${apis[0]}/analyze/events/stream?after_position=0`, { headers: { 'x-org-id': 'org-stream' }, signal: ac.signal });
    expect(res.status).toBe(200);
    const r2 = await api<{ job_id: string }>(apis[1]!, '/analyze/jobs', { body: { analyzer: 'sleep', input: { ms: 300, steps: 2 } }, org: 'org-stream' });
    expect(r2.status).toBe(202);
    const jobId = r2.body.job_id;
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const deadline = Date.now() + 20_000;
    while (!text.includes('event: job.completed') && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    ac.abort();
    const frames = [...text.matchAll(/^id: (\d+)\nevent: ([a-z._]+)\ndata: (.*)$/gm)].map((m) => ({ position: Number(m[1]), type: m[2], data: JSON.parse(m[3]!) as { job_id: string; position: number } }));
    expect(frames.map((f) => f.data.job_id)).toEqual(frames.map(() => jobId));
    expect(frames.map((f) => f.position)).toEqual(frames.map((f) => f.data.position));
    for (let i = 1; i < frames.length; i++) expect(frames[i]!.position).toBeGreaterThan(frames[i - 1]!.position);
    const log = await api<{ events: Array<{ type: string; position: number }> }>(apis[0]!, `/analyze/jobs/${jobId}/events?limit=100`, { org: 'org-stream' });
    expect(frames.map((f) => [f.type, f.position])).toEqual(log.body.events.map((e) => [e.type, e.position]));
  });

  it('a cancel sent to one API aborts the job running under a worker process (latency measured; target p99 ≤ 100 ms)', async () => {
    const SAMPLES = 40;
    const ids: string[] = [];
    for (let i = 0; i < SAMPLES; i++) ids.push(await submit(i, { ms: 60_000 }));
    for (let i = 0; i < SAMPLES; i++) {
      const deadline = Date.now() + 15_000;
      while ((await status(i, ids[i]!)) !== 'running') {
        if (Date.now() > deadline) throw new Error(`job ${ids[i]} did not start`);
        await sleep(20);
      }
    }
    const latencies: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      // Sent to the API the job was NOT submitted to.
      const t0 = Date.now();
      const r = await api<{ status: string }>(apis[(i + 1) % 2]!, `/analyze/jobs/${ids[i]}/cancel`, { method: 'POST', org: `org${i % 3}` });
      expect(r.status).toBe(200);
      const deadline = Date.now() + 5_000;
      for (;;) {
        const ev = await db.query<{ occurred_at: string; payload: { reason?: string } }>(
          `SELECT occurred_at, payload FROM "${schema}".job_events WHERE job_id = $1 AND type = 'job.canceled'`,
          [ids[i]],
        );
        if (ev.rows[0]) {
          // occurred_at is the worker's clock when it wrote the outcome of the aborted attempt.
          expect(ev.rows[0].payload.reason).toBe('cancel_observed');
          latencies.push(Number(ev.rows[0].occurred_at) - t0);
          break;
        }
        if (Date.now() > deadline) throw new Error(`cancel of ${ids[i]} did not land`);
        await sleep(2);
      }
    }
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    report.push(`cancel request → worker aborted and wrote job.canceled (n=${SAMPLES}): p50 ${p50} ms, p99 ${p99} ms, max ${Math.max(...latencies)} ms`);
    // The target is 100 ms; the assertion leaves room for a loaded shared CI machine, the
    // measured numbers are printed (and recorded in docs/scale-mode.md).
    expect(p99).toBeLessThanOrEqual(300);
  }, 60_000);

  it(`${N} jobs submitted alternately to both APIs all complete once, through a worker kill -9 and a 10 s Redis outage`, async () => {
    const started = Date.now();
    const ids: string[] = [];
    let submitted = 0;
    const progress = process.env.TEST_DEBUG
      ? setInterval(() => {
          void db
            .query<{ status: string; n: string }>(`SELECT status, COUNT(*) AS n FROM "${schema}".jobs GROUP BY status UNION ALL SELECT 'outbox', COUNT(*) FROM "${schema}".dispatch_outbox`)
            .then((r) => console.log(`${((Date.now() - started) / 1000).toFixed(1)}s submitted=${submitted}`, JSON.stringify(r.rows)));
        }, 2000)
      : null;
    onTestFinished(() => {
      if (progress) clearInterval(progress);
    });
    onTestFailed(async () => {
      const d = await db.query(`SELECT status, attempt, COUNT(*) AS n, AVG(finished_at - started_at)::int AS run_ms, AVG(started_at - created_at)::int AS wait_ms FROM "${schema}".jobs GROUP BY 1, 2`);
      console.log(JSON.stringify(d.rows));
      for (const p of procs) console.log(`--- ${p.name} (exit ${p.child.exitCode}):\n${p.output().slice(-3000)}`);
    });
    const submitting = (async () => {
      const batch = 25;
      while (submitted < N) {
        const tick = Date.now();
        const n = Math.min(batch, N - submitted);
        const base = submitted;
        submitted += n;
        ids.push(...(await Promise.all(Array.from({ length: n }, (_, k) => submit(base + k, { ms: 100 })))));
        await sleep(Math.max(0, (batch / SUBMIT_RATE) * 1000 - (Date.now() - tick)));
      }
    })();

    // t ≈ 4 s: SIGKILL a worker mid-run while it holds running jobs; a supervisor restarts it.
    // The worker is frozen (SIGSTOP) before its running jobs are read, so none of them can
    // finish between the read and the kill: each of them must later run again (attempt ≥ 2).
    await sleep(4_000);
    const victim = procs.find((p) => p.name === 'worker1')!;
    let killedRunning: string[] = [];
    for (let tries = 0; killedRunning.length === 0; tries++) {
      if (tries === 40) throw new Error('worker1 never held a running job');
      victim.child.kill('SIGSTOP');
      await sleep(500); // statements it sent before the stop settle in PostgreSQL
      const r = await db.query<{ job_id: string }>(`SELECT job_id FROM "${schema}".jobs WHERE status = 'running' AND worker_id LIKE $1`, [`wrk_${victim.child.pid}_%`]);
      killedRunning = r.rows.map((x) => x.job_id);
      if (killedRunning.length === 0) {
        victim.child.kill('SIGCONT');
        await sleep(250);
      }
    }
    victim.child.kill('SIGKILL');
    await victim.exited;
    report.push(`worker1 killed with ${killedRunning.length} jobs running`);
    startWorker('worker1b');

    // t ≈ 7 s: Redis dies (no persistence: every BullMQ entry is gone) and is back 10 s later.
    await sleep(3_000);
    redis.child.kill('SIGKILL');
    await redis.exited;
    const outageStart = Date.now();
    await sleep(10_000);
    const duringOutage = submitted;
    redis = await startRedis(redisPort, dir);
    const outageEnd = Date.now();
    await submitting;
    const submitDone = Date.now();

    const deadline = Date.now() + 60_000;
    let counts: Record<string, number> = {};
    for (;;) {
      const r = await db.query<{ status: string; n: string }>(`SELECT status, COUNT(*) AS n FROM "${schema}".jobs WHERE job_id = ANY($1) GROUP BY status`, [ids]);
      counts = Object.fromEntries(r.rows.map((x) => [x.status, Number(x.n)]));
      if ((counts.completed ?? 0) === N) break;
      if (Date.now() > deadline) throw new Error(`not all jobs completed: ${JSON.stringify(counts)}`);
      await sleep(200);
    }
    const drained = Date.now();
    report.push(
      `${N} jobs: submitted in ${((submitDone - started) / 1000).toFixed(1)} s (${duringOutage} submitted before Redis returned, outage ${((outageEnd - outageStart) / 1000).toFixed(1)} s); ` +
        `all completed ${((drained - outageEnd) / 1000).toFixed(1)} s after Redis returned, ${((drained - submitDone) / 1000).toFixed(1)} s after the last submit`,
    );
    expect(new Set(ids).size).toBe(N);

    // From the store: one terminal event per job, gap-free event_seq, one start per attempt,
    // one final result per job; the killed worker's jobs ran again (attempt 2) and completed.
    const bad = await db.query(
      `SELECT e.job_id FROM "${schema}".job_events e JOIN "${schema}".jobs j USING (org_id, job_id)
       WHERE j.job_id = ANY($1)
       GROUP BY e.job_id, j.attempt
       HAVING MIN(e.event_seq) <> 1 OR MAX(e.event_seq) <> COUNT(*)
          OR COUNT(*) FILTER (WHERE e.type IN ('job.completed', 'job.failed', 'job.canceled')) <> 1
          OR COUNT(*) FILTER (WHERE e.type = 'job.started') <> j.attempt`,
      [ids],
    );
    expect(bad.rows).toEqual([]);
    const finals = await db.query<{ n: string }>(`SELECT COUNT(*) AS n FROM "${schema}".job_results WHERE kind = 'final' AND job_id = ANY($1)`, [ids]);
    expect(Number(finals.rows[0]?.n)).toBe(N);
    const retried = await db.query<{ n: string }>(`SELECT COUNT(*) AS n FROM "${schema}".jobs WHERE job_id = ANY($1) AND attempt > 1`, [ids]);
    report.push(`${retried.rows[0]?.n} jobs needed a second attempt (recovered after the kill)`);
    expect(Number(retried.rows[0]?.n)).toBeGreaterThan(0);
    const killed = await db.query<{ status: string; attempt: number }>(`SELECT status, attempt FROM "${schema}".jobs WHERE job_id = ANY($1)`, [killedRunning]);
    expect(killed.rows).toHaveLength(killedRunning.length);
    for (const j of killed.rows) expect([j.status, j.attempt >= 2]).toEqual(['completed', true]);
    // Submitted rows were published by the submitting API; the relays clear them after the grace (2 s).
    const outboxLeft = async (): Promise<number> => Number((await db.query<{ n: string }>(`SELECT COUNT(*) AS n FROM "${schema}".dispatch_outbox`)).rows[0]?.n);
    await until(async () => (await outboxLeft()) === 0, 15_000, 100).catch(() => undefined);
    expect(await outboxLeft()).toBe(0);
    for (const url of apis) expect((await api(url, '/ready')).status).toBe(200);
  }, 150_000);
});
