import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/core/analyzer.js';
import { MAX_RECORD_BYTES, profileStream } from '../../src/analyzers/datasetProfile/profileStream.js';
import type { ColumnProfile, DatasetProfile } from '../../src/analyzers/datasetProfile/types.js';
import { expectedProfile, expectExactProfile, expectRel as rel, generateDataset, mulberry32, toCsv, toNdjson } from '../helpers/datasetGen.js';

/** Random chunk sizes, so records, quotes and UTF-8 sequences straddle chunk boundaries. */
function chunked(text: string, seed = 5): Readable {
  const bytes = Buffer.from(text, 'utf8');
  const r = mulberry32(seed);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; ) {
    const n = 1 + Math.floor(r() * 4000);
    chunks.push(bytes.subarray(i, i + n));
    i += n;
  }
  return Readable.from(chunks);
}

async function profileText(text: string, opts: Parameters<typeof profileStream>[1], partials?: Array<[string, DatasetProfile]>): Promise<DatasetProfile> {
  return profileStream(chunked(text), opts, { partial: (k, p) => void partials?.push([k, p]) });
}

describe('profileStream against the reference profile', () => {
  const ds = generateDataset({ seed: 1, rows: 600 });

  it.each([
    ['comma', ','],
    ['semicolon', ';'],
    ['tab', '\t'],
    ['multi-char', '||'],
  ])('profiles CSV (%s delimiter) exactly', async (_name, delimiter) => {
    const profile = await profileText(toCsv(ds, { delimiter }), { format: 'csv', delimiter });
    expectExactProfile(profile, expectedProfile(ds, 'csv'));
    expect(profile.malformed_rows).toBeGreaterThan(5);
  });

  it('profiles CSV with CRLF line endings exactly', async () => {
    const profile = await profileText(toCsv(ds, { crlf: true }), { format: 'csv' });
    expectExactProfile(profile, expectedProfile(ds, 'csv'));
  });

  it('profiles NDJSON exactly', async () => {
    const profile = await profileText(toNdjson(ds), { format: 'ndjson' });
    expectExactProfile(profile, expectedProfile(ds, 'ndjson'));
  });

  it.each(['csv', 'ndjson'] as const)('emits cumulative %s partials per chunk with unique keys', async (format) => {
    const partials: Array<[string, DatasetProfile]> = [];
    const text = format === 'csv' ? toCsv(ds) : toNdjson(ds);
    const final = await profileText(text, { format, chunkRows: 70 }, partials);
    expect(partials.map(([k]) => k)).toEqual([70, 140, 210, 280, 350, 420, 490, 560].map((n) => `rows-${n}`));
    for (const [key, snap] of partials) {
      const n = Number(key.slice('rows-'.length));
      expectExactProfile(snap, expectedProfile(ds, format, n));
    }
    expectExactProfile(final, expectedProfile(ds, format));
  });
});

