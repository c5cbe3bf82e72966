import { histogramOf, NumericSample, quantilesOf } from './numericSample.js';
import type { ColumnProfile, ColumnType, TopValue } from './types.js';
import { ValueCounter } from './valueCounter.js';
import { classifyJson, classifyText, type Classified } from './valueKind.js';

export const TOP_VALUES = 10;

const INTEGER = 1;
const NUMBER = 2;
const BOOLEAN = 4;
const DATE = 8;
const STRING = 16;

/**
 * Streaming statistics of one column; memory is bounded per column (see ValueCounter and
 * NumericSample for the bounds). Every classified value feeds every accumulator it can:
 * the column type is only known at the end, and a column that turns out `mixed` simply
 * does not report its numeric accumulators.
 */
export class ColumnProfiler {
  count = 0;
  nulls: number;
  private kinds = 0;
  // Welford's online mean/variance: numerically stable in one pass.
  private n = 0;
  private mean = 0;
  private m2 = 0;
  private numMin = Infinity;
  private numMax = -Infinity;
  private strMin: string | null = null;
  private strMax: string | null = null;
  private dateMin: { ms: number; text: string } | null = null;
  private dateMax: { ms: number; text: string } | null = null;
  private readonly values = new ValueCounter();
  private readonly sample: NumericSample;

  /** `initialNulls`: rows already seen before this column first appeared (NDJSON). */
  constructor(
    readonly name: string,
    seed: number,
    initialNulls = 0,
  ) {
    this.sample = new NumericSample(seed);
    this.nulls = initialNulls;
  }

  addNull(): void {
    this.nulls++;
  }

  /** A CSV cell; the empty string is null. */
  addText(s: string): void {
    if (s === '') this.nulls++;
    else this.add(classifyText(s));
  }

  /** An NDJSON value; JSON null, missing and '' are null. */
  addJson(v: unknown): void {
    if (v === null || v === undefined || v === '') this.nulls++;
    else this.add(classifyJson(v));
  }

  private add(v: Classified): void {
    this.count++;
    switch (v.kind) {
      case 'integer':
      case 'number': {
        const x = v.num;
        this.kinds |= v.kind === 'integer' ? INTEGER : NUMBER;
        this.n++;
        const d = x - this.mean;
        this.mean += d / this.n;
        this.m2 += d * (x - this.mean);
        if (x < this.numMin) this.numMin = x;
        if (x > this.numMax) this.numMax = x;
        this.sample.add(x);
        // Canonical numeric text, so `1.0`, `1` and `1e0` are one distinct value.
        this.values.add(`n${x}`);
        return;
      }
      case 'boolean':
        this.kinds |= BOOLEAN;
        this.values.add(v.bool ? 'btrue' : 'bfalse');
        return;
      case 'date': {
        this.kinds |= DATE;
        if (this.dateMin === null || v.ms < this.dateMin.ms) this.dateMin = { ms: v.ms, text: v.text };
        if (this.dateMax === null || v.ms > this.dateMax.ms) this.dateMax = { ms: v.ms, text: v.text };
        this.values.add(`d${v.text}`);
        return;
      }
      case 'string': {
        const s = v.text;
        this.kinds |= STRING;
        // UTF-16 code-unit order (JS `<`): cheap and deterministic, not locale collation.
        if (this.strMin === null || s < this.strMin) this.strMin = s;
        if (this.strMax === null || s > this.strMax) this.strMax = s;
        this.values.add(`s${s}`);
        return;
      }
    }
  }

  snapshot(): ColumnProfile {
    const type = resolveType(this.kinds);
    const numeric = type === 'integer' || type === 'number';
    const sorted = numeric ? this.sample.sorted() : null;
    return {
      name: this.name,
      type,
      count: this.count,
      nulls: this.nulls,
      distinct: this.values.distinct(),
      distinct_is_estimate: !this.values.isExact,
      min: numeric ? this.numMin : type === 'string' ? this.strMin : type === 'date' ? (this.dateMin?.text ?? null) : null,
      max: numeric ? this.numMax : type === 'string' ? this.strMax : type === 'date' ? (this.dateMax?.text ?? null) : null,
      mean: numeric ? this.mean : null,
      stddev: numeric ? Math.sqrt(this.m2 / this.n) : null,
      quantiles: sorted === null ? null : quantilesOf(sorted),
      top: this.values.top(TOP_VALUES).map(({ key, count }) => ({ value: decodeKey(key), count })),
      histogram: sorted === null ? null : histogramOf(sorted, this.numMin, this.numMax, this.n),
    };
  }
}

function resolveType(kinds: number): ColumnType {
  switch (kinds) {
    case 0:
      return 'empty';
    case INTEGER:
      return 'integer';
    case NUMBER:
    case INTEGER | NUMBER:
      return 'number';
    case BOOLEAN:
      return 'boolean';
    case DATE:
      return 'date';
    case STRING:
      return 'string';
    default:
      return 'mixed';
  }
}

/** Keys are `<tag><text>`: the tag keeps number 1 and string "1" (NDJSON) apart. */
function decodeKey(key: string): TopValue['value'] {
  const text = key.slice(1);
  switch (key[0]) {
    case 'n':
      return Number(text);
    case 'b':
      return text === 'true';
    default:
      return text;
  }
}
