import { percentile } from '../harness.js';
import type { CannonConfig, CannonResult } from './httpCannon.js';
import type { OpenLoopConfig, OpenLoopResult } from './httpOpenLoop.js';
import { serverSystemEnv, serverSystemFromEnv } from './serverSystems.js';
import { forkChild, sleep, startServer, type Child } from './procs.js';

/**
 * The http scenario: a real Upshift embedded server (serverProcess.ts, default settings: API,
 * 16 workers, notifications) on loopback, every load generator in a process of its own.
 *   upshiftHttp <GET rate/s> <producer jobs/s> <seconds> <POST connections>
 * 1. Seed: 1,000 noop jobs through POST /analyze/jobs, all completed (the GET targets).
 * 2. GET idle: GET /analyze/jobs/{id} open-loop at <GET rate> (httpOpenLoop.ts, 32 sockets) —
 *    the reference without processing.
 * 3. GET while processing: a producer process POSTs noop jobs open-loop at <producer jobs/s>;
 *    after 1 s the same GET load runs for <seconds>; the server counts the jobs it completes in
 *    that window (completed/s is reported, so "while processing ~1,000 jobs/s" is checked).
 * 4. POST max: autocannon (httpCannon.ts), <POST connections> connections, <seconds>, closed
 *    loop; 2xx/s = accepted (committed) jobs per second; the workers keep processing meanwhile.
 * 5. GET max: the same for GET /analyze/jobs/{id} (the server's CPU per GET is reported too).
 * Latency is from the scheduled send (open loop) to the end of the response.
 */
const [getRateArg = '2000', produceArg = '1000', secondsArg = '10', postConnArg = '32'] = process.argv.slice(2);
const getRate = Number(getRateArg);
const produceRate = Number(produceArg);
const seconds = Number(secondsArg);
const org = 'bench';
const emit = (metric: string, value: number, unit: string, extra?: Record<string, number | string>) =>
  process.stdout.write(JSON.stringify({ system: serverSystemFromEnv(), metric, value, unit, extra }) + '\n');

