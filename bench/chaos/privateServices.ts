import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, sleep } from './embedded.js';

/**
 * PRIVATE PostgreSQL and Redis instances for the scale-mode chaos run: their own data dirs in
 * the run's temp dir, their own loopback ports, stopped and restarted by the run (the outages).
 * Never the shared 5432/6379 services. PostgreSQL refuses to run as root: as root, initdb and
 * pg_ctl run as the `postgres` OS user (runuser) on a directory handed to it.
 */

const PG_BIN = process.env.UPSHIFT_CHAOS_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PrivatePostgres {
  readonly url: string;
  readonly port: number;
  /** Immediate shutdown (no checkpoint: like a crash), waits until it is down. */
  stop(): void;
  start(): void;
  /** Stops it for good (end of run). */
  destroy(): void;
}

function asPgUser(dir: string): (cmd: string, args: string[]) => string {
  const root = userInfo().uid === 0;
  if (root) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  return (cmd, args) => {
    const full = join(PG_BIN, cmd);
    if (!root) return execFileSync(full, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return execFileSync('runuser', ['-u', 'postgres', '--', full, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  };
}

export async function startPrivatePostgres(runDir: string): Promise<PrivatePostgres> {
  const dir = join(runDir, 'pg');
  mkdirSync(dir, { recursive: true });
  const run = asPgUser(dir);
  const data = join(dir, 'data');
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on -c synchronous_commit=on`;
  const start = () => void run('pg_ctl', ['-D', data, '-l', join(dir, 'pg.log'), '-o', opts, '-w', '-t', '60', 'start']);
  const stop = () => void run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '60', 'stop']);
  start();
  let destroyed = false;
  process.once('exit', () => {
    if (!destroyed) {
      try {
        stop();
      } catch {
        // already down
      }
    }
  });
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    stop,
    start,
    destroy() {
      destroyed = true;
      try {
        stop();
      } catch {
        // already down
      }
    },
  };
}

export interface PrivateRedis {
  readonly url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

/** redis-server with AOF everysec in its own dir: a stop (SIGKILL) and restart keeps what was fsynced. */
export async function startPrivateRedis(runDir: string): Promise<PrivateRedis> {
  const dir = join(runDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  let child: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    const c = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', dir, '--logfile', join(dir, 'redis.log')], { stdio: 'ignore' });
    child = c;
    const until = Date.now() + 20_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`private redis-server on ${port} exited (${c.exitCode})`);
      const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        return;
      } catch {
        probe.disconnect();
        if (Date.now() > until) throw new Error(`private redis-server on ${port} not up within 20 s`);
        await sleep(50);
      }
    }
  };
  const stop = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise((r) => {
      c.once('exit', r);
      c.kill('SIGKILL');
    });
  };
  process.once('exit', () => {
    const c = child;
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
  await start();
  return { url: `redis://127.0.0.1:${port}`, start, stop, destroy: stop };
}
