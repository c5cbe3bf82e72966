import type Database from 'better-sqlite3';
import { UpshiftError } from '../../../core/errors.js';
import { loadSqliteDriver } from './sqliteDriver.js';

/**
 * Opens a connection with the store's settings; used for the reading connection and the
 * writer's (in the writer thread, or the same one in-thread).
 *
 * WAL: readers never block the writer. synchronous=NORMAL: in WAL mode a commit is durable
 * against process crashes; only an OS crash / power loss can lose the last commits, never
 * corrupt the file. busy_timeout: how long BEGIN IMMEDIATE waits for another process's
 * writer (it blocks the calling thread; better-sqlite3 is synchronous).
 */
export function openSqliteConnection(file: string, busyTimeoutMs: number): Database.Database {
  const SqliteDatabase = loadSqliteDriver(); // better-sqlite3 12 or 13 by Node version; throws STORE_UNAVAILABLE
  let db: Database.Database | undefined;
  try {
    db = new SqliteDatabase(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    // An 8 MiB page cache (2,048 pages), not more. Every COMMIT truncates the cache to the
    // database size, and a transaction that split a b-tree page has rekeyed a page through the
    // lock-byte page number (page 262,145; SQLite's balance_nonroot), so the truncation walks
    // the whole cache instead of its tail: its cost grows with every cached page. With 64 MiB,
    // that walk, the page faults of a growing cache and its cache misses cost ~12 % of the
    // embedded store's CPU per job (docs/benchmarks.md, session 12). The hot path needs only
    // the right edges of its append-mostly indexes; the event loop's reading connection loses
    // its cache at every commit of the writer thread anyway (WAL), and colder pages come from
    // the OS page cache.
    // Checkpoints normally run in a worker thread (backgroundCheckpoints); the commit-time
    // checkpoint is the safety net that bounds the WAL (40 MB), in big, rare steps that find
    // most pages already copied.
    db.pragma('cache_size = -8192');
    db.pragma('temp_store = MEMORY');
    db.pragma('wal_autocheckpoint = 10000');
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    return db;
  } catch (e) {
    db?.close();
    throw new UpshiftError('STORE_UNAVAILABLE', `cannot open SQLite database ${file}`, { cause: e });
  }
}
