import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { drive, type Peer } from './peerCommon.js';

/**
 * BullMQ peer. BENCH_BULLMQ_AOF=1: a throwaway redis-server on a loopback port 6390–6439 (or
 * BENCH_BULLMQ_AOF_PORT) with --appendonly yes --appendfsync everysec in a temp dir, stopped at
 * the end — durability parity. Otherwise the shared 127.0.0.1:6379 as-is (no persistence
 * configured by us). Unique prefix per run; its keys are deleted at the end. Defaults otherwise
 * (completed jobs are kept, as BullMQ does by default).
 */
const aof = process.env.BENCH_BULLMQ_AOF === '1';
// A port of our own per run (6390–6439), so a leftover server can never be mistaken for ours.
const port = aof ? Number(process.env.BENCH_BULLMQ_AOF_PORT ?? String(6390 + (process.pid % 50))) : 6379;
const prefix = `bench-${process.pid}-${Date.now()}`;
const name = 'noop';
let server: ChildProcess | undefined;
let dir: string | undefined;

async function startAofServer(): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), 'bench-redis-aof-'));
  server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', dir, '--logfile', join(dir, 'redis.log')], { stdio: 'ignore' });
  const child = server;
  let exited = false;
  child.once('exit', () => (exited = true));
  // Never leave the throwaway server behind, even if this process dies on an error.
  process.once('exit', () => {
    if (!exited) child.kill('SIGKILL');
  });
  const until = Date.now() + 10_000;
  let probe: Redis;
  for (;;) {
    probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    try {
      await probe.connect();
      await probe.ping();
      break;
    } catch (e) {
      probe.disconnect();
      if (exited) throw new Error(`throwaway redis-server on port ${port} exited (port in use?)`);
      if (Date.now() > until) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const cfg = await probe.config('GET', 'appendfsync');
  if (!String(cfg).includes('everysec')) throw new Error(`unexpected appendfsync ${String(cfg)}`);
  probe.disconnect();
}

await drive(aof ? 'bullmq-aof-everysec' : 'bullmq-no-persistence', async (): Promise<Peer> => {
  if (aof) await startAofServer();
  const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
  const queue = new Queue(name, { connection, prefix });
  await queue.waitUntilReady();
  let worker: Worker | undefined;
  return {
    async addBulk(items) {
      await queue.addBulk(items.map((i) => ({ name, data: { i } })));
    },
    async addOne(i) {
      await queue.add(name, { i });
    },
    async start(concurrency, onStart, onDone) {
      worker = new Worker(name, async (job) => {
        onStart((job.data as { i: number }).i);
      }, { connection, prefix, concurrency });
      worker.on('completed', (job) => onDone((job.data as { i: number }).i));
      await worker.waitUntilReady();
    },
    async close() {
      await worker?.close(true);
      await queue.obliterate({ force: true }).catch(() => {});
      const r = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: null });
      let cursor = '0';
      do {
        const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await r.del(...keys);
      } while (cursor !== '0');
      r.disconnect();
      await queue.close();
      if (server && server.exitCode === null && server.signalCode === null) {
        const s = server;
        await new Promise((res) => {
          s.once('exit', res);
          s.kill('SIGTERM');
        });
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
});
