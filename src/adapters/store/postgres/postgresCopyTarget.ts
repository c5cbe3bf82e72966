import type pg from 'pg';
import { UpshiftError } from '../../../core/errors.js';
import { COPY_TABLES, copyTable, scanKey, type CopyRow, type CopyTableName, type CopyTableSpec } from '../../../core/storeCopy.js';
import type { CopyBatch, CopyWriter } from '../../../ports/storeCopy.js';
import { createClient, ident, resolveNames } from './postgresConnection.js';
import { fromPg, selectList, toPg, upsertSql } from './postgresCopyRows.js';
import { toStoreError } from './postgresErrors.js';
import { loadMigrations, schemaState } from './postgresMigrator.js';

export interface PostgresCopyTargetOptions {
  readonly url: string;
  /** The store's schema (default `upshift`), migrated by `upshift migrate` beforehand. */
  readonly schema?: string;
  readonly appRole?: string;
  readonly internalRole?: string;
}

/** Created by copy-store itself (not a migration): operational state of a move, not store data. */
export const CHECKPOINT_TABLE = 'copy_store_checkpoints';

/**
 * The target side of `upshift copy-store`: a migrated PostgreSQL store schema, written as the
 * schema's owner (the login user). Owner writes are still bound by the forced tenant policy,
 * so every tenant transaction sets `upshift.org_id`; cross-tenant reads (org list, counts) run
 * as the internal role. One connection: the copy is sequential by design (rate-limited,
 * checkpointed), and one connection keeps its load on the target predictable.
 */
