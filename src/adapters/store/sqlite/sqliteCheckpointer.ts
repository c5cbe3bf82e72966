import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { sqliteDriverPackage } from './sqliteDriver.js';

/**
 * WAL checkpoints off the event loop, for write-heavy stretches like a retention run.
 *
 * Normally the connection that commits runs the checkpoint (every `wal_autocheckpoint`
 * pages): it copies the pages into the database file and fsyncs both files, synchronously,
 * on the event-loop thread — a stall of tens of milliseconds that API requests sharing the
 * thread wait through. Deleting a million rows dirties tens of thousands of pages, i.e. many
 * such stalls. `checkpoint()` runs `PRAGMA wal_checkpoint(PASSIVE)` on its own connection in a
 * worker thread and resolves when it is done; the event loop stays free meanwhile.
 *
 * Why the caller awaits it instead of a timer checkpointing in the background: SQLite rewinds
 * the WAL only when a write transaction *begins* while the WAL is completely backfilled. With
 * a background timer the store keeps writing during every checkpoint, the WAL never rewinds,
 * grows to the auto-checkpoint size and the commit-time checkpoint runs on the event loop
 * anyway. Awaited between two deletes, the next delete finds the WAL backfilled and rewinds
 * it, so the WAL stays small and the commit-time checkpoint never fires. PASSIVE never blocks
 * readers or writers and never waits for a lock. Best effort: if the worker fails, the
 * commit-time checkpoint simply does the work as before.
 */
export class SqliteCheckpointer {
  private worker: Worker | null = null;
  private pending = new Map<number, () => void>();
  private nextId = 1;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(
    private readonly file: string,
    /** Stop the worker (and its connection) after this long without a checkpoint request. */
    private readonly idleMs = 2_000,
  ) {}

  /** Checkpoints the WAL in the worker thread; resolves when done (never rejects). */
  checkpoint(): Promise<void> {
    if (this.closed || this.file === ':memory:') return Promise.resolve();
    const worker = this.worker ?? this.start();
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => void this.stop(), this.idleMs);
    this.idleTimer.unref();
    const id = this.nextId++;
    return new Promise<void>((resolve) => {
      this.pending.set(id, resolve);
      // Someone waits for an answer: keep the process alive until it comes.
      worker.ref();
      worker.postMessage(id);
    });
  }

  /** Stops the worker (after the checkpoints in flight) and refuses to start again. */
  async close(): Promise<void> {
    this.closed = true;
    await this.stop();
  }

  private start(): Worker {
    const driver = createRequire(import.meta.url).resolve(sqliteDriverPackage());
    // An inline (eval) worker: no separate file to find from src/ (tests) or dist/.
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver, file: this.file } });
    worker.on('message', (id: number) => this.settle(id));
    const fail = (): void => {
      if (this.worker === worker) this.worker = null;
      for (const id of [...this.pending.keys()]) this.settle(id);
    };
    worker.on('error', fail);
    worker.on('exit', fail);
    // An idle worker (no request pending) must not keep the process alive.
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private settle(id: number): void {
    const resolve = this.pending.get(id);
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker?.unref();
    resolve?.();
  }

  private async stop(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    // Held now, so the process waits for the worker to close its connection.
    worker.ref();
    worker.postMessage('stop');
    await exited;
  }
}

/**
 * Checkpoints during sustained writing, in the checkpointer's worker thread and not awaited:
 * returns a hook to call after every commit. Without it the committing connection checkpoints
 * every `wal_autocheckpoint` pages on the event loop — copying pages and fsyncing the WAL and
 * the database file (~10 ms each on a loaded VM disk), a stall every few hundred milliseconds
 * under load that every job and request in flight waits through. With it the copying and the
 * fsyncs run on the other core while commits continue. Small steps (at most one in flight, one
 * per `minIntervalMs` after at least `minCommits` commits) usually catch up completely between
 * two commits, so the next transaction rewinds the WAL; if they do not, the commit-time
 * checkpoint (raised `wal_autocheckpoint`) still bounds the WAL and finds little left to copy.
 * A store with only a few writes (tests, an idle server) never starts the worker.
 */
export function backgroundCheckpoints(checkpointer: SqliteCheckpointer, minCommits = 64, minIntervalMs = 50): () => void {
  let commits = 0;
  let last = 0;
  let inFlight = false;
  return () => {
    commits++;
    if (inFlight || commits < minCommits) return;
    const now = performance.now();
    if (now - last < minIntervalMs) return;
    commits = 0;
    last = now;
    inFlight = true;
    void checkpointer.checkpoint().finally(() => {
      inFlight = false;
    });
  };
}

/** Answers each numeric request with its id once the checkpoint ran; 'stop' closes and exits. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
parentPort.on('message', (msg) => {
  if (msg === 'stop') {
    db.close();
    parentPort.close();
    return;
  }
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {}
  parentPort.postMessage(msg);
});
`;
