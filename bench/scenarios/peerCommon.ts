import { percentile } from '../harness.js';

/**
 * Shared driver for the peer scenarios (bullmq.ts, pgBoss.ts, graphileWorker.ts), same CLI shape
 * as upshiftLifecycle.ts:
 *   throughput <N> <concurrency>: N noop jobs pre-enqueued, then time until all are processed.
 *   latency <rate/s> <seconds>: open-loop producer; add→start and add→done p50/p95/p99.
 *   enqueue <serial|inflight50|bulk> <N>: N adds with no worker running (see enqueue()).
 * Every run is bounded (BENCH_DEADLINE_S, default 120 s): on expiry the scenario reports what it
 * counted (throughput = completed / elapsed, latency with unfinished jobs counted at the deadline)
 * and marks the line with extra.incomplete.
 */
export interface Peer {
  /** Enqueue jobs {i} in bulk (throughput pre-fill). */
  addBulk(items: number[]): Promise<void>;
  /** Enqueue one job {i} (latency producer). */
  addOne(i: number): Promise<void>;
  /** Start workers; call onStart(i) when the handler runs, onDone(i) once completion is recorded. */
  start(concurrency: number, onStart: (i: number) => void, onDone: (i: number) => void): Promise<void>;
  /** Optional: wait until the store agrees every job is completed (e.g. batched completions flushed). */
  settle?(deadline: number): Promise<void>;
  close(): Promise<void>;
}

export const deadlineSeconds = Number(process.env.BENCH_DEADLINE_S ?? '120');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function drive(system: string, make: () => Promise<Peer>): Promise<void> {
  const [mode = 'throughput', a = '20000', b = '50'] = process.argv.slice(2);
  const started = performance.now();
  const deadline = started + deadlineSeconds * 1000;
  const emit = (metric: string, value: number, unit: string, extra?: Record<string, number | string>) =>
    process.stdout.write(JSON.stringify({ system, metric, value, unit, extra }) + '\n');
  const hardStop = setTimeout(() => {
    process.stderr.write(`${system}: hard stop after ${deadlineSeconds + 30}s\n`);
    process.exit(3);
  }, (deadlineSeconds + 30) * 1000);
  hardStop.unref();
  const peer = await make();
  try {
    if (mode === 'enqueue') {
      const r = await enqueue(a, Number(b), deadline, (i) => peer.addOne(i), (items) => peer.addBulk(items));
      emit(r.metric, r.perSecond, 'jobs/s', r.extra);
    } else if (mode === 'throughput') {
      const n = Number(a);
      const c = Number(b);
      for (let i = 0; i < n; i += 1000) await peer.addBulk(Array.from({ length: Math.min(1000, n - i) }, (_, k) => i + k));
      let done = 0;
      let resolveDone!: () => void;
      const finished = new Promise<void>((r) => (resolveDone = r));
      const t0 = performance.now();
      await peer.start(c, () => {}, () => {
        if (++done === n) resolveDone();
      });
      const limit = Math.max(1000, deadline - performance.now());
      await Promise.race([finished, sleep(limit)]);
      if (done >= n && peer.settle) await peer.settle(deadline);
      const seconds = (performance.now() - t0) / 1000;
      const extra = done < n ? { incomplete: n - done, completed: done } : undefined;
      emit(`process noop c=${c} (N=${n})`, done / seconds, 'jobs/s', extra);
    } else {
      const rate = Number(a);
      const seconds = Number(b);
      const total = rate * seconds;
      const addedAt = new Float64Array(total).fill(NaN);
      const toStart: number[] = [];
      const toDone: number[] = [];
      // Per job too, for the steady-state figures (jobs added after the first second).
      const startOf = new Float64Array(total).fill(NaN);
      const doneOf = new Float64Array(total).fill(NaN);
      await peer.start(50, (i) => {
        const t = addedAt[i];
        if (t !== undefined && !Number.isNaN(t) && Number.isNaN(startOf[i])) toStart.push((startOf[i] = performance.now() - t));
      }, (i) => {
        const t = addedAt[i];
        if (t !== undefined && !Number.isNaN(t) && Number.isNaN(doneOf[i])) toDone.push((doneOf[i] = performance.now() - t));
      });
      const t0 = performance.now();
      // Diagnostics (BENCH_LATENCY_BUCKETS=1): event-loop stalls over 10 ms, as <ms since the
      // first add>@<performance.now()>+<length> (performance.now() lines up with --trace-gc's times).
      const stalls: string[] = [];
      let lastTick = t0;
      const ticker = process.env.BENCH_LATENCY_BUCKETS === '1' ? setInterval(() => {
        const t = performance.now();
        if (t - lastTick > 10) stalls.push(`${(lastTick - t0).toFixed(0)}@${lastTick.toFixed(0)}+${(t - lastTick).toFixed(0)}`);
        lastTick = t;
      }, 1) : undefined;
      ticker?.unref();
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < total; i++) {
        const due = t0 + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        addedAt[i] = performance.now();
        pending.push(peer.addOne(i));
      }
      await Promise.all(pending);
      const end = Math.min(deadline, performance.now() + 10_000);
      while (toDone.length < total && performance.now() < end) await sleep(20);
      const now = performance.now();
      // Unfinished jobs count with the ages of the newest jobs when we stopped waiting (a lower bound).
      const fill = (xs: number[]) => {
        const out = [...xs];
        for (let i = total - 1; out.length < total && i >= 0; i--) out.push(now - (addedAt[i] as number));
        return out.sort((x, y) => x - y);
      };
      const s = fill(toStart);
      const d = fill(toDone);
      const extra = toDone.length < total ? { incomplete: total - toDone.length, completed: toDone.length } : undefined;
      for (const p of [50, 95, 99]) {
        emit(`add→start p${p} @${rate}/s`, percentile(s, p), 'ms', toStart.length < total ? { incomplete: total - toStart.length } : undefined);
        emit(`add→done p${p} @${rate}/s`, percentile(d, p), 'ms', extra);
      }
      // Steady state: the same run without the jobs of its first second (connections opening,
      // statements prepared, code not yet optimized — a start-up cost every system pays once).
      // Reported beside the whole-run figures above, which stay the headline.
      const steady = (per: Float64Array): number[] => {
        const out: number[] = [];
        for (let i = Math.min(rate, total - 1); i < total; i++) out.push(Number.isNaN(per[i]) ? now - (addedAt[i] as number) : (per[i] as number));
        return out.sort((x, y) => x - y);
      };
      if (process.env.BENCH_LATENCY_BUCKETS === '1') {
        // Diagnostics: add→start max and p90 per 250 ms of submission time, on stderr.
        const per = 250;
        const buckets: string[] = [];
        for (let b0 = 0; b0 < total; b0 += (rate * per) / 1000) {
          const xs: number[] = [];
          for (let i = b0; i < Math.min(total, b0 + (rate * per) / 1000); i++) if (!Number.isNaN(startOf[i])) xs.push(startOf[i] as number);
          xs.sort((x, y) => x - y);
          buckets.push(`${percentile(xs, 90).toFixed(0)}/${(xs.at(-1) ?? NaN).toFixed(0)}`);
        }
        process.stderr.write(`add→start p90/max per ${per} ms: ${buckets.join(' ')}\n`);
        clearInterval(ticker);
        process.stderr.write(`event-loop stalls > 10 ms (ms since the first add @ performance.now() + length): ${stalls.join(' ')}\n`);
      }
      emit(`add→start p99 @${rate}/s after 1 s`, percentile(steady(startOf), 99), 'ms');
      emit(`add→done p99 @${rate}/s after 1 s`, percentile(steady(doneOf), 99), 'ms');
    }
  } finally {
    await peer.close();
  }
  process.exit(0);
}

