import type Database from 'better-sqlite3';
import { UpshiftError } from '../../../core/errors.js';
import { COPY_TABLES, copyTable, scanKey, type CellValue, type CopyRow, type CopyTableName, type CopyTableSpec } from '../../../core/storeCopy.js';
import type { CopyBatch, CopyReader } from '../../../ports/storeCopy.js';
import { loadSqliteDriver } from './sqliteDriver.js';
import { toStoreError } from './sqliteErrors.js';
import { loadMigrations, schemaState } from './sqliteMigrator.js';

/**
 * The source side of `upshift copy-store`: the embedded store's SQLite file, opened READ-ONLY
 * on its own connection. In WAL mode a reader never blocks the serving process's writer (and
 * is never blocked by it), so the copy runs while the embedded server keeps serving. Every
 * read is one short read transaction: a job and its child rows come from one snapshot, and
 * no snapshot stays open long enough to hold back WAL checkpoints.
 */
export function createSqliteCopySource(file: string): CopyReader {
  const Driver = loadSqliteDriver();
  let db: Database.Database;
  try {
    db = new Driver(file, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    db.pragma('cache_size = -65536');
  } catch (e) {
    throw new UpshiftError('STORE_UNAVAILABLE', `cannot open the SQLite store ${file} read-only: ${(e as Error).message}`, { cause: e });
  }
  const select = (t: CopyTableSpec): string => t.columns.map((c) => `"${c.name}"`).join(', ');
  const stmts = new Map<string, Database.Statement>();
  const prepared = (sql: string): Database.Statement => {
    let s = stmts.get(sql);
    if (!s) {
      s = db.prepare(sql);
      stmts.set(sql, s);
    }
    return s;
  };
  const rows = (t: CopyTableSpec, sql: string, ...params: unknown[]): CopyRow[] =>
    (prepared(sql).all(...params) as Record<string, unknown>[]).map((r) => fromSqlite(t, r));

  const childRows = (org: string, jobIds: readonly string[], children: readonly CopyTableName[], out: Record<string, CopyRow[]>): void => {
    if (jobIds.length === 0) return;
    const ids = JSON.stringify(jobIds);
    for (const name of children) {
      const t = copyTable(name);
      // job_id IN (…) walks each table's (job_id, …) unique index, one seek per job.
      out[name] = rows(t, `SELECT ${select(t)} FROM ${name} WHERE job_id IN (SELECT value FROM json_each(?)) AND org_id = ? ORDER BY ${t.key.join(', ')}`, ids, org);
    }
  };
  const snapshot = <T>(read: () => T): Promise<T> => {
    try {
      return Promise.resolve(db.transaction(read)());
    } catch (e) {
      return Promise.reject(toStoreError(e));
    }
  };

  return {
    checkSchema() {
      try {
        const state = schemaState(db, loadMigrations());
        if (state === 'too_new') throw new UpshiftError('STORE_SCHEMA_TOO_NEW', `the SQLite store ${file} was migrated by a newer Upshift than this one; upgrade Upshift`);
        if (state === 'not_migrated') throw new UpshiftError('STORE_NOT_MIGRATED', `the SQLite store ${file} is not migrated to this version; run \`upshift migrate --database sqlite:${file}\``);
        return Promise.resolve();
      } catch (e) {
        return Promise.reject(toStoreError(e));
      }
    },

    listOrgs: () => snapshot(() => (prepared(COPY_TABLES.map((t) => `SELECT DISTINCT org_id FROM ${t.table}`).join(' UNION ') + ' ORDER BY 1').pluck().all() as string[])),

    countRows: () =>
      snapshot(() => {
        const out: Record<string, Partial<Record<CopyTableName, number>>> = {};
        for (const t of COPY_TABLES) {
          for (const r of prepared(`SELECT org_id, count(*) AS n FROM ${t.table} GROUP BY org_id`).all() as { org_id: string; n: number }[]) {
            (out[r.org_id] ??= {})[t.table] = r.n;
          }
        }
        return out;
      }),

    scan(table, org, after, limit, children = []) {
      const t = copyTable(table);
      const key = scanKey(t);
      return snapshot(() => {
        const out: Record<string, CopyRow[]> = {};
        const found = rows(t, `SELECT ${select(t)} FROM ${table} WHERE org_id = ? AND "${key}" > ? ORDER BY "${key}" LIMIT ?`, org, after ?? '', limit);
        out[table] = found;
        childRows(
          org,
          found.map((r) => r[key] as string),
          children,
          out,
        );
        return out as CopyBatch;
      });
    },

    read(table, org, keys, children = []) {
      const t = copyTable(table);
      const key = scanKey(t);
      return snapshot(() => {
        const out: Record<string, CopyRow[]> = {};
        const found = rows(t, `SELECT ${select(t)} FROM ${table} WHERE org_id = ? AND "${key}" IN (SELECT value FROM json_each(?)) ORDER BY "${key}"`, org, JSON.stringify(keys));
        out[table] = found;
        childRows(
          org,
          found.map((r) => r[key] as string),
          children,
          out,
        );
        return out as CopyBatch;
      });
    },

    close() {
      if (db.open) db.close();
      return Promise.resolve();
    },
  };
}

/** SQLite storage → the store-neutral kinds: JSON text kept as is, 0/1 booleans as booleans. */
function fromSqlite(t: CopyTableSpec, r: Record<string, unknown>): CopyRow {
  const out: Record<string, CellValue> = {};
  for (const c of t.columns) {
    const v = r[c.name];
    if (v === null || v === undefined) out[c.name] = null;
    else if (c.kind === 'bool') out[c.name] = v === 1 || v === true;
    else out[c.name] = v as string | number;
  }
  return out;
}
