import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UpshiftError } from '../../core/errors.js';

/**
 * What both store migrators share: the numbered .sql files of one dialect's migrations folder
 * and the checks of a ledger of applied versions against them. Reading and writing the ledger
 * stays with each adapter.
 */

/** One numbered plain-SQL migration file, e.g. `0001_init.sql` → version 1. */
export interface Migration {
  readonly version: number;
  /** The file name without `.sql`, e.g. `0001_init`. */
  readonly name: string;
  readonly sql: string;
  /** SHA-256 of the file as read (line endings normalised, PostgreSQL placeholders unreplaced). */
  readonly checksum: string;
}

export type SchemaState = 'current' | 'not_migrated' | 'too_new';

/** The store kinds with a migrations folder, src/adapters/store/<kind>/migrations. */
export type MigratedStore = 'sqlite' | 'postgres';

const LABEL: Readonly<Record<MigratedStore, string>> = { sqlite: 'SQLite', postgres: 'PostgreSQL' };

const FILE_RE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/**
 * The store's migrations folder: beside its adapter when running the .ts sources; from
 * dist/src/adapters/store/<kind>/ (tsc does not copy .sql) walk up to the package root and
 * use src/…/migrations.
 */
export function migrationsDir(store: MigratedStore): string {
  const here = join(fileURLToPath(new URL('.', import.meta.url)), store);
  const rel = join('src', 'adapters', 'store', store, 'migrations');
  const candidates = [join(here, 'migrations')];
  let dir = here;
  for (let i = 0; i < 8; i++) {
    candidates.push(join(dir, rel));
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new UpshiftError('INTERNAL', `${LABEL[store]} migrations folder not found (looked in ${candidates.join(', ')})`);
  return found;
}

/** Every migration file in `dir`, by version; `store` names the dialect in errors. */
export function loadMigrations(store: MigratedStore, dir: string = migrationsDir(store)): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    const m = FILE_RE.exec(file);
    if (!m) continue;
    const sql = readFileSync(join(dir, file), 'utf8').replace(/\r\n/g, '\n');
    const version = Number(m[1]);
    if (out.some((x) => x.version === version)) throw new UpshiftError('INTERNAL', `two ${LABEL[store]} migrations with version ${version}`);
    out.push({ version, name: file.slice(0, -4), sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  return out.sort((a, b) => a.version - b.version);
}

/** One applied migration as its ledger records it. */
export interface LedgerRow {
  version: number;
  name: string;
  checksum: string;
}

const tooNew = (ledger: readonly LedgerRow[], known: readonly Migration[]): LedgerRow | undefined =>
  ledger.find((row) => !known.some((m) => m.version === row.version));

/** Throws STORE_SCHEMA_TOO_NEW when the ledger has a version this code does not know. */
export function refuseTooNew(ledger: readonly LedgerRow[], known: readonly Migration[]): void {
  const unknown = tooNew(ledger, known);
  if (unknown) {
    throw new UpshiftError(
      'STORE_SCHEMA_TOO_NEW',
      `the database has migration ${unknown.name} (version ${unknown.version}) that this Upshift version does not know; upgrade Upshift`,
      { details: { version: unknown.version } },
    );
  }
}

/** The schema's state from its ledger (null: no ledger table yet). */
export function ledgerState(ledger: readonly LedgerRow[] | null, known: readonly Migration[]): SchemaState {
  if (ledger === null) return 'not_migrated';
  if (tooNew(ledger, known)) return 'too_new';
  return known.every((m) => ledger.some((r) => r.version === m.version)) ? 'current' : 'not_migrated';
}
