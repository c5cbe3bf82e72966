import { request } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * SSE clients in a process of their own (forked by upshiftSse.ts): submits `streams` sleep jobs
 * (POST /analyze/jobs, `steps` partials over `ms`), then opens one
 * GET /analyze/jobs/{id}/stream per job, each on its own connection, all open at once.
 *
 * Commit→client latency of an event = the client's wall clock when the event's frame (its
 * terminating blank line) arrived, minus the event's `occurred_at` — the server's wall clock
 * when the writer created the event, just before its group commit. Same machine, same clock
 * (CLOCK_REALTIME in both processes). `occurred_at` has millisecond resolution (truncated), so a
 * sample can read up to 1 ms high, never low. Only events that occurred after the measurement
 * window opened count (so replays of older events at stream start are not samples).
 *
 * Config: JSON in BENCH_SSE. IPC in: {cmd: 'measure'} opens the window; {cmd: 'stop'} closes
 * every stream and answers {result: SseResult}. IPC out: {open: n} once every stream answered 200.
 */
export interface SseConfig {
  readonly url: string;
  readonly org: string;
  readonly streams: number;
  readonly sleepMs: number;
  readonly steps: number;
  /** Submits are spread evenly over this many ms (one step period), so the jobs' step timers
   * and hence their events are spread evenly in time instead of firing in one burst. */
  readonly spreadMs: number;
}

export interface SseResult {
  readonly latencies: number[];
  readonly byType: Record<string, number>;
  readonly opened: number;
  readonly ended: number;
  readonly errors: number;
  readonly badStatus: number;
  /** This process's own event-loop delay in the window: if high, the clients (not the server) add latency. */
  readonly clientLoopDelayP99Ms: number;
}

const cfg = JSON.parse(process.env.BENCH_SSE ?? '{}') as SseConfig;
const target = new URL(cfg.url);
const wallNow = () => performance.timeOrigin + performance.now();
const latencies: number[] = [];
const byType: Record<string, number> = {};
let measureFrom = Infinity;
let opened = 0;
let ended = 0;
let errors = 0;
let badStatus = 0;
const open = new Set<() => void>();
const loop = monitorEventLoopDelay({ resolution: 1 });

process.on('disconnect', () => process.exit(0));
process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'measure') {
    measureFrom = Date.now();
    loop.enable();
  }
  if (m.cmd === 'stop') {
    loop.disable();
    for (const close of open) close();
    const clientLoopDelayP99Ms = loop.percentile(99) / 1e6;
    process.send?.({ result: { latencies, byType, opened, ended, errors, badStatus, clientLoopDelayP99Ms } satisfies SseResult }, () => process.exit(0));
  }
});

function post(body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: target.hostname, port: target.port, path: '/analyze/jobs', method: 'POST', headers: { 'x-org-id': cfg.org, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => (res.statusCode === 202 ? resolve((JSON.parse(text) as { job_id: string }).job_id) : reject(new Error(`submit answered ${res.statusCode}: ${text}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function stream(jobId: string): Promise<void> {
  return new Promise((resolve) => {
    const req = request({ host: target.hostname, port: target.port, path: `/analyze/jobs/${jobId}/stream`, agent: false, headers: { 'x-org-id': cfg.org, accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        badStatus++;
        res.resume();
        resolve();
        return;
      }
      opened++;
      resolve();
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (chunk: string) => {
        const at = wallNow();
        buf += chunk;
        let end: number;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let type = '';
          let data = '';
          for (const line of frame.split('\n')) {
            if (line.startsWith('event: ')) type = line.slice(7);
            else if (line.startsWith('data: ')) data = line.slice(6);
          }
          if (data === '') continue;
          const occurred = Date.parse((JSON.parse(data) as { occurred_at: string }).occurred_at);
          if (occurred < measureFrom) continue;
          latencies.push(at - occurred);
          byType[type] = (byType[type] ?? 0) + 1;
        }
      });
      res.on('end', () => ended++);
      res.on('error', () => errors++);
    });
    req.on('error', () => {
      errors++;
      resolve();
    });
    req.end();
    open.add(() => req.destroy());
  });
}

// Submit on an even schedule over spreadMs (each job starts when submitted: the server runs
// them all at once), opening each job's stream as soon as its submit answered.
const body = JSON.stringify({ analyzer: 'sleep', input: { ms: cfg.sleepMs, steps: cfg.steps } });
const t0 = performance.now();
const opening: Promise<void>[] = [];
for (let i = 0; i < cfg.streams; i++) {
  const wait = t0 + (i * cfg.spreadMs) / cfg.streams - performance.now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  opening.push(post(body).then(stream));
}
await Promise.all(opening);
process.send?.({ open: opened });
