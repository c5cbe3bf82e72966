import { parentPort, workerData } from 'node:worker_threads';
import { openSqliteConnection } from './sqliteConnection.js';
import { toStoreError } from './sqliteErrors.js';
import { BatchExecutor, type WriteOp } from './sqliteGroupCommit.js';
import type { FromWriter, ToWriter, WireOp, WireOutcome, WriterThreadData } from './sqliteWriter.js';
import { buildOp, WriterQueries } from './sqliteWriteOps.js';

/**
 * The SQLite store's writer thread (see ThreadWriter in sqliteWriter.ts): owns the one
 * connection that writes. Every write that arrived since the last transaction runs in the
 * next one (group commit, at most `maxOpsPerTransaction` per transaction); after COMMIT the
 * outcomes and the committed events go back in one message.
 */
const data = workerData as WriterThreadData;
const port = parentPort;
if (!port) throw new Error('sqliteWriterThread.js runs only as a worker thread');

const db = openSqliteConnection(data.file, data.busyTimeoutMs);
const queries = new WriterQueries(db, data.inAppDelivery);
const executor = new BatchExecutor(db);
let queue: WireOp[] = [];
let scheduled: NodeJS.Immediate | null = null;

port.on('message', (text: string) => {
  const msg = JSON.parse(text) as ToWriter;
  if (msg.kind === 'ops') {
    for (const op of msg.ops) queue.push(op);
    // setImmediate: every message already waiting joins this transaction.
    scheduled ??= setImmediate(flush);
    return;
  }
  if (scheduled) clearImmediate(scheduled);
  scheduled = null;
  while (queue.length > 0) flushOnce();
  db.close();
  port.postMessage(JSON.stringify({ kind: 'closed' } satisfies FromWriter));
  port.close();
});

function flush(): void {
  scheduled = null;
  flushOnce();
  if (queue.length > 0) scheduled = setImmediate(flush);
}

function flushOnce(): void {
  const batch = queue.length <= data.maxOpsPerTransaction ? queue : queue.slice(0, data.maxOpsPerTransaction);
  queue = batch === queue ? [] : queue.slice(data.maxOpsPerTransaction);
  const ids: number[] = [];
  const ops: WriteOp<unknown>[] = [];
  const outcomes: WireOutcome[] = [];
  const failedEarly = new Map<number, WireOutcome>();
  for (const [id, name, args] of batch) {
    try {
      ops.push(buildOp(queries, name, args));
      ids.push(id);
    } catch (e) {
      failedEarly.set(id, failure(e));
    }
  }
  const run = executor.execute(ops);
  for (const o of run.outcomes) outcomes.push(o.ok ? { ok: true, value: o.value } : failure(o.error));
  for (const [id, outcome] of failedEarly) {
    ids.push(id);
    outcomes.push(outcome);
  }
  // As JSON text: V8's structured clone of many small objects (jobs, events) costs several
  // times more than JSON.stringify here plus JSON.parse on the other side. Everything in
  // it is plain data (JSON-shaped rows, events and errors).
  port!.postMessage(JSON.stringify({ kind: 'done', ids, outcomes, events: run.events } satisfies FromWriter));
}

function failure(e: unknown): WireOutcome {
  const error = toStoreError(e);
  return { ok: false, code: error.code, message: error.message, details: error.details };
}
