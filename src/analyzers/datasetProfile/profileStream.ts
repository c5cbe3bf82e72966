import type { Readable } from 'node:stream';
import { parse, type Parser } from 'csv-parse';
import { PermanentError } from '../../core/analyzer.js';
import { DatasetProfiler } from './datasetProfiler.js';
import { LINE_TOO_LONG, splitLines } from './ndjsonLines.js';
import { DEFAULT_CHUNK_ROWS, type DatasetFormat, type DatasetProfile } from './types.js';

/**
 * Longest CSV field / NDJSON line accepted (≈ for CSV: measured on bytes fed to the parser). Bounds memory for the
 * one CSV defect a streaming parser cannot recover from locally: an unclosed quote, which
 * turns the rest of the file into one field. Such a file fails permanently; an over-long
 * NDJSON line is skipped and counted as malformed.
 */
export const MAX_RECORD_BYTES = 8 * 1024 * 1024;

export interface ProfileOptions {
  readonly format: DatasetFormat;
  /** CSV field delimiter; default `,`. */
  readonly delimiter?: string;
  readonly chunkRows?: number;
  /** Size of the source in bytes, for progress; omit when unknown. */
  readonly totalBytes?: number | null;
  readonly signal?: AbortSignal;
}

export interface ProfileHooks {
  /**
   * Receives a cumulative snapshot after every `chunkRows` good rows, keyed `rows-<rows>`.
   * Awaited before reading on, so a slow consumer applies backpressure to the file read.
   */
  partial?(chunkKey: string, snapshot: DatasetProfile): Promise<void> | void;
  /** bytes read / total bytes, reported in steps of at least 1 %. */
  progress?(fraction: number): void;
}

/**
 * Profiles a CSV or NDJSON byte stream in one pass with memory bounded independently of
 * its length. Rejects with `signal.reason` when the signal aborts.
 */
export async function profileStream(source: Readable, opts: ProfileOptions, hooks: ProfileHooks = {}): Promise<DatasetProfile> {
  const { signal } = opts;
  if (signal?.aborted === true) {
    source.destroy();
    throw signal.reason;
  }
  const chunkRows = opts.chunkRows ?? DEFAULT_CHUNK_ROWS;
  const profiler = new DatasetProfiler();
  const meter = progressMeter(opts.totalBytes ?? null, hooks.progress);
  const afterRow = async (): Promise<void> => {
    if (profiler.rows % chunkRows !== 0 || hooks.partial === undefined) return;
    await hooks.partial(`rows-${profiler.rows}`, profiler.snapshot());
    signal?.throwIfAborted();
  };
  // Destroying the stream being read wakes a pending read, so cancel is prompt even while
  // waiting on slow I/O; the loops also check the signal after every partial.
  let consumed: Readable = source;
  const onAbort = (): void => {
    consumed.destroy(signal?.reason as Error);
    source.destroy();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (opts.format === 'csv') {
      const parser = csvParser(source, opts.delimiter ?? ',', meter, profiler);
      consumed = parser.stream;
      await readCsv(parser, profiler, afterRow);
    } else {
      await readNdjson(countBytes(source, meter), profiler, afterRow);
    }
  } catch (e: unknown) {
    // The destroyed stream may reject with a generic error: report why we stopped instead.
    if (isAborted(signal)) throw signal?.reason;
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    source.destroy();
  }
  signal?.throwIfAborted();
  meter.finish();
  return profiler.snapshot();
}

interface CsvParser {
  readonly stream: Parser;
  /**
   * Bad records, as runs of `count` records skipped after the parser had produced `after`
   * good ones. Run-length encoded so a file of nothing but bad records stays O(1) here.
   */
  readonly badRuns: Array<{ readonly after: number; count: number }>;
}

