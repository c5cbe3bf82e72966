import { COPY_TABLES, canonicalRow, copyTable, rowKey, scanKey, type CopyRow, type CopyTableName, type CopyTableSpec } from '../core/storeCopy.js';
import type { CopyBatch } from '../ports/storeCopy.js';

/** Scan tables in copy order; jobs carry their child tables. */
export const SCAN_TABLES: readonly CopyTableSpec[] = COPY_TABLES.filter((t) => t.access === 'scan');
export const CHILD_TABLES: readonly CopyTableName[] = COPY_TABLES.filter((t) => t.access === 'child').map((t) => t.table);

/** Rows per table and org: what a run copied, or (dry run) would copy. */
export type RowCounts = Partial<Record<CopyTableName, number>>;

export interface CopyProgress {
  readonly phase: 'copy' | 'catch-up' | 'plan' | 'verify';
  readonly org: string;
  readonly table: CopyTableName;
  /** Rows examined so far in this phase (all orgs). */
  readonly done: number;
  /** Rows in the source (all orgs, all tables): the progress bar's end. */
  readonly total: number;
}

export const rowsIn = (batch: CopyBatch): number => Object.values(batch).reduce((n, rows) => n + (rows?.length ?? 0), 0);

export function addCounts(into: RowCounts, batch: CopyBatch): void {
  for (const [table, rows] of Object.entries(batch) as [CopyTableName, readonly CopyRow[] | undefined][]) {
    if (rows && rows.length > 0) into[table] = (into[table] ?? 0) + rows.length;
  }
}

/** Source rows that are missing in the target or differ from it (by key, then canonical encoding). */
export function differing(t: CopyTableSpec, source: readonly CopyRow[], target: readonly CopyRow[]): CopyRow[] {
  const have = new Map<string, string>();
  for (const r of target) have.set(rowKey(t, r), canonicalRow(t, r));
  return source.filter((r) => have.get(rowKey(t, r)) !== canonicalRow(t, r));
}

/** Key tuples of target rows that the source no longer has (deletable tables only). */
export function extra(t: CopyTableSpec, source: readonly CopyRow[], target: readonly CopyRow[]): (string | number)[][] {
  const keep = new Set(source.map((r) => rowKey(t, r)));
  return target.filter((r) => !keep.has(rowKey(t, r))).map((r) => t.key.map((k) => r[k] as string | number));
}

export const keysOf = (t: CopyTableSpec, rows: readonly CopyRow[]): string[] => rows.map((r) => r[scanKey(t)] as string);

export const spec = copyTable;

/**
 * A simple rate limiter: after `n` more rows, waits until the run's average is back at or
 * under `perSecond` (0 = unlimited). Average over the run, so short bursts inside one batch
 * are allowed but the sustained read/write rate on both stores is bounded.
 */
export class RowRateLimiter {
  private rows = 0;
  private readonly start: number;

  constructor(
    private readonly perSecond: number,
    private readonly now: () => number,
    private readonly sleep: (ms: number) => Promise<void>,
  ) {
    this.start = now();
  }

  async take(n: number): Promise<void> {
    this.rows += n;
    if (this.perSecond <= 0) return;
    const due = this.start + (this.rows / this.perSecond) * 1000;
    const wait = due - this.now();
    if (wait > 1) await this.sleep(wait);
  }
}

/**
 * Lets queued I/O callbacks run. The SQLite source reads synchronously, so without this a loop
 * of source reads would never let the target's replies (or the other side's walk) in.
 */
export const yieldToIo = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
