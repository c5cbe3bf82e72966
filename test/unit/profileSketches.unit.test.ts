import { describe, expect, it } from 'vitest';
import { HyperLogLog } from '../../src/analyzers/datasetProfile/hyperLogLog.js';
import { LINE_TOO_LONG, splitLines } from '../../src/analyzers/datasetProfile/ndjsonLines.js';
import { histogramOf, NumericSample, quantile, SAMPLE_CAPACITY } from '../../src/analyzers/datasetProfile/numericSample.js';
import { EXACT_DISTINCT_LIMIT, HEAVY_HITTERS_K, ValueCounter } from '../../src/analyzers/datasetProfile/valueCounter.js';
import { classifyJson, classifyText, parseIsoDate } from '../../src/analyzers/datasetProfile/valueKind.js';
import { mulberry32 } from '../helpers/datasetGen.js';

describe('HyperLogLog', () => {
  it.each([1, 10, 1_000, 20_000, 200_000, 1_000_000])('estimates %i distinct values within 3 %%', (n) => {
    const hll = new HyperLogLog();
    // Sequential, highly similar keys are the classic weak-hash stressor; add each twice.
    for (let rep = 0; rep < 2; rep++) for (let i = 0; i < n; i++) hll.add(`user_${i}`);
    const est = hll.estimate();
    expect(Math.abs(est - n)).toBeLessThanOrEqual(Math.max(0.5, 0.03 * n));
  });

  it('is 0 when empty', () => {
    expect(new HyperLogLog().estimate()).toBe(0);
  });
});

describe('ValueCounter', () => {
  it('is exact up to the distinct limit, then estimates', () => {
    const vc = new ValueCounter();
    for (let i = 0; i < EXACT_DISTINCT_LIMIT; i++) vc.add(`s${i}`);
    expect(vc.isExact).toBe(true);
    expect(vc.distinct()).toBe(EXACT_DISTINCT_LIMIT);
    for (let i = 0; i < 40_000; i++) vc.add(`s${i}`);
    expect(vc.isExact).toBe(false);
    expect(Math.abs(vc.distinct() - 40_000)).toBeLessThan(40_000 * 0.03);
  });

  it('orders top values by count, ties by key', () => {
    const vc = new ValueCounter();
    for (const k of ['b', 'a', 'c', 'a', 'b', 'd']) vc.add(k);
    expect(vc.top(3)).toEqual([
      { key: 'a', count: 2 },
      { key: 'b', count: 2 },
      { key: 'c', count: 1 },
    ]);
  });

  it('keeps heavy hitters with lower-bound counts within N/(K+1) in sketch mode', () => {
    const vc = new ValueCounter();
    const rand = mulberry32(3);
    const truth = new Map<string, number>();
    const n = 200_000;
    for (let i = 0; i < n; i++) {
      const u = rand();
      const key = u < 0.2 ? 'hot' : u < 0.3 ? 'warm' : u < 0.35 ? 'mild' : `u${i}`;
      truth.set(key, (truth.get(key) ?? 0) + 1);
      vc.add(key);
    }
    expect(vc.isExact).toBe(false);
    const top = vc.top(3);
    expect(top.map((t) => t.key)).toEqual(['hot', 'warm', 'mild']);
    const bound = n / (HEAVY_HITTERS_K + 1);
    for (const { key, count } of top) {
      const t = truth.get(key) ?? 0;
      expect(count).toBeLessThanOrEqual(t);
      expect(count).toBeGreaterThanOrEqual(t - bound);
    }
  });

  it('switches to sketch mode when keys get too long, truncating sketch keys', () => {
    const vc = new ValueCounter();
    const long = 'x'.repeat(5_000);
    for (let i = 0; i < 300; i++) vc.add(`${long}${i}`);
    expect(vc.isExact).toBe(false);
    expect(vc.top(1)[0]?.key.endsWith('…')).toBe(true);
  });
});

