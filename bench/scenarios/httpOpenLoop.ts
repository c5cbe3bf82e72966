import { Agent, request } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * Open-loop, fixed-rate HTTP load in a process of its own (forked by upshiftHttp.ts), so it
 * shares neither the server's event loop nor the orchestrator's. Requests go out on a fixed
 * schedule whatever the server does; latency is measured from the *scheduled* send time, so a
 * request that could not even be sent on time because the server (or every socket) was busy
 * counts its wait (no coordinated omission).
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
}

const cfg = JSON.parse(process.env.BENCH_LOAD ?? '{}') as OpenLoopConfig;
const agent = new Agent({ keepAlive: true, maxSockets: cfg.connections });
const target = new URL(cfg.url);
const samples: Record<string, number[]> = {};
const statuses: Record<string, number> = {};
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

function send(n: number, scheduled: number, tag: string): void {
  inFlight++;
  const body = cfg.method === 'POST' ? JSON.stringify({ analyzer: cfg.analyzer ?? 'noop', input: { i: n } }) : null;
  const path = cfg.method === 'POST' ? (cfg.paths[0] as string) : (cfg.paths[n % cfg.paths.length] as string);
  const headers: Record<string, string | number> = { 'x-org-id': cfg.org };
  if (body !== null) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = Buffer.byteLength(body);
  }
  const req = request({ host: target.hostname, port: target.port, path, method: cfg.method, agent, headers }, (res) => {
    res.resume();
    res.on('end', () => {
      inFlight--;
      const key = String(res.statusCode);
      statuses[key] = (statuses[key] ?? 0) + 1;
      (samples[tag] ??= []).push(performance.now() - scheduled);
    });
  });
  req.on('error', () => {
    inFlight--;
    errors++;
  });
  req.end(body ?? undefined);
}

const intervalMs = 1000 / cfg.ratePerSecond;
const t0 = performance.now();
let sent = 0;
while (!stopped) {
  const now = performance.now();
  // Everything due goes out now (after a stall, the backlog at once, each with its own scheduled time).
  while (t0 + sent * intervalMs <= now) {
    send(sent, t0 + sent * intervalMs, phase);
    sent++;
  }
  await new Promise((r) => setTimeout(r, Math.max(0, t0 + sent * intervalMs - performance.now())));
}
const drainUntil = performance.now() + 5000;
while (inFlight > 0 && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 5));
agent.destroy();
loop.disable();
const result: OpenLoopResult = { samples, statuses, errors, sent, unanswered: inFlight, loopDelayP99Ms: loop.percentile(99) / 1e6 };
process.send?.({ result }, () => process.exit(0));
