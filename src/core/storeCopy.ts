import { hash } from 'node:crypto';

/**
 * The store-neutral row model of `upshift copy-store` (SQLite → PostgreSQL), and the
 * canonical encoding both sides are checksummed with.
 *
 * Glossary:
 * - copy table: one table of the store, described by the same column list on both sides.
 * - scan table: read per tenant in primary-key order (jobs, api_keys, webhook_endpoints,
 *   removed_results); the copy checkpoints its last key.
 * - child table: read by job (job_events, job_results, notification_outbox, notifications),
 *   so a job and everything hanging off it are read in one snapshot and written in one
 *   transaction.
 * - cell kinds: `json` columns are JSON text in SQLite and jsonb in PostgreSQL (read back as
 *   text; SQL NULL stays null, JSON `null` stays the text "null"); `bool` is 0/1 in SQLite.
 *   Adapters turn their native values into these JS values, and back.
 */
export type CellKind = 'text' | 'int' | 'float' | 'json' | 'bool';

/** A cell: `json` cells hold the JSON TEXT as stored (never re-serialised, so big numbers survive). */
export type CellValue = string | number | boolean | null;
export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

/** One row as column → value, values already in the kinds of the table's spec. */
export type CopyRow = Readonly<Record<string, CellValue>>;

export interface CopyColumn {
  readonly name: string;
  readonly kind: CellKind;
}

export interface CopyTableSpec {
  readonly table: CopyTableName;
  readonly columns: readonly CopyColumn[];
  /** The unique key rows are matched by (diffs, upserts). */
  readonly key: readonly string[];
  /** Rows change after insert: upserts update them. Immutable rows are insert-or-nothing. */
  readonly mutable: boolean;
  /** 'scan': keyset-read per tenant by its single key column; 'child': read by job_id. */
  readonly access: 'scan' | 'child';
  /** Rows may disappear from the source (endpoint deletion cascades): the catch-up deletes them. */
  readonly deletable: boolean;
}

export type CopyTableName =
  | 'jobs'
  | 'job_events'
  | 'job_results'
  | 'removed_results'
  | 'api_keys'
  | 'webhook_endpoints'
  | 'notification_outbox'
  | 'notifications';

const cols = (spec: string): CopyColumn[] =>
  spec
    .trim()
    .split(/\s*,\s*/)
    .map((c) => {
      const [name, kind] = c.split(':') as [string, CellKind | undefined];
      return { name, kind: kind ?? 'text' };
    });

/**
 * Every table the copy moves, in copy order. Column lists are the union of both dialects'
 * migrations (they agree column for column); `job_events.position` is kept as is (see
 * docs/migrating-to-scale.md: SQLite positions are already a commit order).
 */
export const COPY_TABLES: readonly CopyTableSpec[] = [
  {
    table: 'api_keys',
    columns: cols('key_id, org_id, hash, label, created_at:int, revoked_at:int'),
    key: ['key_id'],
    mutable: true,
    access: 'scan',
    deletable: false,
  },
  {
    table: 'webhook_endpoints',
    columns: cols('endpoint_id, org_id, url, description, event_types:json, secret, enabled:bool, created_at:int, updated_at:int'),
    key: ['endpoint_id'],
    mutable: true,
    access: 'scan',
    deletable: true,
  },
  {
    table: 'jobs',
    columns: cols(`job_id, org_id, analyzer, input:json, status, attempt:int, max_attempts:int, priority:int, idempotency_key,
      request_hash, progress_fraction:float, progress_message, created_at:int, run_at:int, started_at:int, finished_at:int,
      cancel_requested_at:int, result_id, partial_count:int, error:json, trace_context, lease_token, lease_expires_at:int,
      worker_id, last_event_seq:int`),
    key: ['org_id', 'job_id'],
    mutable: true,
    access: 'scan',
    deletable: false,
  },
  {
    table: 'job_events',
    columns: cols('position:int, job_id, event_seq:int, org_id, type, status, payload:json, occurred_at:int'),
    key: ['job_id', 'event_seq'],
    mutable: false,
    access: 'child',
    deletable: false,
  },
  {
    table: 'job_results',
    columns: cols('result_id, job_id, org_id, kind, chunk_key, seq:int, payload:json, created_at:int'),
    key: ['result_id'],
    mutable: false,
    access: 'child',
    deletable: false,
  },
  {
    table: 'notification_outbox',
    columns: cols(`entry_id, org_id, job_id, type, channel, kind, endpoint_id, payload:json, occurred_at:int, status,
      attempts:int, next_attempt_at:int, lease_token, first_attempt_at:int, last_attempt_at:int, last_status_code:int,
      last_error, created_at:int, updated_at:int, delivered_at:int`),
    key: ['entry_id'],
    mutable: true,
    access: 'child',
    deletable: true,
  },
  {
    table: 'notifications',
    columns: cols('notification_id, org_id, job_id, type, channel, payload:json, created_at:int, read_at:int'),
    key: ['notification_id'],
    mutable: true,
    access: 'child',
    deletable: true,
  },
  {
    table: 'removed_results',
    columns: cols('result_id, job_id, org_id, removed_at:int'),
    key: ['result_id'],
    mutable: false,
    access: 'scan',
    deletable: false,
  },
];

export const copyTable = (name: CopyTableName): CopyTableSpec => {
  const t = COPY_TABLES.find((s) => s.table === name);
  if (!t) throw new Error(`unknown copy table ${name}`);
  return t;
};

/** The column a scan table is keyset-paged by within one tenant. */
export const scanKey = (t: CopyTableSpec): string => t.key[t.key.length - 1] as string;

/** JSON with object keys sorted: jsonb reorders keys, so only a sorted form compares equal. */
export function canonicalJson(v: JsonValue): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k] as JsonValue)}`).join(',')}}`;
}

/**
 * The canonical encoding of a row: the table name and every column in spec order. JSON cells
 * are re-encoded with sorted keys and JavaScript number formatting, because jsonb reorders
 * keys, drops whitespace and reformats numbers while SQLite keeps the text as written.
 */
export function canonicalRow(t: CopyTableSpec, row: CopyRow): string {
  const parts = t.columns.map((c) => {
    const v = row[c.name] ?? null;
    // `J` marks a JSON value (self-delimiting), so JSON `null` never encodes like SQL NULL.
    if (c.kind === 'json' && typeof v === 'string') return `J${canonicalJson(JSON.parse(v) as JsonValue)}`;
    return JSON.stringify(v);
  });
  return `${t.table}[${parts.join(',')}]`;
}

/** Identity of a row within its table (its key values), for diffs. */
export const rowKey = (t: CopyTableSpec, row: CopyRow): string => JSON.stringify(t.key.map((k) => row[k] ?? null));

const MOD = 1n << 128n;

/**
 * Order-independent checksum of a multiset of rows: the sum (mod 2^128) of the first 128 bits
 * of SHA-256 of each canonical row. A sum, not an XOR, so duplicated rows do not cancel out.
 */
export class RowChecksum {
  private sum = 0n;
  private n = 0;

  add(t: CopyTableSpec, row: CopyRow): void {
    const h = hash('sha256', canonicalRow(t, row), 'buffer');
    this.sum = (this.sum + h.readBigUInt64BE(0) * (1n << 64n) + h.readBigUInt64BE(8)) % MOD;
    this.n++;
  }

  get count(): number {
    return this.n;
  }

  get hex(): string {
    return this.sum.toString(16).padStart(32, '0');
  }
}

/** Per-tenant, per-table numbers (counts, checksums) of one side. */
export interface TableTally {
  readonly table: CopyTableName;
  readonly rows: number;
  readonly checksum: string;
}
