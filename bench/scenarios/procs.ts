import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { upshiftNodeFlags } from '../harness.js';

/**
 * Child processes of the HTTP/SSE scenarios: the Upshift server (serverProcess.ts) and each
 * load generator run in their own process, talking to the orchestrator over the fork IPC
 * channel. Every child dies with the orchestrator (they exit on 'disconnect').
 */

export interface Child {
  readonly proc: ChildProcess;
  send(msg: object): void;
  /** Next IPC message that has `key`. */
  next<T>(key: string, timeoutMs?: number): Promise<T>;
  /** Resolves once the process exited (or kills it after `timeoutMs`). */
  exited(timeoutMs?: number): Promise<void>;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

export function forkChild(script: URL, env: Record<string, string>, execArgv: string[] = []): Child {
  const proc = fork(script, [], { env: { ...process.env, ...env }, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  const inbox: Record<string, unknown>[] = [];
  const waiters: { key: string; resolve: (v: unknown) => void }[] = [];
  proc.on('message', (m: Record<string, unknown>) => {
    const w = waiters.findIndex((x) => x.key in m);
    const waiter = w >= 0 ? waiters.splice(w, 1)[0] : undefined;
    if (waiter) waiter.resolve(m[waiter.key]);
    else inbox.push(m);
  });
  return {
    proc,
    send: (msg) => proc.send(msg),
    next<T>(key: string, timeoutMs = 120_000): Promise<T> {
      const i = inbox.findIndex((m) => key in m);
      if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0]?.[key] as T);
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${script.pathname}: no "${key}" message within ${timeoutMs} ms`)), timeoutMs);
        const onExit = (code: number | null) => reject(new Error(`${script.pathname} exited (${code}) before sending "${key}"`));
        proc.once('exit', onExit);
        waiters.push({
          key,
          resolve: (v) => {
            clearTimeout(timer);
            proc.off('exit', onExit);
            resolve(v as T);
          },
        });
      });
    },
    exited(timeoutMs = 30_000): Promise<void> {
      if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
      return new Promise((resolve) => {
        const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
        proc.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

export interface ServerStats {
  readonly seconds: number;
  readonly completed: number;
  readonly completedPerSecond: number;
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
  readonly rssMiB: number;
  /** Garbage-collection pauses in the window: their sum and the longest (ms). */
  readonly gcPauseTotalMs: number;
  readonly gcPauseMaxMs: number;
  /** Event occurred_at → the server's own commit listener, p50/p99 (ms). */
  readonly feedLagP50Ms: number;
  readonly feedLagP99Ms: number;
  readonly cpuCores: number;
}

export interface Server extends Child {
  readonly url: string;
  mark(): void;
  stats(): Promise<ServerStats>;
  stop(): Promise<void>;
}

/** Starts serverProcess.ts; with BENCH_CPU_PROF=<dir> it runs under --cpu-prof into that dir. */
export async function startServer(env: Record<string, string>): Promise<Server> {
  const profDir = process.env.BENCH_CPU_PROF;
  if (profDir) mkdirSync(profDir, { recursive: true });
  const child = forkChild(new URL('./serverProcess.js', import.meta.url), env, [...upshiftNodeFlags(), ...(profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [])]);
  const url = await child.next<string>('ready', 60_000);
  return {
    ...child,
    url,
    mark: () => child.send({ cmd: 'mark' }),
    async stats() {
      child.send({ cmd: 'stats' });
      return child.next<ServerStats>('stats');
    },
    async stop() {
      child.send({ cmd: 'stop' });
      await child.exited(30_000);
    },
  };
}

/** The soft open-files limit of a child started now (ours, inherited). */
export function openFilesLimit(): number {
  return Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
