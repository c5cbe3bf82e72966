import type { Database } from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { UpshiftError, type ErrorCode } from '../../../core/errors.js';
import type { JobEvent } from '../../../core/events.js';
import type { InAppDelivery } from '../../../ports/deliveryStore.js';
import { toStoreError } from './sqliteErrors.js';
import { GroupCommit, notifyListeners, type CommitListener } from './sqliteGroupCommit.js';
import { buildOp, WriterQueries, type WriteArgs, type WriteName, type WriteResult } from './sqliteWriteOps.js';

/**
 * The single writer of an SQLite store: runs named writes (WRITE_OPS) group-committed, resolves
 * each after its transaction committed, then calls the commit listeners with the events.
 *
 * Two implementations with the same behaviour:
 * - `ThreadWriter` (default for a file): the writes run in a worker thread on a connection of
 *   their own (sqliteWriterThread.ts). SQLite's work — statements, B-tree updates, the WAL
 *   append at COMMIT, commit-time checkpoints — leaves the event-loop thread, so on a
 *   multi-core machine JavaScript (HTTP, the worker runtime) and SQLite run in parallel, and
 *   a large batch no longer stalls API requests. Reads stay on the caller's connection: WAL
 *   gives each read the latest committed state, so a write's effects are visible to reads
 *   as soon as its promise resolved.
 * - `InlineWriter`: the same group commit on the caller's own connection and thread (for
 *   `:memory:` databases, which cannot be shared between connections, and as a fallback).
 */
export interface SqliteWriter {
  run<N extends WriteName>(name: N, args: WriteArgs<N>): Promise<WriteResult<N>>;
  /** Runs every write queued so far, then refuses new ones. */
  close(): Promise<void>;
}

export interface WriterOptions {
  readonly listeners: ReadonlySet<CommitListener>;
  readonly onListenerError: (e: unknown) => void;
  readonly maxOpsPerTransaction: number;
  readonly inAppDelivery: InAppDelivery;
}

const closedError = (): UpshiftError => new UpshiftError('STORE_UNAVAILABLE', 'the SQLite store is closed');

export class InlineWriter implements SqliteWriter {
  private readonly commit: GroupCommit;
  private readonly queries: WriterQueries;

  constructor(db: Database, opts: WriterOptions) {
    this.commit = new GroupCommit(db, opts.listeners, opts.maxOpsPerTransaction, opts.onListenerError);
    this.queries = new WriterQueries(db, opts.inAppDelivery);
  }

  run<N extends WriteName>(name: N, args: WriteArgs<N>): Promise<WriteResult<N>> {
    let op;
    try {
      op = buildOp(this.queries, name, args);
    } catch (e) {
      return Promise.reject(toStoreError(e));
    }
    return this.commit.enqueue(op) as Promise<WriteResult<N>>;
  }

  close(): Promise<void> {
    this.commit.close();
    return Promise.resolve();
  }
}

/** main → writer thread */
export type ToWriter = { readonly kind: 'ops'; readonly ops: readonly WireOp[] } | { readonly kind: 'close' };
export type WireOp = readonly [id: number, name: WriteName, args: unknown];
/** writer thread → main */
export type FromWriter =
  | { readonly kind: 'done'; readonly ids: readonly number[]; readonly outcomes: readonly WireOutcome[]; readonly events: readonly JobEvent[] }
  | { readonly kind: 'closed' };
export type WireOutcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string; readonly details: Readonly<Record<string, unknown>> | undefined };

export interface WriterThreadData {
  readonly file: string;
  readonly busyTimeoutMs: number;
  readonly maxOpsPerTransaction: number;
  readonly inAppDelivery: InAppDelivery;
}

interface Waiter {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

export class ThreadWriter implements SqliteWriter {
  private worker: Worker | null = null;
  private readonly waiting = new Map<number, Waiter>();
  private outgoing: WireOp[] = [];
  private scheduled = false;
  /** Writes sent to the thread and not yet answered. */
  private sent = 0;
  private nextId = 1;
  private closed = false;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly data: WriterThreadData,
    private readonly opts: WriterOptions,
  ) {
    // Started now, not at the first write: a thread takes tens of milliseconds to load its
    // modules and open the database, which the first writes would otherwise wait through.
    try {
      this.start();
    } catch {
      // The first write retries and reports the reason.
    }
  }

