import { PermanentError } from '../../core/analyzer.js';
import { ColumnProfiler } from './columnProfiler.js';
import type { DatasetProfile } from './types.js';

/**
 * Memory is bounded per column, so the column count is what bounds the whole profile.
 * A CSV header wider than this fails the job; NDJSON keys first seen after the limit is
 * reached are ignored.
 */
export const MAX_COLUMNS = 1_000;

/** Row-level bookkeeping over a set of ColumnProfilers. */
export class DatasetProfiler {
  rows = 0;
  malformed = 0;
  private readonly columns: ColumnProfiler[] = [];
  private readonly byName = new Map<string, ColumnProfiler>();
  private readonly seenInRow = new Set<ColumnProfiler>();

  /** CSV: fixes the columns from the header record (names kept verbatim, duplicates too). */
  setHeader(names: readonly string[]): void {
    if (names.length > MAX_COLUMNS) {
      throw new PermanentError(`dataset has ${names.length} columns; at most ${MAX_COLUMNS} are supported`);
    }
    names.forEach((name, i) => this.columns.push(new ColumnProfiler(name, i + 1)));
  }

  get columnCount(): number {
    return this.columns.length;
  }

  /** CSV: a record whose length equals the header's. */
  addCells(cells: readonly string[]): void {
    const cols = this.columns;
    for (let i = 0; i < cols.length; i++) cols[i]?.addText(cells[i] ?? '');
    this.rows++;
  }

  /** NDJSON: one object; columns are the union of keys in first-seen order. */
  addObject(obj: Record<string, unknown>): void {
    const seen = this.seenInRow;
    seen.clear();
    for (const key of Object.keys(obj)) {
      let col = this.byName.get(key);
      if (col === undefined) {
        if (this.columns.length >= MAX_COLUMNS) continue;
        // Rows before this key first appeared count as nulls, so count + nulls = rows holds.
        col = new ColumnProfiler(key, this.columns.length + 1, this.rows);
        this.columns.push(col);
        this.byName.set(key, col);
      }
      col.addJson(obj[key]);
      seen.add(col);
    }
    if (seen.size !== this.columns.length) {
      for (const col of this.columns) if (!seen.has(col)) col.addNull();
    }
    this.rows++;
  }

  snapshot(): DatasetProfile {
    return {
      rows: this.rows,
      malformed_rows: this.malformed,
      columns: this.columns.map((c) => c.snapshot()),
    };
  }
}
