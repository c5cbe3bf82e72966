import { request } from 'node:http';

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
}

export interface SseResult {
  readonly latencies: number[];
  readonly byType: Record<string, number>;
  readonly opened: number;
  readonly ended: number;
  readonly errors: number;
  readonly badStatus: number;
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

process.on('disconnect', () => process.exit(0));
process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'measure') measureFrom = Date.now();
  if (m.cmd === 'stop') {
    for (const close of open) close();
    process.send?.({ result: { latencies, byType, opened, ended, errors, badStatus } satisfies SseResult }, () => process.exit(0));
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

// Submit with bounded concurrency, then open every stream at once.
const ids: string[] = [];
let next = 0;
const body = JSON.stringify({ analyzer: 'sleep', input: { ms: cfg.sleepMs, steps: cfg.steps } });
await Promise.all(
  Array.from({ length: 50 }, async () => {
    while (next < cfg.streams) {
      next++;
      ids.push(await post(body));
    }
  }),
);
await Promise.all(ids.map(stream));
process.send?.({ open: opened });