export function createPostgresCopyTarget(opts: PostgresCopyTargetOptions): CopyWriter {
  const names = resolveNames(opts);
  const s = ident(names.schema);
  // Pipeline mode: a transaction's statements leave together (BEGIN, tenant binding, the
  // inserts) and come back in one round trip, so the next source page is read meanwhile.
  const client = createClient(opts.url, 'upshift-copy-store', { pipeline: true });
  // A dying connection emits 'error' on the client; unheard, that event kills the process. The
  // failure reaches the copy through the rejected query instead (STORE_UNAVAILABLE: run again).
  client.on('error', () => undefined);
  let connected: Promise<void> | null = null;
  let types: Map<CopyTableName, Map<string, string>> | null = null;
  let sequence: string | null = null;
  /** Copy tables the internal role may SELECT (cross-tenant reads run as it). */
  const internalReadable = new Set<CopyTableName>();

  const conn = async (): Promise<pg.Client> => {
    connected ??= client.connect().then(() => undefined);
    try {
      await connected;
    } catch (e) {
      throw toStoreError(e);
    }
    return client;
  };
  /** Runs `body` in one transaction, bound to `org` (tenant policy) or as the internal role. */
  const tx = async <T>(org: string | null, body: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = await conn();
    let first: unknown;
    const fire = (text: string, values?: unknown[]): void => {
      c.query(text, values).catch((e: unknown) => {
        first ??= e;
      });
    };
    try {
      fire('BEGIN');
      if (org === null) fire(`SET LOCAL ROLE ${ident(names.internalRole)}`);
      else fire(`SELECT set_config('upshift.org_id', $1, true)`, [org]);
      const out = await body(c);
      const done = await c.query('COMMIT');
      // A failed statement nobody awaited turns COMMIT into ROLLBACK: report the statement's error.
      if (first !== undefined || done.command !== 'COMMIT') throw first ?? new UpshiftError('STORE_UNAVAILABLE', 'the copy transaction was rolled back');
      return out;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw toStoreError(first ?? e);
    }
  };
  /** Column types of the copy tables the target has (format_type, e.g. `jsonb`, `bigint`). */
  const columnTypes = async (): Promise<Map<CopyTableName, Map<string, string>>> => {
    if (types) return types;
    const c = await conn();
    const r = await c.query<{ t: CopyTableName; col: string; ty: string }>(
      `SELECT c.relname AS t, a.attname AS col, format_type(a.atttypid, a.atttypmod) AS ty
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        WHERE c.relnamespace = to_regnamespace($1) AND c.relkind IN ('r', 'p') AND c.relname = ANY($2) AND a.attnum > 0 AND NOT a.attisdropped`,
      [names.schema, COPY_TABLES.map((t) => t.table)],
    );
    const out = new Map<CopyTableName, Map<string, string>>();
    for (const row of r.rows) {
      let m = out.get(row.t);
      if (!m) out.set(row.t, (m = new Map()));
      m.set(row.col, row.ty);
    }
    for (const [table, m] of out) {
      const missing = copyTable(table).columns.filter((col) => !m.has(col.name));
      if (missing.length > 0) throw new UpshiftError('STORE_NOT_MIGRATED', `target table ${names.schema}.${table} lacks columns ${missing.map((m2) => m2.name).join(', ')}`);
    }
    const readable = await c.query<{ t: CopyTableName }>(
      `SELECT t FROM unnest($1::text[]) AS t WHERE has_table_privilege($2, format('%I.%I', $3::text, t), 'SELECT')`,
      [[...out.keys()], names.internalRole, names.schema],
    );
    for (const row of readable.rows) internalReadable.add(row.t);
    types = out;
    return out;
  };
  const typeOf = (t: CopyTableSpec, col: string): string => types?.get(t.table)?.get(col) ?? 'text';
  const present = async (): Promise<CopyTableSpec[]> => {
    const m = await columnTypes();
    return COPY_TABLES.filter((t) => m.has(t.table));
  };

  const childRows = async (c: pg.Client, org: string, jobIds: readonly string[], children: readonly CopyTableName[], out: Record<string, CopyRow[]>): Promise<void> => {
    const have = await columnTypes();
    // Queued together (pipeline): one round trip for every child table.
    await Promise.all(
      children.map(async (name) => {
        const t = copyTable(name);
        if (!have.has(name) || jobIds.length === 0) {
          out[name] = [];
          return;
        }
        const r = await c.query(`SELECT ${selectList(t)} FROM ${s}.${name} WHERE org_id = $1 AND job_id = ANY($2)`, [org, jobIds]);
        out[name] = r.rows.map((row: Record<string, unknown>) => fromPg(t, row, typeOf));
      }),
    );
  };
  const keyed = async (table: CopyTableName, org: string, where: string, params: unknown[], children: readonly CopyTableName[]): Promise<CopyBatch> => {
    const t = copyTable(table);
    if (!(await columnTypes()).has(table)) return { [table]: [] };
    return tx(org, async (c) => {
      const r = await c.query(`SELECT ${selectList(t)} FROM ${s}.${table} WHERE org_id = $1 AND ${where}`, [org, ...params]);
      const out: Record<string, CopyRow[]> = { [table]: r.rows.map((row: Record<string, unknown>) => fromPg(t, row, typeOf)) };
      await childRows(
        c,
        org,
        (out[table] ?? []).map((row) => row[scanKey(t)] as string),
        children,
        out,
      );
      return out as CopyBatch;
    });
  };


  return {
    async checkSchema() {
      const c = await conn();
      let state;
      try {
        state = await schemaState(c, names, loadMigrations());
      } catch (e) {
        throw toStoreError(e);
      }
      if (state === 'too_new') throw new UpshiftError('STORE_SCHEMA_TOO_NEW', `the PostgreSQL schema ${names.schema} was migrated by a newer Upshift than this one; upgrade Upshift`);
      if (state === 'not_migrated') {
        throw new UpshiftError('STORE_NOT_MIGRATED', `the PostgreSQL schema ${names.schema} is not migrated to this version; run \`upshift migrate --database <the same url>\` first`);
      }
      await columnTypes();
    },

    async tables() {
      return new Set((await present()).map((t) => t.table));
    },

    async listOrgs() {
      // Every org owns a job, an API key, an endpoint or a tombstone: the tables the internal role reads.
      const tables = (await present()).filter((t) => internalReadable.has(t.table));
      return tx(null, async (c) => {
        const r = await c.query<{ org_id: string }>(tables.map((t) => `SELECT DISTINCT org_id FROM ${s}.${t.table}`).join(' UNION '));
        return r.rows.map((row) => row.org_id).sort();
      });
    },

    async countRows() {
      const tables = await present();
      const out: Record<string, Partial<Record<CopyTableName, number>>> = {};
      await tx(null, async (c) => {
        for (const t of tables.filter((x) => internalReadable.has(x.table))) {
          const r = await c.query<{ org_id: string; n: number }>(`SELECT org_id, count(*)::int AS n FROM ${s}.${t.table} GROUP BY org_id`);
          for (const row of r.rows) (out[row.org_id] ??= {})[t.table] = row.n;
        }
      });
      // Tables the internal role may not read (least privilege): counted per org, bound to it.
      const others = tables.filter((x) => !internalReadable.has(x.table));
      if (others.length > 0) {
        for (const org of await this.listOrgs()) {
          await tx(org, async (c) => {
            for (const t of others) {
              const r = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${s}.${t.table} WHERE org_id = $1`, [org]);
              const n = r.rows[0]?.n ?? 0;
              if (n > 0) (out[org] ??= {})[t.table] = n;
            }
          });
        }
      }
      return out;
    },

    scan(table, org, after, limit, children = []) {
      const key = ident(scanKey(copyTable(table)));
      return keyed(table, org, `${key} > $2 ORDER BY ${key} LIMIT $3`, [after ?? '', limit], children);
    },

    read(table, org, keys, children = []) {
      return keyed(table, org, `${ident(scanKey(copyTable(table)))} = ANY($2)`, [keys], children);
    },

    async checkpoints(source) {
      await ensureCheckpointTable();
      const c = await conn();
      const r = await c.query<{ org_id: string; table_name: CopyTableName; last_key: string }>(
        `SELECT org_id, table_name, last_key FROM ${s}.${CHECKPOINT_TABLE} WHERE source = $1`,
        [source],
      );
      return r.rows.map((row) => ({ org: row.org_id, table: row.table_name, lastKey: row.last_key }));
    },

    async write(source, org, batch, checkpoint) {
      await columnTypes();
      const events = batch.job_events ?? [];
      const seq = events.length > 0 ? await positionSequence() : null;
      for (const t of COPY_TABLES) {
        if ((batch[t.table]?.length ?? 0) > 0 && !types?.has(t.table)) {
          throw new UpshiftError('STORE_NOT_MIGRATED', `the target has no table ${names.schema}.${t.table}; migrate it with this Upshift version`);
        }
      }
      await tx(org, async (c) => {
        // Every statement is queued at once (pipeline); awaiting them all costs one round trip.
        const sent: Promise<unknown>[] = [];
        if (seq !== null) {
          // Positions are kept from the source: take the store's position lock, as its writers do.
          sent.push(c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`upshift.positions.${names.schema}`]));
        }
        for (const t of COPY_TABLES) {
          const rows = batch[t.table];
          if (!rows || rows.length === 0) continue;
          sent.push(c.query(upsertSql(s, t, typeOf), [JSON.stringify(rows.map((row) => toPg(t, row, typeOf)))]));
        }
        if (seq !== null) {
          const max = events.reduce((m, e) => Math.max(m, e.position as number), 0);
          // Later writers draw positions above every copied one (setval is not rolled back: a gap at worst).
          sent.push(c.query(`SELECT setval($1::regclass, GREATEST($2::bigint, (SELECT last_value FROM ${seq})))`, [seq, max]));
        }
        if (checkpoint) {
          sent.push(
            c.query(
              `INSERT INTO ${s}.${CHECKPOINT_TABLE} (source, org_id, table_name, last_key, updated_at) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (source, org_id, table_name) DO UPDATE SET last_key = EXCLUDED.last_key, updated_at = EXCLUDED.updated_at`,
              [source, checkpoint.org, checkpoint.table, checkpoint.lastKey, Date.now()],
            ),
          );
        }
        const settled = await Promise.allSettled(sent);
        const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      });
    },

    async analyze() {
      const c = await conn();
      for (const t of await present()) {
        try {
          await c.query(`ANALYZE ${s}.${t.table}`);
        } catch (e) {
          throw toStoreError(e);
        }
      }
    },

    async remove(org, table, keys) {
      if (keys.length === 0) return;
      const t = copyTable(table);
      if (!t.deletable) throw new UpshiftError('INTERNAL', `copy-store never deletes from ${table}`);
      const cond = t.key.map((k, i) => `${ident(k)}::text = (k->>${i})`).join(' AND ');
      await tx(org, (c) => c.query(`DELETE FROM ${s}.${table} t WHERE EXISTS (SELECT 1 FROM jsonb_array_elements($1::jsonb) k WHERE ${cond})`, [JSON.stringify(keys)]));
    },

    async close() {
      if (connected) await client.end().catch(() => undefined);
    },
  };

  async function ensureCheckpointTable(): Promise<void> {
    const c = await conn();
    try {
      await c.query(`CREATE TABLE IF NOT EXISTS ${s}.${CHECKPOINT_TABLE} (
        source     text   NOT NULL,
        org_id     text   NOT NULL,
        table_name text   NOT NULL,
        last_key   text   NOT NULL,
        updated_at bigint NOT NULL,
        PRIMARY KEY (source, org_id, table_name)
      )`);
    } catch (e) {
      throw toStoreError(e);
    }
  }

  async function positionSequence(): Promise<string> {
    if (sequence) return sequence;
    const c = await conn();
    const r = await c.query<{ seq: string | null }>(`SELECT pg_get_serial_sequence($1, 'position') AS seq`, [`${s}.job_events`]);
    const seq = r.rows[0]?.seq;
    if (!seq) throw new UpshiftError('STORE_NOT_MIGRATED', `${names.schema}.job_events.position has no identity sequence`);
    sequence = seq;
    return seq;
  }
}
