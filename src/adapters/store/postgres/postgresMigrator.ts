import type pg from 'pg';
import { UpshiftError } from '../../../core/errors.js';
import { ledgerState, loadMigrations as loadStoreMigrations, migrationsDir as storeMigrationsDir, refuseTooNew, type LedgerRow, type Migration, type SchemaState } from '../storeMigrations.js';
import { ident, type PgNames } from './postgresConnection.js';
import { sqlState, toStoreError } from './postgresErrors.js';

export type { Migration, SchemaState } from '../storeMigrations.js';

export const migrationsDir = (): string => storeMigrationsDir('postgres');

export const loadMigrations = (dir: string = migrationsDir()): Migration[] => loadStoreMigrations('postgres', dir);

/** Replaces the placeholders with quoted identifiers (graphile-worker does the same). */
export function renderMigration(sql: string, names: PgNames): string {
  return sql
    .replace(/:UPSHIFT_SCHEMA\b/g, ident(names.schema))
    .replace(/:UPSHIFT_APP_ROLE\b/g, ident(names.appRole))
    .replace(/:UPSHIFT_INTERNAL_ROLE\b/g, ident(names.internalRole));
}

export const LEDGER_TABLE = 'upshift_migrations';

async function readLedger(c: pg.ClientBase, names: PgNames): Promise<LedgerRow[] | null> {
  const exists = await c.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [`${ident(names.schema)}.${LEDGER_TABLE}`]);
  if (exists.rows[0]?.t == null) return null;
  const r = await c.query<LedgerRow>(`SELECT version, name, checksum FROM ${ident(names.schema)}.${LEDGER_TABLE} ORDER BY version`);
  return r.rows;
}

export async function schemaState(c: pg.ClientBase, names: PgNames, known: readonly Migration[]): Promise<SchemaState> {
  return ledgerState(await readLedger(c, names), known);
}

/**
 * Roles are cluster-wide, so several schemas (and databases) share them: create each only if
 * missing, tolerate a concurrent creator, and make the connecting user a member so that
 * `SET LOCAL ROLE` works (a superuser needs no membership).
 */
async function ensureRoles(c: pg.ClientBase, names: PgNames): Promise<void> {
  for (const role of [names.appRole, names.internalRole]) {
    for (let tries = 0; ; tries++) {
      try {
        const exists = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
        if (exists.rowCount === 0) await c.query(`CREATE ROLE ${ident(role)} NOLOGIN NOINHERIT`);
        const member = await c.query<{ m: boolean }>(`SELECT pg_has_role(current_user, $1, 'MEMBER') AS m`, [role]);
        if (!member.rows[0]?.m) await c.query(`GRANT ${ident(role)} TO CURRENT_USER`);
        break;
      } catch (e) {
        // duplicate_object / unique_violation / "tuple concurrently updated": another migrator won.
        const s = sqlState(e);
        if (tries < 3 && (s === '42710' || s === '23505' || s === 'XX000')) continue;
        throw e;
      }
    }
  }
}

/**
 * Applies every pending migration, each in its own transaction, all under a session-level
 * advisory lock keyed by the schema, so any number of processes may call migrate() at once:
 * the first applies, the others wait and then find nothing to do. Refuses a database with a
 * version this code does not know (STORE_SCHEMA_TOO_NEW) and one whose applied migration no
 * longer matches its file (STORE_CONFLICT: migrations are append-only).
 */
export async function applyMigrations(pool: pg.Pool, names: PgNames, known: readonly Migration[], now: () => number = Date.now): Promise<string[]> {
  let c: pg.PoolClient;
  try {
    c = await pool.connect();
  } catch (e) {
    throw toStoreError(e);
  }
  const lockKey = `upshift.migrate.${names.schema}`;
  let broken = false;
  try {
    await c.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [lockKey]);
    try {
      await ensureRoles(c, names);
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${ident(names.schema)}`);
      await c.query(`CREATE TABLE IF NOT EXISTS ${ident(names.schema)}.${LEDGER_TABLE} (
        version    integer     NOT NULL PRIMARY KEY,
        name       text        NOT NULL,
        checksum   text        NOT NULL,
        applied_at bigint      NOT NULL
      )`);
      const applied: string[] = [];
      const ledger = (await readLedger(c, names)) ?? [];
      refuseTooNew(ledger, known);
      for (const m of known) {
        const done = ledger.find((r) => r.version === m.version);
        if (done) {
          if (done.checksum !== m.checksum) {
            throw new UpshiftError('STORE_CONFLICT', `migration ${m.name} was changed after it was applied (checksum mismatch); migrations are append-only`);
          }
          continue;
        }
        await c.query('BEGIN');
        try {
          await c.query(`SET LOCAL search_path TO ${ident(names.schema)}`);
          await c.query(renderMigration(m.sql, names));
          await c.query(`INSERT INTO ${ident(names.schema)}.${LEDGER_TABLE} (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)`, [
            m.version,
            m.name,
            m.checksum,
            now(),
          ]);
          await c.query('COMMIT');
        } catch (e) {
          await c.query('ROLLBACK').catch(() => undefined);
          throw e;
        }
        applied.push(m.name);
      }
      return applied;
    } finally {
      await c.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [lockKey]).catch(() => {
        broken = true;
      });
    }
  } catch (e) {
    broken = true;
    throw toStoreError(e);
  } finally {
    // A client whose unlock failed may still hold the session lock: never reuse it.
    c.release(broken);
  }
}
