import { createHash } from 'node:crypto';
import { loadSqliteDriver } from '../../src/adapters/store/sqlite/sqliteDriver.js';

export interface SqliteFingerprint {
  /** Rows per table (every table of the file, sqlite_* bookkeeping included). */
  readonly counts: Readonly<Record<string, number>>;
  /** SHA-256 over every row of every table, in rowid order. */
  readonly digest: string;
}

/**
 * The logical content of an SQLite file, read through a separate read-only connection: two
 * equal fingerprints mean no row was inserted, deleted or changed. (The file's bytes are no
 * measure: closing the last connection checkpoints the WAL into the main file.)
 */
export function sqliteFingerprint(file: string): SqliteFingerprint {
  const Database = loadSqliteDriver();
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as Array<{ name: string }>).map((t) => t.name);
    const hash = createHash('sha256');
    const counts: Record<string, number> = {};
    for (const t of tables) {
      let n = 0;
      hash.update(`\u0000table ${t}\u0000`);
      for (const row of db.prepare(`SELECT * FROM "${t.replace(/"/g, '""')}" ORDER BY rowid`).raw(true).iterate() as Iterable<unknown[]>) {
        hash.update(JSON.stringify(row));
        n++;
      }
      counts[t] = n;
    }
    return { counts, digest: hash.digest('hex') };
  } finally {
    db.close();
  }
}
