import type { Database } from 'better-sqlite3';
import { UpshiftError } from '../../../core/errors.js';
import { ledgerState, loadMigrations as loadStoreMigrations, migrationsDir as storeMigrationsDir, refuseTooNew, type LedgerRow, type Migration, type SchemaState } from '../storeMigrations.js';
import { toStoreError } from './sqliteErrors.js';

export type { Migration, SchemaState } from '../storeMigrations.js';

export const migrationsDir = (): string => storeMigrationsDir('sqlite');

export const loadMigrations = (dir: string = migrationsDir()): Migration[] => loadStoreMigrations('sqlite', dir);

/**
 * First line of a migration that edits table definitions in place, followed by the names of
 * the definitions it changes: `-- upshift:schema-edit jobs notification_outbox`.
 */
const SCHEMA_EDIT_RE = /^-- upshift:schema-edit((?: [a-z_][a-z0-9_]*)+)[ \t]*(?:\n|$)/;

/** The definitions a schema-edit migration names, or null for a plain one. */
function schemaEditTargets(sql: string): string[] | null {
  const m = SCHEMA_EDIT_RE.exec(sql);
  return m ? (m[1] as string).trim().split(' ') : null;
}

type SchemaRow = { name: string; sql: string | null };

/**
 * Runs a schema-edit migration inside the caller's transaction: SQLite's documented procedure
 * for changing CHECK (and NOT NULL, FOREIGN KEY) constraints without rebuilding the table
 * (https://sqlite.org/lang_altertable.html#otheralter). The migration's UPDATEs of
 * sqlite_schema run with writes to it allowed — better-sqlite3 opens connections in SQLite's
 * defensive mode, which forbids them, so it is lifted for these statements only — and
 * schema_version is raised so every connection re-reads the schema. Then the schema is read
 * back on this connection before COMMIT: a definition that no longer parses throws here and
 * the caller rolls the whole migration back. It also throws unless exactly the definitions the
 * migration names changed (an edit whose text no longer matches would otherwise pass as a no-op).
 * Only for edits that keep every stored row valid: SQLite does not re-check existing rows.
 */
function editSchema(db: Database, m: Migration, targets: readonly string[]): void {
  const snapshot = (): Map<string, string | null> =>
    new Map((db.prepare('SELECT name, sql FROM sqlite_schema').all() as SchemaRow[]).map((r) => [r.name, r.sql]));
  const before = snapshot();
  const version = db.pragma('schema_version', { simple: true }) as number;
  db.unsafeMode(true);
  try {
    db.pragma('writable_schema = ON');
    try {
      db.exec(m.sql);
      db.pragma(`schema_version = ${version + 1}`);
    } finally {
      db.pragma('writable_schema = OFF');
    }
  } finally {
    db.unsafeMode(false);
  }
  // Preparing any statement re-reads the schema now (schema_version moved): a definition that
  // does not parse fails here, before COMMIT.
  const after = snapshot();
  const changed = [...new Set([...before.keys(), ...after.keys()])].filter((name) => before.get(name) !== after.get(name)).sort();
  const expected = [...targets].sort();
  if (changed.join(' ') !== expected.join(' ')) {
    throw new UpshiftError('STORE_CONFLICT', `migration ${m.name} was to change the definitions of ${expected.join(', ')} but changed ${changed.length > 0 ? changed.join(', ') : 'none'}; the database was left as it was`);
  }
}

const LEDGER_DDL = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INTEGER NOT NULL PRIMARY KEY,
  name       TEXT    NOT NULL,
  applied_at INTEGER NOT NULL,
  checksum   TEXT    NOT NULL
)`;

function readLedger(db: Database): LedgerRow[] | null {
  const exists = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).get();
  if (!exists) return null;
  return db.prepare(`SELECT version, name, checksum FROM schema_migrations ORDER BY version`).all() as LedgerRow[];
}

export function schemaState(db: Database, known: readonly Migration[]): SchemaState {
  return ledgerState(readLedger(db), known);
}

/**
 * Applies every pending migration, each in its own IMMEDIATE transaction (which also makes
 * concurrent migrators from several processes safe: the ledger is re-read under the lock).
 * Refuses a database that has a version this code does not know, and one whose applied
 * migration no longer matches its file (migrations are append-only).
 */
export function applyMigrations(db: Database, known: readonly Migration[], now: () => number = Date.now): string[] {
  try {
    db.exec(LEDGER_DDL);
    const applied: string[] = [];
    for (const m of known) {
      db.exec('BEGIN IMMEDIATE');
      try {
        const ledger = readLedger(db) ?? [];
        refuseTooNew(ledger, known);
        const done = ledger.find((r) => r.version === m.version);
        if (done) {
          if (done.checksum !== m.checksum) {
            throw new UpshiftError('STORE_CONFLICT', `migration ${m.name} was changed after it was applied (checksum mismatch); migrations are append-only`);
          }
          db.exec('COMMIT');
          continue;
        }
        const edits = schemaEditTargets(m.sql);
        if (edits === null) db.exec(m.sql);
        else editSchema(db, m, edits);
        db.prepare(`INSERT INTO schema_migrations (version, name, applied_at, checksum) VALUES (?, ?, ?, ?)`).run(
          m.version,
          m.name,
          now(),
          m.checksum,
        );
        db.exec('COMMIT');
        applied.push(m.name);
      } catch (e) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw e;
      }
    }
    // Also covers a ledger that is ahead while every known migration was already applied.
    refuseTooNew(readLedger(db) ?? [], known);
    return applied;
  } catch (e) {
    throw toStoreError(e);
  }
}
