import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database } from 'better-sqlite3';
import { UpshiftError } from '../../../core/errors.js';
import { toStoreError } from './sqliteErrors.js';

/** One numbered plain-SQL migration file, e.g. `0001_init.sql` → version 1. */
export interface Migration {
  readonly version: number;
  /** The file name without `.sql`, e.g. `0001_init`. */
  readonly name: string;
  readonly sql: string;
  /** SHA-256 of the file with normalised line endings. */
  readonly checksum: string;
}

export type SchemaState = 'current' | 'not_migrated' | 'too_new';

const FILE_RE = /^(\d{4})_([a-z0-9_]+)\.sql$/;
const REL = join('src', 'adapters', 'store', 'sqlite', 'migrations');

/**
 * The migrations folder. `tsc` does not copy .sql files, so when running from
 * dist/src/adapters/store/sqlite/ we walk up to the package root and use src/…/migrations;
 * when vitest runs the .ts sources the folder sits right beside this file.
 */
export function migrationsDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const candidates = [join(here, 'migrations')];
  let dir = here;
  for (let i = 0; i < 8; i++) {
    candidates.push(join(dir, REL));
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new UpshiftError('INTERNAL', `SQLite migrations folder not found (looked in ${candidates.join(', ')})`);
  return found;
}

export function loadMigrations(dir: string = migrationsDir()): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    const m = FILE_RE.exec(file);
    if (!m) continue;
    const sql = readFileSync(join(dir, file), 'utf8').replace(/\r\n/g, '\n');
    const version = Number(m[1]);
    if (out.some((x) => x.version === version)) throw new UpshiftError('INTERNAL', `two SQLite migrations with version ${version}`);
    out.push({ version, name: file.slice(0, -4), sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  return out.sort((a, b) => a.version - b.version);
}

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

interface LedgerRow {
  version: number;
  name: string;
  checksum: string;
}

function readLedger(db: Database): LedgerRow[] | null {
  const exists = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).get();
  if (!exists) return null;
  return db.prepare(`SELECT version, name, checksum FROM schema_migrations ORDER BY version`).all() as LedgerRow[];
}

function tooNew(ledger: readonly LedgerRow[], known: readonly Migration[]): LedgerRow | undefined {
  return ledger.find((row) => !known.some((m) => m.version === row.version));
}

export function schemaState(db: Database, known: readonly Migration[]): SchemaState {
  const ledger = readLedger(db);
  if (ledger === null) return 'not_migrated';
  if (tooNew(ledger, known)) return 'too_new';
  return known.every((m) => ledger.some((r) => r.version === m.version)) ? 'current' : 'not_migrated';
}

function refuseTooNew(ledger: readonly LedgerRow[], known: readonly Migration[]): void {
  const unknown = tooNew(ledger, known);
  if (unknown) {
    throw new UpshiftError(
      'STORE_SCHEMA_TOO_NEW',
      `the database has migration ${unknown.name} (version ${unknown.version}) that this Upshift version does not know; upgrade Upshift`,
      { details: { version: unknown.version } },
    );
  }
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