const target = serverSystemEnv(serverSystemFromEnv());
const server = await startServer(target.env);
const { url } = server;
try {
  // --- 1. seed -------------------------------------------------------------------------
  const ids: string[] = [];
  let next = 0;
  server.mark();
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (next < 1000) {
        const i = next++;
        const res = await fetch(new URL('/analyze/jobs', url), {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-org-id': org },
          body: JSON.stringify({ analyzer: 'noop', input: { i } }),
        });
        if (res.status !== 202) throw new Error(`seed submit answered ${res.status}: ${await res.text()}`);
        ids.push(((await res.json()) as { job_id: string }).job_id);
      }
    }),
  );
  for (let t = 0; (await server.stats()).completed < ids.length; t++) {
    if (t > 600) throw new Error('seed jobs did not complete within 30 s');
    await sleep(50);
  }

  const getLoad = (): Child => {
    const cfg: OpenLoopConfig = { url, org, method: 'GET', paths: ids.map((id) => `/analyze/jobs/${id}`), ratePerSecond: getRate, connections: 32 };
    return forkChild(new URL('./httpOpenLoop.js', import.meta.url), { BENCH_LOAD: JSON.stringify(cfg) });
  };
  const finish = async (c: Child): Promise<OpenLoopResult> => {
    c.send({ cmd: 'stop' });
    const r = await c.next<OpenLoopResult>('result', 30_000);
    await c.exited();
    return r;
  };

  // --- 2. GET idle ---------------------------------------------------------------------
  const idleGen = getLoad();
  await sleep(1000);
  idleGen.send({ phase: 'idle' });
  server.mark();
  await sleep(seconds * 1000);
  const idleServer = await server.stats();
  const idle = await finish(idleGen);

  // --- 3. GET while processing ---------------------------------------------------------
  const producerCfg: OpenLoopConfig = { url, org, method: 'POST', paths: ['/analyze/jobs'], ratePerSecond: produceRate, connections: 32, analyzer: 'noop' };
  const producer = forkChild(new URL('./httpOpenLoop.js', import.meta.url), { BENCH_LOAD: JSON.stringify(producerCfg) });
  const loadedGen = getLoad();
  await sleep(1000);
  loadedGen.send({ phase: 'loaded' });
  producer.send({ phase: 'loaded' });
  server.mark();
  await sleep(seconds * 1000);
  const loadedServer = await server.stats();
  const [loaded, produced] = await Promise.all([finish(loadedGen), finish(producer)]);

  // --- 4. POST max ---------------------------------------------------------------------
  const cannonCfg: CannonConfig = { url, org, method: 'POST', path: '/analyze/jobs', body: JSON.stringify({ analyzer: 'noop', input: {} }), connections: Number(postConnArg), seconds };
  server.mark();
  const cannon = forkChild(new URL('./httpCannon.js', import.meta.url), { BENCH_CANNON: JSON.stringify(cannonCfg) });
  const post = await cannon.next<CannonResult>('result', (seconds + 60) * 1000);
  const postServer = await server.stats();
  await cannon.exited();

  // --- 5. GET max (no producer; the POST max backlog may still be draining) -----------------
  const getMaxCfg: CannonConfig = { url, org, method: 'GET', path: `/analyze/jobs/${ids[0] as string}`, connections: Number(postConnArg), seconds };
  server.mark();
  const getCannon = forkChild(new URL('./httpCannon.js', import.meta.url), { BENCH_CANNON: JSON.stringify(getMaxCfg) });
  const getMax = await getCannon.next<CannonResult>('result', (seconds + 60) * 1000);
  const getMaxServer = await server.stats();
  await getCannon.exited();

  // --- report --------------------------------------------------------------------------
  const notOk = (r: OpenLoopResult, ok: string) => r.errors + r.unanswered + Object.entries(r.statuses).filter(([s]) => s !== ok).reduce((a, [, c]) => a + c, 0);
  const report = (label: string, r: OpenLoopResult, phase: string) => {
    const xs = [...(r.samples[phase] ?? [])].sort((a, b) => a - b);
    for (const p of [50, 95, 99]) emit(`GET job p${p} @${getRate}/s ${label}`, percentile(xs, p), 'ms', { samples: xs.length });
  };
  report('idle', idle, 'idle');
  report(`while processing`, loaded, 'loaded');
  emit('jobs completed/s during GET window', loadedServer.completedPerSecond, 'jobs/s', { target_rate: produceRate });
  const producedXs = [...(produced.samples.loaded ?? [])].sort((a, b) => a - b);
  emit(`producer POST p99 @${produceRate}/s`, percentile(producedXs, 99), 'ms', { samples: producedXs.length });
  emit('GET/POST errors or unexpected status (open loop)', notOk(idle, '200') + notOk(loaded, '200') + notOk(produced, '202'), 'requests');
  emit('server CPU per GET (idle GET phase)', (idleServer.cpuCores * 1e6) / getRate, 'µs', { cpu_cores: idleServer.cpuCores });
  emit('server CPU while processing (cores)', loadedServer.cpuCores, 'cores');
  emit('server event-loop delay p99 idle GET', idleServer.loopDelayP99Ms, 'ms');
  emit('GET generator event-loop delay p99 (idle / while processing)', Math.max(idle.loopDelayP99Ms, loaded.loopDelayP99Ms), 'ms', { idle: idle.loopDelayP99Ms, loaded: loaded.loopDelayP99Ms });
  emit('server event-loop delay p99 while processing', loadedServer.loopDelayP99Ms, 'ms');
  emit('server GC pauses while processing (longest)', loadedServer.gcPauseMaxMs, 'ms', { total_ms: loadedServer.gcPauseTotalMs });
  emit('GET generator send lateness p99 (idle / while processing)', Math.max(idle.sendLateP99Ms, loaded.sendLateP99Ms), 'ms', { idle: idle.sendLateP99Ms, loaded: loaded.sendLateP99Ms });
  emit('load generators CPU per request (GET / producer POST, while processing)', loaded.cpuUs / loaded.sent, 'µs', { producer: produced.cpuUs / produced.sent });
  emit(`POST /analyze/jobs max (${cannonCfg.connections} conns)`, post.okPerSecond, 'req/s', { non2xx: post.non2xx, errors: post.errors, timeouts: post.timeouts });
  emit('POST max: latency p99', post.latencyP99Ms, 'ms');
  emit('jobs completed/s during POST max', postServer.completedPerSecond, 'jobs/s');
  emit('server CPU during POST max (cores)', postServer.cpuCores, 'cores');
  emit('POST max non-2xx / errors', post.non2xx + post.errors + post.timeouts, 'requests');
  emit(`GET /analyze/jobs/{id} max (${getMaxCfg.connections} conns)`, getMax.okPerSecond, 'req/s', { non2xx: getMax.non2xx, errors: getMax.errors, server_cpu_cores: getMaxServer.cpuCores });
  emit('server CPU per GET at GET max', (getMaxServer.cpuCores * 1e6) / getMax.okPerSecond, 'µs');
} finally {
  await server.stop();
  await target.cleanup();
}
process.exit(0);
