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
        db.exec(m.sql);
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
