import type { CopyRow, CopyTableName } from '../core/storeCopy.js';

/** Rows of several tables, read in one snapshot or written in one transaction. */
export type CopyBatch = Partial<Record<CopyTableName, readonly CopyRow[]>>;

/**
 * One side of `upshift copy-store`, read as store-neutral rows (src/core/storeCopy.ts). Both
 * the source (SQLite) and the target (PostgreSQL) implement it, so counts, diffs and checksums
 * are computed by the same code over the same canonical rows on both sides.
 */
export interface CopyReader {
  /**
   * Fails with STORE_NOT_MIGRATED when the schema is older than this code (or absent) and
   * STORE_SCHEMA_TOO_NEW when it is newer. Reads nothing else.
   */
  checkSchema(): Promise<void>;
  /** Every org that owns at least one row in any copy table, sorted. */
  listOrgs(): Promise<string[]>;
  /** Row counts per org and table (every org, one pass per table). */
  countRows(): Promise<Record<string, Partial<Record<CopyTableName, number>>>>;
  /**
   * Up to `limit` rows of a scan table of one org whose scan key is greater than `after`
   * (null: from the start), in this side's own key order (SQLite and PostgreSQL collations may
   * differ: a key from one side is never used to page the other). When `children` is given
   * (jobs only), the child rows of the returned jobs come with them, from the same snapshot.
   */
  scan(table: CopyTableName, org: string, after: string | null, limit: number, children?: readonly CopyTableName[]): Promise<CopyBatch>;
  /** The rows of a scan table of one org with these scan keys (missing ones absent), plus children as in scan. */
  read(table: CopyTableName, org: string, keys: readonly string[], children?: readonly CopyTableName[]): Promise<CopyBatch>;
  close(): Promise<void>;
}

/** A copy checkpoint: the last scan key of a table of an org whose rows are all in the target. */
export interface CopyCheckpoint {
  readonly org: string;
  readonly table: CopyTableName;
  readonly lastKey: string;
}

/** Writes of the copy into the target. Every write is idempotent: re-running converges. */
export interface CopyWriter extends CopyReader {
  /** Tables the target has (a table added by a newer migration may be missing). */
  tables(): Promise<ReadonlySet<CopyTableName>>;
  /** Checkpoints recorded for this source (by an earlier, possibly killed, run). */
  checkpoints(source: string): Promise<CopyCheckpoint[]>;
  /**
   * Writes `batch` for one org in ONE transaction, together with `checkpoint` when given, so
   * a kill leaves either both or neither. Mutable rows are upserted (the source's version
   * wins), immutable ones inserted unless present. Kept `job_events.position` values never
   * collide with later writes: the position sequence is moved past them in the same
   * transaction, under the store's position lock.
   */
  write(source: string, org: string, batch: CopyBatch, checkpoint?: CopyCheckpoint): Promise<void>;
  /**
   * Refreshes the planner statistics of the copy tables. A bulk load leaves them describing
   * empty tables, and the first queries after the cut-over (claims, listings) would plan badly.
   */
  analyze(): Promise<void>;
  /** Deletes rows of a deletable table by key (the catch-up removes rows gone in the source). */
  remove(org: string, table: CopyTableName, keys: readonly (readonly (string | number)[])[]): Promise<void>;
}
