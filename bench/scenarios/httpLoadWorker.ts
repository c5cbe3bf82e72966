import { Agent, request } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

/**
 * Open-loop, fixed-rate HTTP GET load in a worker thread (its own event loop, so a stalled
 * server shows as latency here instead of slowing the generator). Latency is measured from
 * the *scheduled* send time, not the actual one: a request that could not even be sent on
 * time because the server was stuck counts its wait (no coordinated omission).
 *
 * Messages in: {phase: string} tags the following samples; {cmd: 'stop'} ends the run and
 * posts back {samples: {[phase]: number[]}, errors, statuses}.
 */
export interface LoadConfig {
  readonly url: string;
  readonly org: string;
  readonly paths: readonly string[];
  readonly ratePerSecond: number;
  readonly connections: number;
}

const cfg = workerData as LoadConfig;
const agent = new Agent({ keepAlive: true, maxSockets: cfg.connections });
const target = new URL(cfg.url);
const samples: Record<string, number[]> = {};
const statuses: Record<string, number> = {};
let errors = 0;
let phase = 'warmup';
let stopped = false;
let inFlight = 0;

parentPort?.on('message', (m: { phase?: string; cmd?: string }) => {
  if (m.phase) phase = m.phase;
  if (m.cmd === 'stop') stopped = true;
});

function get(path: string, scheduled: number, tag: string): void {
  inFlight++;
  const req = request(
    { host: target.hostname, port: target.port, path, agent, headers: { 'x-org-id': cfg.org } },
    (res) => {
      res.resume();
      res.on('end', () => {
        inFlight--;
        const key = String(res.statusCode);
        statuses[key] = (statuses[key] ?? 0) + 1;
        (samples[tag] ??= []).push(performance.now() - scheduled);
      });
    },
  );
  req.on('error', () => {
    inFlight--;
    errors++;
  });
  req.end();
}

const intervalMs = 1000 / cfg.ratePerSecond;
const t0 = performance.now();
let sent = 0;
let i = 0;
while (!stopped) {
  const now = performance.now();
  // Send every request that is due (after a stall, the backlog goes out at once, each with its
  // own scheduled time).
  while (t0 + sent * intervalMs <= now) {
    const path = cfg.paths[i++ % cfg.paths.length] as string;
    get(path, t0 + sent * intervalMs, phase);
    sent++;
  }
  await new Promise((r) => setTimeout(r, Math.max(0, t0 + sent * intervalMs - performance.now())));
}
const drainUntil = performance.now() + 5000;
while (inFlight > 0 && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 5));
agent.destroy();
parentPort?.postMessage({ samples, errors, statuses });
