import autocannon from 'autocannon';

/**
 * Closed-loop maximum throughput with autocannon, in a process of its own (forked by
 * upshiftHttp.ts): `connections` keep-alive connections, each sending its next request as soon
 * as the previous answer arrived, for `seconds`. Config: JSON in BENCH_CANNON. Answers over IPC
 * {result} with the 2xx rate (what counts: accepted jobs), non-2xx, errors and latency.
 */
export interface CannonConfig {
  readonly url: string;
  readonly org: string;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: string;
  readonly connections: number;
  readonly seconds: number;
}

export interface CannonResult {
  readonly okPerSecond: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly seconds: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
}

const cfg = JSON.parse(process.env.BENCH_CANNON ?? '{}') as CannonConfig;
const r = await autocannon({
  url: new URL(cfg.path, cfg.url).href,
  method: cfg.method,
  connections: cfg.connections,
  duration: cfg.seconds,
  headers: { 'x-org-id': cfg.org, ...(cfg.body !== undefined && { 'content-type': 'application/json' }) },
  ...(cfg.body !== undefined && { body: cfg.body }),
});
const result: CannonResult = {
  okPerSecond: r['2xx'] / r.duration,
  ok: r['2xx'],
  non2xx: r.non2xx,
  errors: r.errors,
  timeouts: r.timeouts,
  seconds: r.duration,
  latencyP50Ms: r.latency.p50,
  latencyP99Ms: r.latency.p99,
};
process.send?.({ result }, () => process.exit(0));