function csvParser(source: Readable, delimiter: string, meter: Meter, profiler: DatasetProfiler): CsvParser {
  const badRuns: CsvParser['badRuns'] = [];
  let lastBadRecord: unknown = null;
  let bytesFed = 0;
  const stream: Parser = parse({
    delimiter,
    bom: true,
    relax_column_count: true, // ragged rows reach us and are counted below
    relax_quotes: false,
    skip_empty_lines: true,
    // Quote errors skip the record instead of failing the stream. csv-parse reports every
    // error, and a record can have several (`5"6"7`): the record being parsed is a fresh
    // array per record, so its identity tells us whether this record was already counted.
    // (No `on_record` hook: csv-parse builds an info object per record for it, which
    // doubled the parse cost.)
    skip_records_with_error: true,
    on_skip: () => {
      const current = (stream as unknown as { state?: { record?: unknown } }).state?.record;
      if (current !== undefined && current === lastBadRecord) return undefined;
      lastBadRecord = current;
      const after = stream.info.records;
      const last = badRuns[badRuns.length - 1];
      if (last !== undefined && last.after === after) last.count++;
      else badRuns.push({ after, count: 1 });
      return undefined;
    },
  });
  source.on('data', (chunk: Buffer | string) => {
    const n = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    meter.add(n);
    bytesFed += n;
    // `info.bytes` is the offset of the last field/record delimiter the parser consumed, so
    // this difference is the field being accumulated (plus at most a few buffered chunks).
    if (bytesFed - stream.info.bytes > MAX_RECORD_BYTES) {
      stream.destroy(
        new PermanentError(
          `a CSV field exceeds ${MAX_RECORD_BYTES} bytes after ${profiler.rows} rows (unclosed quote?)`,
          'ANALYZER_FAILED',
        ),
      );
    }
  });
  source.on('error', (e: Error) => stream.destroy(e));
  source.pipe(stream);
  return { stream, badRuns };
}

async function readCsv(parser: CsvParser, profiler: DatasetProfiler, afterRow: () => Promise<void>): Promise<void> {
  const runs = parser.badRuns;
  // Bad records are counted when the reader reaches their position in the stream (the
  // parser runs ahead of us), so a partial's `malformed_rows` is exact for its prefix.
  const countBadUpTo = (goodRecords: number): void => {
    let n = 0;
    while (n < runs.length && (runs[n]?.after ?? Infinity) <= goodRecords) {
      profiler.malformed += runs[n]?.count ?? 0;
      n++;
    }
    if (n > 0) runs.splice(0, n);
  };
  let goodRecords = 0;
  let width = -1;
  for await (const record of parser.stream as AsyncIterable<string[]>) {
    countBadUpTo(goodRecords);
    goodRecords++;
    if (width < 0) {
      profiler.setHeader(record);
      width = record.length;
    } else if (record.length !== width) {
      profiler.malformed++;
    } else {
      profiler.addCells(record);
      await afterRow();
    }
  }
  countBadUpTo(Infinity);
}

async function readNdjson(
  source: AsyncIterable<Buffer>,
  profiler: DatasetProfiler,
  afterRow: () => Promise<void>,
): Promise<void> {
  let first = true;
  for await (const line of splitLines(source, MAX_RECORD_BYTES)) {
    if (line === LINE_TOO_LONG) {
      profiler.malformed++;
      continue;
    }
    let text = line;
    if (first) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (BLANK_RE.test(text)) continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      profiler.malformed++;
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      profiler.malformed++;
      continue;
    }
    profiler.addObject(value as Record<string, unknown>);
    await afterRow();
  }
}

const BLANK_RE = /^\s*$/;

/** A function, not an inline check: TS would keep `aborted` narrowed from before the awaits. */
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

async function* countBytes(source: Readable, meter: Meter): AsyncGenerator<Buffer> {
  for await (const chunk of source as AsyncIterable<Buffer | string>) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    meter.add(buf.length);
    yield buf;
  }
}

interface Meter {
  add(bytes: number): void;
  finish(): void;
}

function progressMeter(totalBytes: number | null, report: ((fraction: number) => void) | undefined): Meter {
  let bytes = 0;
  let last = 0;
  const enabled = report !== undefined && totalBytes !== null && totalBytes > 0;
  return {
    add(n) {
      bytes += n;
      if (!enabled) return;
      const f = Math.min(1, bytes / totalBytes);
      if (f - last >= 0.01) {
        last = f;
        report(f);
      }
    },
    finish() {
      if (enabled && last < 1) report(1);
    },
  };
}
