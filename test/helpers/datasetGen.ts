/**
 * Seeded dataset generator for the dataset-profile tests, plus an independent reference
 * profile computed naively over in-memory arrays (deliberately sharing no code with
 * src/analyzers). The generator keeps the *logical* value of every cell, so the reference
 * does not parse what the generator wrote.
 */
import { expect } from 'vitest';
// Types only: the reference itself shares no code with the analyzer.
import type { ColumnProfile, DatasetProfile } from '../../src/analyzers/datasetProfile/types.js';

export type Kind = 'integer' | 'number' | 'boolean' | 'date' | 'string';
/** `value`: number (integer/number), boolean, or the text (date/string). `ms` for dates. */
export type Cell = null | { kind: Kind; text: string; value: number | boolean | string; ms?: number };

export type MalformedVariant = 'ragged-short' | 'ragged-long' | 'bad-quote' | 'double-bad-quote' | 'bad-closing-quote';
export type GenRecord = { kind: 'row'; cells: Cell[] } | { kind: 'malformed'; variant: MalformedVariant; n: number };

export interface Dataset {
  readonly columns: string[];
  readonly records: GenRecord[];
  /** Valid rows only, in order. */
  readonly rows: Cell[][];
  /** Index (in `rows`) of the first row where the NDJSON key of the last column is written. */
  readonly lateStart: number;
}

export const COLUMNS = ['id', 'ñame 名前 😀', 'score', 'qty', 'active', 'when', 'mixed', 'weird, "hdr"\nline2', 'empty', 'late'];

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const NAME_PIECES = ['Zoë', 'José', 'naïve café', '東京', '北京市', '😀', '🚀🔥', 'a,b', 'say "hi"', 'line1\nline2', 'semi;colon', "O'Brien", 'plain', 'Ünïcödé'];
const CATEGORIES = ['naïve', '東京', '🚀 launch', 'x,y', 'q"uote', 'multi\nline', 'tab\tsep'];

export function generateDataset(opts: { seed: number; rows: number; malformedRate?: number }): Dataset {
  const r = mulberry32(opts.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const malformedRate = opts.malformedRate ?? 0.03;
  const lateStart = Math.floor(opts.rows / 2);
  const records: GenRecord[] = [];
  const rows: Cell[][] = [];
  const variants: MalformedVariant[] = ['ragged-short', 'ragged-long', 'bad-quote', 'double-bad-quote', 'bad-closing-quote'];
  let m = 0;
  while (rows.length < opts.rows) {
    if (rows.length > 0 && r() < malformedRate) {
      records.push({ kind: 'malformed', variant: variants[m % variants.length] as MalformedVariant, n: m });
      m++;
      continue;
    }
    const i = rows.length;
    const num = (v: number): Cell => {
      const x = v + 0; // no -0
      return { kind: Number.isInteger(x) ? 'integer' : 'number', text: String(x), value: x };
    };
    const str = (s: string): Cell => ({ kind: 'string', text: s, value: s });
    const maybe = (p: number, f: () => Cell): Cell => (r() < p ? null : f());
    const cells: Cell[] = [
      num(i),
      maybe(0.1, () => str(Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick(NAME_PIECES)).join(' ') + (r() < 0.5 ? ` #${Math.floor(r() * 500)}` : ''))),
      maybe(0.1, () => {
        const u = r();
        if (u < 0.05) return num(Math.round(r() * 100) * 1e-9); // exponent notation in String()
        if (u < 0.15) return num(Math.floor(r() * 100) - 50);
        return num(Math.round((r() * 2000 - 1000) * 1000) / 1000);
      }),
      maybe(0.05, () => num(Math.floor(Math.pow(r(), 2) * 21))),
      maybe(0.05, () => {
        const b = r() < 0.6;
        return { kind: 'boolean', text: pick(b ? ['true', 'TRUE', 'True'] : ['false', 'FALSE', 'False']), value: b };
      }),
      maybe(0.08, () => dateCell(r)),
      maybe(0.1, () => {
        const u = r();
        if (u < 0.4) return num(Math.floor(r() * 100));
        if (u < 0.7) return str(`foo${Math.floor(r() * 20)}`);
        if (u < 0.85) return { kind: 'boolean', text: r() < 0.5 ? 'true' : 'false', value: false } satisfies Cell;
        return num(Math.round(r() * 1e4) / 100);
      }),
      maybe(0.05, () => str(pick(CATEGORIES))),
      null,
      i < lateStart ? null : maybe(0.2, () => num(Math.floor(r() * 1000))),
    ];
    // The mixed column's booleans: value must match the text.
    const mixed = cells[6];
    if (mixed?.kind === 'boolean') mixed.value = mixed.text === 'true';
    records.push({ kind: 'row', cells });
    rows.push(cells);
  }
  return { columns: COLUMNS, records, rows, lateStart };
}