export interface EnqueueResult {
  readonly metric: string;
  readonly perSecond: number;
  readonly extra?: Record<string, number | string>;
}

/**
 * The enqueue scenario, shared by Upshift and the peers: N adds, timed from the first call to the
 * last one resolving (every add acknowledged by the system's own API), no worker running.
 *   serial: awaited one by one (a request/response client);
 *   inflight50: 50 concurrent callers, each awaiting its add before the next (a busy API tier);
 *   bulk: the system's bulk call, 1,000 per call, awaited one call at a time.
 * Bounded by `deadline` (performance.now() ms): on expiry reports adds done / elapsed, marked incomplete.
 */
export async function enqueue(
  how: string,
  n: number,
  deadline: number,
  addOne: (i: number) => Promise<unknown>,
  addBulk: ((items: number[]) => Promise<unknown>) | null,
): Promise<EnqueueResult> {
  let done = 0;
  const t0 = performance.now();
  if (how === 'serial') {
    for (let i = 0; i < n && performance.now() < deadline; i++) {
      await addOne(i);
      done++;
    }
  } else if (how === 'inflight50') {
    let next = 0;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < n && performance.now() < deadline) {
          await addOne(next++);
          done++;
        }
      }),
    );
  } else if (how === 'bulk') {
    if (!addBulk) throw new Error('no bulk add');
    for (let i = 0; i < n && performance.now() < deadline; i += 1000) {
      const items = Array.from({ length: Math.min(1000, n - i) }, (_, k) => i + k);
      await addBulk(items);
      done += items.length;
    }
  } else {
    throw new Error(`unknown enqueue mode ${how} (serial|inflight50|bulk)`);
  }
  const seconds = (performance.now() - t0) / 1000;
  const label = how === 'serial' ? 'awaited one by one' : how === 'inflight50' ? '50 in flight' : 'bulk (1,000 per call)';
  return { metric: `enqueue ${label} (N=${n})`, perSecond: done / seconds, ...(done < n ? { extra: { incomplete: n - done, completed: done } } : {}) };
}
