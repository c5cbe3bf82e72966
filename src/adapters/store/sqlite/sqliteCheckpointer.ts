import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { sqliteDriverPackage } from './sqliteDriver.js';

/**
 * WAL checkpoints off the event loop, for write-heavy stretches like a retention run.
 *
 * Normally the connection that commits runs the checkpoint (every ~1000 WAL pages): it copies
 * the pages into the database file and fsyncs both files, synchronously, on the event-loop
 * thread — a stall of several milliseconds (tens on a busy disk) that API requests sharing the
 * thread wait through. Deleting a million rows dirties tens of thousands of pages, i.e. dozens
 * of such stalls. While active, this runs `PRAGMA wal_checkpoint(PASSIVE)` on its own
 * connection in a worker thread every `intervalMs`, so the WAL stays backfilled and the
 * commit-time checkpoint finds nothing left to copy or sync. PASSIVE never blocks readers or
 * writers and never waits for locks, so it cannot slow the store's own connection down.
 *
 * `touch()` (re)starts it and keeps it alive until `idleMs` pass without another touch.
 */
export class SqliteCheckpointer {
  private worker: Worker | null = null;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(
    private readonly file: string,
    private readonly intervalMs = 100,
    private readonly idleMs = 2_000,
  ) {}

  touch(): void {
    if (this.closed || this.file === ':memory:') return;
    if (!this.worker) this.start();
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => void this.stop(), this.idleMs);
    this.idleTimer.unref();
  }

  /** Stops the worker (a last checkpoint runs first) and refuses to start again. */
  async close(): Promise<void> {
    this.closed = true;
    await this.stop();
  }

  private start(): void {
    const driver = createRequire(import.meta.url).resolve(sqliteDriverPackage());
    // An inline (eval) worker: no separate file to find from src/ (tests) or dist/.
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver, file: this.file, intervalMs: this.intervalMs } });
    // Best effort: without it, the commit-time checkpoint simply does the work as before.
    worker.on('error', () => {
      if (this.worker === worker) this.worker = null;
    });
    worker.unref();
    this.worker = worker;
  }

  private async stop(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    // Unref'd while it runs; held now, so the process waits for its last checkpoint and close.
    worker.ref();
    worker.postMessage('stop');
    await exited;
  }
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
let db;
try {
  db = new Database(workerData.file, { fileMustExist: true });
  db.pragma('busy_timeout = 0');
} catch {
  process.exit(0);
}
const checkpoint = () => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {}
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort.close();
});
`;