  run<N extends WriteName>(name: N, args: WriteArgs<N>): Promise<WriteResult<N>> {
    if (this.closed) return Promise.reject(closedError());
    const id = this.nextId++;
    return new Promise<WriteResult<N>>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.outgoing.push([id, name, args]);
      this.schedule();
    });
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.closing = (async () => {
      // Unsent writes go now, behind any batch in flight (the thread runs them in order).
      this.send();
      const worker = this.worker;
      if (!worker) return;
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.ref();
      worker.postMessage(JSON.stringify({ kind: 'close' } satisfies ToWriter));
      await exited;
    })();
    return this.closing;
  }

  /**
   * Pipelining: while the thread works on a batch, new writes wait here and go together the
   * moment its answer arrives, so the thread starts the next transaction while this thread
   * handles the answer (runs the claimed jobs, resolves the finished ones). An idle thread gets
   * writes at the end of the current synchronous burst (a microtask), not one message each.
   */
  private schedule(): void {
    if (this.scheduled || this.sent > 0) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      if (this.sent === 0) this.send();
    });
  }

  private send(): void {
    if (this.outgoing.length === 0) return;
    let ops = this.outgoing;
    this.outgoing = [];
    let worker: Worker;
    try {
      worker = this.worker ?? this.start();
    } catch (e) {
      this.failAll(ops, e);
      return;
    }
    // JSON text both ways: cheaper than structured clone for many small objects, and the
    // arguments are JSON-shaped (commands, leases, Json payloads).
    let text: string;
    try {
      text = JSON.stringify({ kind: 'ops', ops } satisfies ToWriter);
    } catch {
      // Arguments that cannot be serialised (a BigInt in a payload, a cycle): fail those writes only.
      ops = ops.filter((op) => {
        try {
          JSON.stringify(op);
          return true;
        } catch (e) {
          this.failAll([op], e);
          return false;
        }
      });
      if (ops.length === 0) return;
      text = JSON.stringify({ kind: 'ops', ops } satisfies ToWriter);
    }
    this.sent += ops.length;
    // Someone waits for an answer: keep the process alive until it comes.
    worker.ref();
    worker.postMessage(text);
  }

  private failAll(ops: readonly WireOp[], e: unknown): void {
    const error = toStoreError(e);
    for (const [id] of ops) this.settle(id, { ok: false, code: error.code, message: error.message, details: error.details });
  }

  private start(): Worker {
    const worker = new Worker(writerThreadUrl(), { workerData: this.data satisfies WriterThreadData });
    worker.on('message', (text: string) => {
      const msg = JSON.parse(text) as FromWriter;
      if (msg.kind !== 'done') return;
      this.sent -= msg.ids.length;
      // The next batch first, so the thread works while this one's answers are handled.
      if (this.sent === 0) this.send();
      for (let i = 0; i < msg.ids.length; i++) this.settle(msg.ids[i] as number, msg.outcomes[i] as WireOutcome);
      if (this.waiting.size === 0) worker.unref();
      if (msg.events.length > 0) notifyListeners(this.opts.listeners, msg.events, this.opts.onListenerError);
    });
    const fail = (e?: unknown): void => {
      if (this.worker !== worker) return;
      this.worker = null;
      // Whether the writes in flight committed is unknown: their callers see STORE_UNAVAILABLE
      // (as for a lost database connection) and the next write starts a fresh writer.
      const error = new UpshiftError('STORE_UNAVAILABLE', 'the SQLite writer thread stopped', e === undefined ? undefined : { cause: e });
      const queued = new Set(this.outgoing.map(([id]) => id));
      for (const id of [...this.waiting.keys()]) {
        if (!queued.has(id)) this.settle(id, { ok: false, code: error.code, message: error.message, details: undefined });
      }
      // Writes not yet sent go to a fresh thread.
      this.sent = 0;
      if (!this.closed) this.schedule();
    };
    worker.on('error', fail);
    worker.on('exit', () => fail());
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private settle(id: number, outcome: WireOutcome): void {
    const waiter = this.waiting.get(id);
    if (!waiter) return;
    this.waiting.delete(id);
    if (outcome.ok) waiter.resolve(outcome.value);
    else waiter.reject(new UpshiftError(outcome.code, outcome.message, outcome.details === undefined ? undefined : { details: { ...outcome.details } }));
  }
}

/**
 * The writer thread's module. From dist/ (the built package, `npm start`) it sits next to
 * this file. When this file runs from the TypeScript sources (vitest), a worker cannot load
 * .ts, so the compiled copy under dist/ is used: `npm test` builds first.
 */
function writerThreadUrl(): URL {
  const here = new URL('./sqliteWriterThread.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const path = fileURLToPath(here);
  const at = path.lastIndexOf(`${sep}src${sep}`);
  const built = at < 0 ? path : `${path.slice(0, at)}${sep}dist${path.slice(at)}`;
  if (existsSync(built)) return pathToFileURL(built);
  throw new UpshiftError('STORE_UNAVAILABLE', `the SQLite writer thread module is missing (${built}); run \`npm run build\``);
}