function dateCell(r: () => number): Cell {
  const y = 1990 + Math.floor(r() * 60);
  const mo = 1 + Math.floor(r() * 12);
  const d = 1 + Math.floor(r() * 28);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const day = `${y}-${p2(mo)}-${p2(d)}`;
  const u = r();
  if (u < 0.4) return { kind: 'date', text: day, value: day, ms: Date.UTC(y, mo - 1, d) };
  const h = Math.floor(r() * 24);
  const mi = Math.floor(r() * 60);
  const s = Math.floor(r() * 60);
  if (u < 0.8) {
    const text = `${day}T${p2(h)}:${p2(mi)}:${p2(s)}Z`;
    return { kind: 'date', text, value: text, ms: Date.UTC(y, mo - 1, d, h, mi, s) };
  }
  const text = `${day}T${p2(h)}:${p2(mi)}:${p2(s)}+05:30`;
  return { kind: 'date', text, value: text, ms: Date.UTC(y, mo - 1, d, h, mi, s) - 330 * 60_000 };
}

// ---------------------------------------------------------------- serialisation

export function toCsv(ds: Dataset, opts: { delimiter?: string; crlf?: boolean; seed?: number } = {}): string {
  const d = opts.delimiter ?? ',';
  const eol = opts.crlf === true ? '\r\n' : '\n';
  const r = mulberry32(opts.seed ?? 7);
  const field = (s: string): string => {
    const needs = s.includes(d) || s.includes('"') || s.includes('\n') || s.includes('\r');
    return needs || r() < 0.1 ? `"${s.replaceAll('"', '""')}"` : s;
  };
  const cell = (c: Cell): string => (c === null ? (r() < 0.2 ? '""' : '') : field(c.text));
  const width = ds.columns.length;
  const lines = [ds.columns.map(field).join(d)];
  for (const rec of ds.records) {
    if (rec.kind === 'row') {
      lines.push(rec.cells.map(cell).join(d));
      if (r() < 0.01) lines.push(''); // blank lines are skipped, not rows
      continue;
    }
    const pad = (cells: string[]): string => [...cells, ...Array<string>(Math.max(0, width - cells.length)).fill('x')].join(d);
    const id = String(rec.n);
    const malformed: Record<MalformedVariant, string> = {
      'ragged-short': [id, 'short'].join(d),
      'ragged-long': pad([id]) + `${d}extra${d}more`,
      'bad-quote': pad([id, 'bad"quote']), // quote inside an unquoted field
      'double-bad-quote': pad([id, '5"6"7']), // two errors, still one record
      'bad-closing-quote': pad([`"${id}"x"`, 'y']), // text after a closing quote
    };
    lines.push(malformed[rec.variant]);
  }
  return lines.join(eol) + eol;
}