describe('profileStream edge cases', () => {
  const csv = (text: string): Promise<DatasetProfile> => profileStream(Readable.from([Buffer.from(text)]), { format: 'csv' });

  it('handles empty input and a header-only file', async () => {
    expect(await csv('')).toEqual({ rows: 0, malformed_rows: 0, columns: [] });
    const p = await csv('\uFEFFa,"b ""c"""\n');
    expect(p.rows).toBe(0);
    expect(p.columns.map((c) => [c.name, c.type, c.count, c.distinct, c.top, c.histogram])).toEqual([
      ['a', 'empty', 0, 0, [], null],
      ['b "c"', 'empty', 0, 0, [], null],
    ]);
  });

  it('counts a record with several quote errors once, and an unclosed final quote', async () => {
    const p = await csv('a,b\n1,5"6"7\n2,x"y\n3,ok\n4,"unclosed\n5,z\n');
    expect([p.rows, p.malformed_rows]).toEqual([1, 3]);
  });

  it('counts a long run of bad records (nothing but malformed rows after the header)', async () => {
    const p = await csv('a,b\n' + 'x"y,1\n'.repeat(10_000) + '1,2\n' + 'only-one-field\n'.repeat(1_000));
    expect([p.rows, p.malformed_rows]).toEqual([1, 11_000]);
  });

  it('treats numerically equal texts as one distinct value and keeps typed top values', async () => {
    const p = await csv('n,b\n1,true\n1.0,TRUE\n1e0,false\n2,False\n');
    const [n, b] = p.columns;
    expect(n).toMatchObject({ type: 'number', distinct: 2, top: [{ value: 1, count: 3 }, { value: 2, count: 1 }] });
    expect(b).toMatchObject({ type: 'boolean', distinct: 2, top: [{ value: false, count: 2 }, { value: true, count: 2 }] });
  });

  it('keeps NDJSON number 1 and string "1" apart in a mixed column', async () => {
    const text = '{"v":1}\n{"v":"1"}\n{"v":"1"}\n{"v":{"x":[1]}}\n';
    const p = await profileStream(Readable.from([text]), { format: 'ndjson' });
    expect(p.columns[0]).toMatchObject({ type: 'mixed', distinct: 3, min: null, mean: null });
    expect(p.columns[0]?.top).toEqual([
      { value: '1', count: 2 },
      { value: 1, count: 1 },
      { value: '{"x":[1]}', count: 1 },
    ]);
  });

  it('fails permanently on a CSV record larger than the limit (unclosed quote)', async () => {
    const text = 'a,b\n1,"never closed\n' + 'x,y\n'.repeat(Math.ceil(MAX_RECORD_BYTES / 4) + 1000);
    await expect(csv(text)).rejects.toBeInstanceOf(PermanentError);
  });

  it('counts an over-long NDJSON line as malformed and carries on', async () => {
    const text = `{"a":1}\n{"a":"${'x'.repeat(MAX_RECORD_BYTES)}"}\n{"a":2}\n`;
    const p = await profileStream(Readable.from([text]), { format: 'ndjson' });
    expect([p.rows, p.malformed_rows, p.columns[0]?.max]).toEqual([2, 1, 2]);
  });
});

describe('profileStream on data beyond the exact bounds', () => {
  it('uses sketches whose errors stay within the documented bounds', async () => {
    const n = 60_000;
    const r = mulberry32(42);
    const xs: number[] = [];
    let hot = 0;
    const lines = ['id,u,cat'];
    for (let i = 0; i < n; i++) {
      const x = Math.round(r() ** 3 * 1e6) / 1e3;
      xs.push(x);
      const u = r();
      const cat = u < 0.25 ? 'hot' : u < 0.35 ? 'warm' : `c${i}`;
      if (cat === 'hot') hot++;
      lines.push(`id-${i},${x},${cat}`);
    }
    const p = await profileStream(chunked(lines.join('\n')), { format: 'csv', chunkRows: 20_000 });
    const [id, u, cat] = p.columns as [ColumnProfile, ColumnProfile, ColumnProfile];
    expect(id).toMatchObject({ type: 'string', count: n, distinct_is_estimate: true });
    expect(Math.abs(id.distinct - n) / n).toBeLessThan(0.03);
    expect(u.type).toBe('number');
    const sorted = [...xs].sort((a, b) => a - b);
    rel(u.min as number, sorted[0]);
    rel(u.max as number, sorted[n - 1]);
    rel(u.mean, xs.reduce((a, b) => a + b, 0) / n);
    for (const [k, prob] of [['p25', 0.25], ['p50', 0.5], ['p75', 0.75], ['p95', 0.95]] as const) {
      const q = u.quantiles?.[k] ?? NaN;
      const rank = sorted.filter((x) => x < q).length / n;
      expect(Math.abs(rank - prob)).toBeLessThan(0.015); // documented: ±1.3 % at 99.9 %
    }
    expect(u.histogram?.reduce((a, b) => a + b.count, 0)).toBe(n);
    expect(cat.top[0]?.value).toBe('hot');
    expect(cat.top[0]?.count).toBeLessThanOrEqual(hot);
    expect(cat.top[0]?.count).toBeGreaterThanOrEqual(hot - n / 1001);
    expect(cat.top[1]?.value).toBe('warm');
  });
});

describe('profileStream cancel', () => {
  it('rejects with signal.reason promptly while the source is idle', async () => {
    const ac = new AbortController();
    async function* slow(): AsyncGenerator<Buffer> {
      yield Buffer.from('a,b\n');
      for (let i = 0; ; i++) {
        yield Buffer.from(`${i},x\n`);
        await new Promise((res) => setTimeout(res, 5));
      }
    }
    const reason = new Error('canceled by test');
    const started = Date.now();
    const run = profileStream(Readable.from(slow()), { format: 'csv', chunkRows: 5, signal: ac.signal }, {
      partial: () => {
        ac.abort(reason);
      },
    });
    await expect(run).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
