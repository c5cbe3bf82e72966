import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/config.js';
import { parseOrgId } from '../../src/core/ids.js';
import { createUpshift } from '../../src/main.js';
import { percentile } from '../harness.js';
import { deadlineSeconds, enqueue } from './peerCommon.js';

/**
 * Embedded Upshift (SQLite file, WAL, full event log + result rows), library API, no HTTP.
 *   throughput <N> <concurrency>: N noop jobs pre-enqueued, time until all are completed.
 *   latency <rate/s> <seconds>: open-loop submits; add→start and add→done from commit events.
 *   enqueue <serial|inflight50> <N>: service.submit without a worker (peerCommon.ts enqueue()).
 *     There is no bulk submit in the library API: concurrent submits share a group commit
 *     instead, so "bulk" is reported as not applicable rather than imitated.
 */
const [mode = 'throughput', a = '20000', b = '50'] = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), 'upshift-bench-'));
const org = parseOrgId('bench');

const config = loadConfig({}, {
  UPSHIFT_DATABASE_URL: `sqlite:${join(dir, 'bench.db')}`,
  UPSHIFT_DATA_DIR: dir,
  UPSHIFT_LOG_LEVEL: 'warn',
  UPSHIFT_WORKER_CONCURRENCY: mode === 'throughput' ? b : '50',
  UPSHIFT_POLL_MS: '1000',
  // A/B knobs from the environment: the SQLite writer (thread | inline; default auto) and the
  // worker's prefetch (default 0). Unset in the reported runs.
  ...(process.env.UPSHIFT_SQLITE_WRITER !== undefined && { UPSHIFT_SQLITE_WRITER: process.env.UPSHIFT_SQLITE_WRITER }),
  ...(process.env.UPSHIFT_WORKER_PREFETCH !== undefined && { UPSHIFT_WORKER_PREFETCH: process.env.UPSHIFT_WORKER_PREFETCH }),
});
const up = await createUpshift({ config, http: false });

/**
 * BENCH_THREADS=1: CPU time (ms, user + system) per thread of this process, by thread id, from
 * /proc (Linux only) — how the work splits between the event loop (its tid is the pid) and the
 * SQLite writer thread.
 */
function threadCpuMs(): Map<string, number> {
  const byTid = new Map<string, number>();
  const tick = 10; // USER_HZ = 100 on Linux
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      byTid.set(tid === String(process.pid) ? 'main' : `tid ${tid}`, (Number(fields[11]) + Number(fields[12])) * tick);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return byTid;
}
const emit = (metric: string, value: number, unit: string, extra?: Record<string, number | string>) =>
  process.stdout.write(JSON.stringify({ system: 'upshift-embedded', metric, value, unit, extra }) + '\n');

if (mode === 'enqueue') {
  const r = await enqueue(a, Number(b), performance.now() + deadlineSeconds * 1000, (i) => up.service.submit(org, { analyzer: 'noop', input: { i } }), null);
  emit(r.metric, r.perSecond, 'jobs/s', r.extra);
} else if (mode === 'throughput') {
  const n = Number(a);
  for (let i = 0; i < n; i += 1000) {
    await Promise.all(Array.from({ length: Math.min(1000, n - i) }, (_, k) => up.service.submit(org, { analyzer: 'noop', input: { i: i + k } })));
  }
  let done = 0;
  let resolveDone!: () => void;
  const finished = new Promise<void>((r) => (resolveDone = r));
  up.feed.subscribe((events) => {
    for (const e of events) if (e.type === 'job.completed' && ++done === n) resolveDone();
  });
  const threads0 = process.env.BENCH_THREADS === '1' ? threadCpuMs() : null;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await up.start();
  await finished;
  const seconds = (performance.now() - t0) / 1000;
  // CPU per job (user + system, this process) is far less sensitive to a busy machine than jobs/s.
  const cpu = process.cpuUsage(cpu0);
  const extra: Record<string, number> = { cpu_us_per_job: Math.round((cpu.user + cpu.system) / n) };
  if (threads0 !== null) {
    for (const [name, ms] of threadCpuMs()) {
      const us = Math.round(((ms - (threads0.get(name) ?? 0)) * 1000) / n);
      if (us > 1) extra[`cpu_us_per_job[${name}]`] = us;
    }
  }
  emit(`process noop c=${b} (N=${n})`, n / seconds, 'jobs/s', extra);
} else {
  const rate = Number(a);
  const seconds = Number(b);
  // Submit time per job, and whether it was added after the first second (steady state).
  const addedAt = new Map<string, { t: number; steady: boolean }>();
  const toStart: number[] = [];
  const toDone: number[] = [];
  const steadyStart: number[] = [];
  const steadyDone: number[] = [];
  up.feed.subscribe((events) => {
    const now = performance.now();
    for (const e of events) {
      const a = addedAt.get(e.jobId);
      if (a === undefined) continue;
      if (e.type === 'job.started') {
        toStart.push(now - a.t);
        if (a.steady) steadyStart.push(now - a.t);
      } else if (e.type === 'job.completed') {
        toDone.push(now - a.t);
        if (a.steady) steadyDone.push(now - a.t);
      }
    }
  });
  await up.start();
  const total = rate * seconds;
  const t0 = performance.now();
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const added = performance.now();
    const steady = i >= rate;
    pending.push(up.service.submit(org, { analyzer: 'noop', input: { i } }).then(({ job }) => addedAt.set(job.jobId, { t: added, steady })));
  }
  await Promise.all(pending);
  const end = Date.now() + 10_000;
  while (toDone.length < total && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  const s = [...toStart].sort((x, y) => x - y);
  const d = [...toDone].sort((x, y) => x - y);
  for (const p of [50, 95, 99]) {
    emit(`add→start p${p} @${rate}/s`, percentile(s, p), 'ms');
    emit(`add→done p${p} @${rate}/s`, percentile(d, p), 'ms');
  }
  // As peerCommon.ts: the same run without the jobs of its first second.
  emit(`add→start p99 @${rate}/s after 1 s`, percentile(steadyStart.sort((x, y) => x - y), 99), 'ms');
  emit(`add→done p99 @${rate}/s after 1 s`, percentile(steadyDone.sort((x, y) => x - y), 99), 'ms');
}
await up.close();
rmSync(dir, { recursive: true, force: true });
