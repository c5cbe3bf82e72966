import type { CellValue, CopyRow, CopyTableSpec } from '../../../core/storeCopy.js';
import { ident } from './postgresConnection.js';

/** The column type (format_type) of a copy table's column in the target, e.g. `jsonb`, `bigint`. */
export type TypeOf = (t: CopyTableSpec, col: string) => string;

/** The SELECT list of a copy table: JSON columns as text, so SQL NULL and JSON null stay apart. */
export const selectList = (t: CopyTableSpec): string =>
  t.columns.map((c) => (c.kind === 'json' ? `${ident(c.name)}::text AS ${ident(c.name)}` : ident(c.name))).join(', ');

/**
 * One multi-row upsert per table and page: the rows travel as one JSON array decoded by
 * jsonb_to_recordset into the target's column types. JSON cells travel as text and are cast to
 * the column type (jsonb keeps big numbers exact). Mutable tables take the source's version of
 * a row already there; append-only ones keep theirs (DO NOTHING also covers a second unique key,
 * e.g. job_events (job_id, event_seq)).
 */
export function upsertSql(schema: string, t: CopyTableSpec, typeOf: TypeOf): string {
  const colList = t.columns.map((c) => ident(c.name)).join(', ');
  const recordType = t.columns.map((c) => `${ident(c.name)} ${c.kind === 'json' ? 'text' : typeOf(t, c.name)}`).join(', ');
  const values = t.columns.map((c) => (c.kind === 'json' ? `r.${ident(c.name)}::${typeOf(t, c.name)}` : `r.${ident(c.name)}`)).join(', ');
  const conflict = t.mutable
    ? `ON CONFLICT (${t.key.map(ident).join(', ')}) DO UPDATE SET ${t.columns
        .filter((c) => !t.key.includes(c.name))
        .map((c) => `${ident(c.name)} = EXCLUDED.${ident(c.name)}`)
        .join(', ')}`
    : 'ON CONFLICT DO NOTHING';
  return `INSERT INTO ${schema}.${t.table} (${colList}) SELECT ${values} FROM jsonb_to_recordset($1::jsonb) AS r(${recordType}) ${conflict}`;
}

/** The store-neutral cell → the JSON the recordset decodes into the column's type. */
export function toPg(t: CopyTableSpec, row: CopyRow, typeOf: TypeOf): Record<string, CellValue> {
  const out: Record<string, CellValue> = {};
  for (const c of t.columns) {
    const v = row[c.name] ?? null;
    out[c.name] = c.kind === 'bool' && v !== null && typeOf(t, c.name) !== 'boolean' ? (v ? 1 : 0) : v;
  }
  return out;
}

/** A PostgreSQL row → the store-neutral kinds (booleans stored as integers read back as booleans). */
export function fromPg(t: CopyTableSpec, row: Record<string, unknown>, typeOf: TypeOf): CopyRow {
  const out: Record<string, CellValue> = {};
  for (const c of t.columns) {
    const v = row[c.name];
    if (v === null || v === undefined) out[c.name] = null;
    else if (c.kind === 'bool') out[c.name] = typeOf(t, c.name) === 'boolean' ? (v as boolean) : v === 1;
    else out[c.name] = v as string | number;
  }
  return out;
}