describe('NumericSample, quantiles and histogram', () => {
  it('type-7 quantiles interpolate between closest ranks', () => {
    const s = Float64Array.from([1, 2, 3, 4]);
    expect(quantile(s, 0)).toBe(1);
    expect(quantile(s, 0.5)).toBe(2.5);
    expect(quantile(s, 0.25)).toBeCloseTo(1.75, 12);
    expect(quantile(s, 1)).toBe(4);
    expect(quantile(Float64Array.from([7]), 0.95)).toBe(7);
  });

  it('puts max in the last bin and sums to the total', () => {
    const h = histogramOf(Float64Array.from([0, 1, 2, 5, 10]), 0, 10, 5);
    expect(h).toHaveLength(10);
    expect(h.map((b) => b.count)).toEqual([1, 1, 1, 0, 0, 1, 0, 0, 0, 1]);
    expect(h[0]).toEqual({ lower: 0, upper: 1, count: 1 });
    expect(h[9]?.upper).toBe(10);
    expect(histogramOf(Float64Array.from([3, 3]), 3, 3, 2)).toEqual([{ lower: 3, upper: 3, count: 2 }]);
  });

  it('scales a reservoir histogram to the total with rank error within bounds', () => {
    const sample = new NumericSample(1);
    const rand = mulberry32(9);
    const all: number[] = [];
    for (let i = 0; i < 100_000; i++) {
      const x = rand() ** 2 * 100; // skewed
      all.push(x);
      sample.add(x);
    }
    expect(sample.isExact).toBe(false);
    const sorted = sample.sorted();
    expect(sorted.length).toBe(SAMPLE_CAPACITY);
    const truth = all.sort((a, b) => a - b);
    for (const p of [0.25, 0.5, 0.75, 0.95]) {
      const q = quantile(sorted, p);
      const rank = lowerBound(truth, q) / truth.length;
      expect(Math.abs(rank - p)).toBeLessThan(0.015);
    }
    const min = truth[0] ?? 0;
    const max = truth[truth.length - 1] ?? 0;
    const h = histogramOf(sorted, min, max, truth.length);
    expect(h.reduce((a, b) => a + b.count, 0)).toBe(truth.length);
    for (const bin of h) {
      const actual = truth.filter((x, i) => binOf(x, min, max) === h.indexOf(bin) && i >= 0).length;
      expect(Math.abs(bin.count - actual) / truth.length).toBeLessThan(0.015);
    }
  });
});

function lowerBound(sorted: number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] ?? 0) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function binOf(x: number, min: number, max: number): number {
  return Math.min(9, Math.floor(((x - min) / (max - min)) * 10));
}

describe('value classification', () => {
  it.each([
    ['42', 'integer'],
    ['-7', 'integer'],
    ['+3', 'integer'],
    ['1.5', 'number'],
    ['.5', 'number'],
    ['1e-7', 'number'],
    ['1.0', 'number'],
    ['12345678901234567890', 'number'],
    ['true', 'boolean'],
    ['FALSE', 'boolean'],
    ['2024-02-29', 'date'],
    ['2023-02-29', 'string'],
    ['2024-01-01T10:20:30Z', 'date'],
    ['2024-01-01 10:20', 'date'],
    ['2024-01-01T10:20:30.123456+05:30', 'date'],
    ['2024-13-01', 'string'],
    ['NaN', 'string'],
    ['Infinity', 'string'],
    ['0x1f', 'string'],
    [' 5', 'string'],
    ['1,5', 'string'],
    ['yes', 'string'],
    ['東京', 'string'],
  ])('classifies %j as %s', (text, kind) => {
    expect(classifyText(text).kind).toBe(kind);
  });

  it('types JSON values by JSON type; strings stay strings unless ISO dates', () => {
    expect(classifyJson(1).kind).toBe('integer');
    expect(classifyJson(1.5).kind).toBe('number');
    expect(classifyJson('1').kind).toBe('string');
    expect(classifyJson('true').kind).toBe('string');
    expect(classifyJson(false).kind).toBe('boolean');
    expect(classifyJson('2024-05-06').kind).toBe('date');
    expect(classifyJson({ a: 1 })).toEqual({ kind: 'string', text: '{"a":1}' });
    expect(classifyJson(Infinity).kind).toBe('string');
  });

  it('parses ISO dates to UTC epoch ms, honouring offsets', () => {
    expect(parseIsoDate('1970-01-01')).toBe(0);
    expect(parseIsoDate('2024-03-05T10:20:30Z')).toBe(Date.UTC(2024, 2, 5, 10, 20, 30));
    expect(parseIsoDate('2024-03-05T10:20:30.5+01:00')).toBe(Date.UTC(2024, 2, 5, 9, 20, 30, 500));
    expect(parseIsoDate('0050-06-01')).toBe(Date.parse('0050-06-01T00:00:00Z'));
    expect(parseIsoDate('2024-01-01T24:00:00Z')).toBeNull();
  });
});

describe('splitLines', () => {
  async function collect(chunks: Buffer[], max = 1 << 20): Promise<Array<string | typeof LINE_TOO_LONG>> {
    const out: Array<string | typeof LINE_TOO_LONG> = [];
    for await (const l of splitLines(chunks, max)) out.push(l);
    return out;
  }

  it('splits across chunk boundaries, inside multi-byte characters, with CRLF', async () => {
    const bytes = Buffer.from('a😀b\r\n東京\n\nlast');
    const chunks = [...bytes].map((b) => Buffer.from([b])); // one byte per chunk
    expect(await collect(chunks)).toEqual(['a😀b', '東京', '', 'last']);
  });

  it('skips over-long lines without buffering them', async () => {
    const out = await collect([Buffer.from('ok\n' + 'x'.repeat(50)), Buffer.from('y'.repeat(50) + '\nfine\n' + 'z'.repeat(200))], 64);
    expect(out).toEqual(['ok', LINE_TOO_LONG, 'fine', LINE_TOO_LONG]);
  });
});