/** NDJSON; nulls are written as JSON null, "" or a missing key (never missing in row 0). */
export function toNdjson(ds: Dataset, seed = 11): string {
  const r = mulberry32(seed);
  const lines: string[] = [];
  const bad = ['[1,2,3]', '42', 'null', '{"id": 5, "broken": ', 'not json at all 😀', '"a string"'];
  let rowIndex = 0;
  for (const rec of ds.records) {
    if (rec.kind === 'malformed') {
      lines.push(bad[rec.n % bad.length] as string);
      continue;
    }
    const obj: Record<string, unknown> = {};
    rec.cells.forEach((c, j) => {
      const name = ds.columns[j] as string;
      const isLate = j === ds.columns.length - 1;
      if (isLate && rowIndex < ds.lateStart) return;
      if (c === null) {
        const u = r();
        if (rowIndex === 0 || isLate || u < 0.4) obj[name] = null;
        else if (u < 0.7) obj[name] = '';
        return; // missing key
      }
      obj[name] = c.kind === 'date' || c.kind === 'string' ? c.text : c.value;
    });
    lines.push(JSON.stringify(obj));
    if (r() < 0.01) lines.push(r() < 0.5 ? '' : '   ');
    rowIndex++;
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------- reference profile

export type RefColumn = {
  name: string;
  type: string;
  count: number;
  nulls: number;
  distinct: number;
  min: number | string | null;
  max: number | string | null;
  mean: number | null;
  stddev: number | null;
  quantiles: { p25: number; p50: number; p75: number; p95: number } | null;
  /** Every distinct value's count, keyed like `valueKey`. */
  counts: Map<string, number>;
  histogram: number[] | null;
};

/** Identity of a value for distinct/top: numbers by value, booleans, then text. */
export function valueKey(v: number | boolean | string, kind?: Kind): string {
  if (typeof v === 'number') return `num:${v}`;
  if (typeof v === 'boolean') return `bool:${v}`;
  return `${kind === 'date' ? 'date' : 'str'}:${v}`;
}

/** Expected profile of the first `n` valid rows (default all) and malformed records before them. */
export function expectedProfile(ds: Dataset, format: 'csv' | 'ndjson', n = ds.rows.length): { rows: number; malformed_rows: number; columns: RefColumn[] } {
  const rows = ds.rows.slice(0, n);
  // NDJSON columns exist once their key has been written; the late column's key starts late.
  const cols = format === 'ndjson' && n <= ds.lateStart ? ds.columns.slice(0, -1) : ds.columns;
  return {
    rows: rows.length,
    malformed_rows: malformedBefore(ds, n),
    columns: cols.map((name, j) => refColumn(name, rows.map((row) => row[j] ?? null))),
  };
}

export function malformedBefore(ds: Dataset, n: number): number {
  let good = 0;
  let bad = 0;
  for (const rec of ds.records) {
    if (rec.kind === 'row') {
      if (++good === n) return bad;
    } else bad++;
  }
  return bad;
}

export function refColumn(name: string, cells: Cell[]): RefColumn {
  const present = cells.filter((c): c is NonNullable<Cell> => c !== null);
  const kinds = new Set(present.map((c) => c.kind));
  const type =
    kinds.size === 0 ? 'empty'
    : [...kinds].every((k) => k === 'integer') ? 'integer'
    : [...kinds].every((k) => k === 'integer' || k === 'number') ? 'number'
    : kinds.size === 1 ? [...kinds][0] as string
    : 'mixed';
  const counts = new Map<string, number>();
  for (const c of present) {
    const k = valueKey(c.value, c.kind);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const base = { name, type, count: present.length, nulls: cells.length - present.length, distinct: counts.size, counts };
  if (type === 'integer' || type === 'number') {
    const xs = present.map((c) => c.value as number);
    const sorted = [...xs].sort((a, b) => a - b);
    const min = sorted[0] as number;
    const max = sorted[sorted.length - 1] as number;
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const stddev = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length);
    const q = (p: number): number => {
      const h = (sorted.length - 1) * p;
      const lo = Math.floor(h);
      const a = sorted[lo] as number;
      return a + (h - lo) * ((sorted[Math.min(lo + 1, sorted.length - 1)] as number) - a);
    };
    let histogram: number[];
    if (max === min) histogram = [xs.length];
    else {
      histogram = Array<number>(10).fill(0);
      for (const x of xs) {
        const b = Math.min(9, Math.floor(((x - min) / (max - min)) * 10));
        histogram[b] = (histogram[b] ?? 0) + 1;
      }
    }
    return { ...base, min, max, mean, stddev, quantiles: { p25: q(0.25), p50: q(0.5), p75: q(0.75), p95: q(0.95) }, histogram };
  }
  let min: string | null = null;
  let max: string | null = null;
  if (type === 'string') {
    const texts = present.map((c) => c.text).sort();
    min = texts[0] ?? null;
    max = texts[texts.length - 1] ?? null;
  } else if (type === 'date') {
    let lo = present[0];
    let hi = present[0];
    for (const c of present) {
      if ((c.ms ?? 0) < (lo?.ms ?? 0)) lo = c;
      if ((c.ms ?? 0) > (hi?.ms ?? 0)) hi = c;
    }
    min = lo?.text ?? null;
    max = hi?.text ?? null;
  }
  return { ...base, min, max, mean: null, stddev: null, quantiles: null, histogram: null };
}

// ---------------------------------------------------------------- comparison

export function expectRel(a: number | null | undefined, b: number | null | undefined, tol = 1e-9): void {
  expect(typeof a).toBe('number');
  expect(typeof b).toBe('number');
  const x = a as number;
  const y = b as number;
  expect(Math.abs(x - y)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(x), Math.abs(y)));
}

/** Exact comparison of a profile (small data: every structure in exact mode) with the reference. */
export function expectExactProfile(actual: DatasetProfile, expected: ReturnType<typeof expectedProfile>): void {
  expect(actual.rows).toBe(expected.rows);
  expect(actual.malformed_rows).toBe(expected.malformed_rows);
  expect(actual.columns.map((c) => c.name)).toEqual(expected.columns.map((c) => c.name));
  actual.columns.forEach((col, i) => expectExactColumn(col, expected.columns[i] as RefColumn));
}

function expectExactColumn(col: ColumnProfile, ref: RefColumn): void {
  const ctx = `column ${JSON.stringify(col.name)}`;
  expect({ ctx, type: col.type, count: col.count, nulls: col.nulls, distinct: col.distinct, est: col.distinct_is_estimate }).toEqual({
    ctx,
    type: ref.type,
    count: ref.count,
    nulls: ref.nulls,
    distinct: ref.distinct,
    est: false,
  });
  if (ref.mean === null) {
    expect([col.min, col.max, col.mean, col.stddev, col.quantiles, col.histogram]).toEqual([ref.min, ref.max, null, null, null, null]);
  } else {
    expectRel(col.min as number, ref.min as number);
    expectRel(col.max as number, ref.max as number);
    expectRel(col.mean, ref.mean);
    expectRel(col.stddev, ref.stddev);
    for (const p of ['p25', 'p50', 'p75', 'p95'] as const) expectRel(col.quantiles?.[p], ref.quantiles?.[p]);
    expect(col.histogram?.map((b) => b.count)).toEqual(ref.histogram);
    expect(col.histogram?.[0]?.lower).toBe(col.min);
    expect(col.histogram?.[(col.histogram?.length ?? 1) - 1]?.upper).toBe(col.max);
  }
  // Top: the reported counts are the true top counts, and each value's count is its true count.
  const sortedCounts = [...ref.counts.values()].sort((a, b) => b - a).slice(0, 10);
  expect(col.top.map((t) => t.count)).toEqual(sortedCounts);
  for (const t of col.top) expect(ref.counts.get(valueKey(t.value, col.type === 'date' ? 'date' : undefined))).toBe(t.count);
}
