import { monitorEventLoopDelay } from 'node:perf_hooks';
import { RawHttpConnection } from './rawHttpConnection.js';

/**
 * Open-loop, fixed-rate HTTP load in a process of its own (forked by upshiftHttp.ts), so it
 * shares neither the server's event loop nor the orchestrator's. Requests go out on a fixed
 * schedule whatever the server does; latency is measured from the *scheduled* send time, so a
 * request that could not even be sent on time because the server (or every connection) was busy
 * counts its wait (no coordinated omission).
 *
 * The schedule: request n is due at t0 + ceil(n × 1000 / rate) ms, i.e. on the whole-millisecond
 * ticks a Node timer can actually fire on (2,000/s = 2 requests per ms). An evenly spaced schedule
 * (every 0.5 ms) charged each request up to a millisecond of the generator's own timer
 * granularity; the server sees the same bursts either way, since the generator could only ever
 * send on its timer ticks. What the generator itself adds is reported: `sendLateP99Ms` (due →
 * written to a free connection) and its event-loop delay and CPU time.
 *
 * Transport: raw keep-alive HTTP/1.1 connections (rawHttpConnection.ts), one request at a time
 * each; a due request waits for a free connection in FIFO order (that wait counts).
 *
 * Config: JSON in BENCH_LOAD (OpenLoopConfig). IPC in: {phase} tags the following samples;
 * {cmd: 'stop'} stops sending, drains (bounded) and answers {result: OpenLoopResult}.
 * GET cycles through `paths`; POST sends `{"analyzer":…,"input":{"i":n}}` to `paths[0]`.
 */
export interface OpenLoopConfig {
  readonly url: string;
  readonly org: string;
  readonly method: 'GET' | 'POST';
  readonly paths: readonly string[];
  readonly ratePerSecond: number;
  readonly connections: number;
  /** POST only: the analyzer of the submitted jobs (input {i}). */
  readonly analyzer?: string;
}

export interface OpenLoopResult {
  readonly samples: Record<string, number[]>;
  readonly statuses: Record<string, number>;
  readonly errors: number;
  readonly sent: number;
  /** Requests still unanswered when the drain bound ran out. */
  readonly unanswered: number;
  /** This generator's own event-loop delay p99 (ms): high means the client, not the server, was starved. */
  readonly loopDelayP99Ms: number;
  /** Due → written, for requests that found a free connection (the generator's own lateness), p99 in ms. */
  readonly sendLateP99Ms: number;
  /** CPU time (user + system) this process used while sending, µs. */
  readonly cpuUs: number;
}

interface Due {
  readonly n: number;
  readonly scheduled: number;
  readonly tag: string;
}

const cfg = JSON.parse(process.env.BENCH_LOAD ?? '{}') as OpenLoopConfig;
const target = new URL(cfg.url);
const host = `${target.hostname}:${target.port}`;
const samples: Record<string, number[]> = {};
const statuses: Record<string, number> = {};
const late: number[] = [];
let errors = 0;
let phase = 'warmup';
let stopped = false;
let inFlight = 0;
const loop = monitorEventLoopDelay({ resolution: 1 });
loop.enable();

process.on('message', (m: { phase?: string; cmd?: string }) => {
  if (m.phase) phase = m.phase;
  if (m.cmd === 'stop') stopped = true;
});
process.on('disconnect', () => process.exit(0));

// GET requests never change: encoded once per path.
const getRequests = cfg.method === 'GET' ? cfg.paths.map((path) => Buffer.from(`GET ${path} HTTP/1.1\r\nhost: ${host}\r\nx-org-id: ${cfg.org}\r\n\r\n`, 'latin1')) : [];
function request(n: number): Buffer {
  if (cfg.method === 'GET') return getRequests[n % getRequests.length] as Buffer;
  const body = JSON.stringify({ analyzer: cfg.analyzer ?? 'noop', input: { i: n } });
  const head = `POST ${cfg.paths[0] as string} HTTP/1.1\r\nhost: ${host}\r\nx-org-id: ${cfg.org}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`;
  return Buffer.from(head + body);
}

const idle: RawHttpConnection[] = Array.from({ length: cfg.connections }, () => new RawHttpConnection(target.hostname, Number(target.port)));
const all = [...idle];
const waiting: Due[] = [];

function send(conn: RawHttpConnection, due: Due): void {
  conn.send(request(due.n), (status) => {
    inFlight--;
    if (status === null) errors++;
    else {
      const key = String(status);
      statuses[key] = (statuses[key] ?? 0) + 1;
      (samples[due.tag] ??= []).push(performance.now() - due.scheduled);
    }
    const next = waiting.shift();
    if (next) send(conn, next);
    else idle.push(conn);
  });
}

function dispatch(due: Due): void {
  inFlight++;
  const conn = idle.pop();
  if (!conn) {
    waiting.push(due);
    return;
  }
  if (due.tag !== 'warmup') late.push(performance.now() - due.scheduled);
  send(conn, due);
}

const intervalMs = 1000 / cfg.ratePerSecond;
const dueAt = (n: number): number => t0 + Math.ceil(n * intervalMs);
const cpu0 = process.cpuUsage();
const t0 = Math.ceil(performance.now());
let sent = 0;
while (!stopped) {
  const now = performance.now();
  // Everything due goes out now (after a stall, the backlog at once, each with its own scheduled time).
  while (dueAt(sent) <= now) {
    dispatch({ n: sent, scheduled: dueAt(sent), tag: phase });
    sent++;
  }
  await new Promise((r) => setTimeout(r, Math.max(0, dueAt(sent) - performance.now())));
}
const cpu = process.cpuUsage(cpu0);
const drainUntil = performance.now() + 5000;
while (inFlight > 0 && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 5));
for (const c of all) c.close();
loop.disable();
late.sort((a, b) => a - b);
const result: OpenLoopResult = {
  samples,
  statuses,
  errors,
  sent,
  unanswered: inFlight,
  loopDelayP99Ms: loop.percentile(99) / 1e6,
  sendLateP99Ms: late[Math.min(late.length - 1, Math.floor(late.length * 0.99))] ?? 0,
  cpuUs: cpu.user + cpu.system,
};
process.send?.({ result }, () => process.exit(0));
