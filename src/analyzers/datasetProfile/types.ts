/**
 * Input and output shapes of the `dataset-profile` analyzer. Types are aliases (not
 * interfaces) so they stay assignable to `Json`.
 */

export type DatasetFormat = 'csv' | 'ndjson';

/** Exactly one of `data` (inline text) or `file` (absolute path of an uploaded file). */
export type DatasetProfileInput = {
  format: DatasetFormat;
  data?: string;
  file?: string;
  /** Rows per partial snapshot; default {@link DEFAULT_CHUNK_ROWS}. */
  chunk_rows?: number;
  /** CSV field delimiter; default `,`. Ignored for NDJSON. */
  delimiter?: string;
};

export const DEFAULT_CHUNK_ROWS = 10_000;

/** Inferred from non-null values; `empty` when a column has none. */
export type ColumnType = 'integer' | 'number' | 'boolean' | 'string' | 'date' | 'mixed' | 'empty';

export type TopValue = { value: number | boolean | string; count: number };

export type HistogramBin = { lower: number; upper: number; count: number };

export type Quantiles = { p25: number; p50: number; p75: number; p95: number };

export type ColumnProfile = {
  name: string;
  type: ColumnType;
  /** Non-null values. `count + nulls` equals the dataset's `rows`. */
  count: number;
  nulls: number;
  distinct: number;
  distinct_is_estimate: boolean;
  /** Numbers for numeric columns; lexicographic for strings; chronological for dates (original text). */
  min: number | string | null;
  max: number | string | null;
  mean: number | null;
  /** Population standard deviation. */
  stddev: number | null;
  quantiles: Quantiles | null;
  top: TopValue[];
  histogram: HistogramBin[] | null;
};

export type DatasetProfile = {
  rows: number;
  malformed_rows: number;
  columns: ColumnProfile[];
};
