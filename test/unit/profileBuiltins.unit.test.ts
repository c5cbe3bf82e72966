/**
 * The built-in analyzers at the Analyzer-contract level: noop, sleep, and dataset-profile
 * (in-process; the worker-thread path is covered by test/int/profileWorker.int.test.ts).
 */
import { Ajv } from 'ajv';
import { describe, expect, it, vi } from 'vitest';
import { builtinAnalyzers, createDatasetProfileAnalyzer, datasetProfileAnalyzer, noopAnalyzer, sleepAnalyzer } from '../../src/analyzers/index.js';
import { AnalyzerRegistry } from '../../src/app/analyzerRegistry.js';
import { PermanentError, type AnalyzerContext } from '../../src/core/analyzer.js';
import type { JobId, OrgId } from '../../src/core/ids.js';
import type { Json } from '../../src/core/job.js';

function fakeCtx(signal = new AbortController().signal, partial?: (key: string, payload: Json) => Promise<void>) {
  const partials: Array<[string, Json]> = [];
  const progress: number[] = [];
  const logger = { info: vi.fn(), warn: vi.fn(), error: vi.fn(), debug: vi.fn() };
  const ctx: AnalyzerContext = {
    jobId: 'job_test' as JobId,
    orgId: 'org_test' as OrgId,
    attempt: 1,
    signal,
    logger,
    progress: (f) => void progress.push(f),
    partial:
      partial ??
      ((key, payload) => {
        partials.push([key, payload]);
        return Promise.resolve();
      }),
  };
  return { ctx, partials, progress, logger };
}

const ajv = new Ajv({ strict: false, useDefaults: true });

describe('builtinAnalyzers', () => {
  it('registers noop, sleep and dataset-profile', () => {
    expect(builtinAnalyzers.map((a) => a.name)).toEqual(['noop', 'sleep', 'dataset-profile']);
    const registry = new AnalyzerRegistry();
    for (const a of builtinAnalyzers) registry.register(a);
    expect(registry.validateInput('sleep', { ms: 5 })).toEqual({ ms: 5, steps: 0 });
  });
});

describe('noop', () => {
  it('returns its input unchanged and accepts any JSON', async () => {
    const input = { a: [1, 'ü', null, { b: true }] };
    expect(await noopAnalyzer.run(input, fakeCtx().ctx)).toBe(input);
    const validate = ajv.compile(noopAnalyzer.inputSchema);
    for (const v of [null, 1, 'x', [], {}]) expect(validate(v)).toBe(true);
  });
});

describe('sleep', () => {
  it('validates its input', () => {
    const validate = ajv.compile(sleepAnalyzer.inputSchema);
    expect(validate({ ms: 0 })).toBe(true);
    expect(validate({ ms: 3_600_000, steps: 1000, fail: 'retryable' })).toBe(true);
    for (const bad of [{}, { ms: -1 }, { ms: 3_600_001 }, { ms: 1.5 }, { ms: 1, steps: 1001 }, { ms: 1, fail: 'x' }, { ms: 1, extra: 1 }]) {
      expect(validate(bad)).toBe(false);
    }
  });

  it('records a partial and progress per step and returns what it slept', async () => {
    const { ctx, partials, progress } = fakeCtx();
    const started = Date.now();
    expect(await sleepAnalyzer.run({ ms: 40, steps: 4 }, ctx)).toEqual({ slept_ms: 40, steps: 4 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(35);
    expect(partials).toEqual([1, 2, 3, 4].map((i) => [`step-${i}`, { step: i, steps: 4 }]));
    expect(progress).toEqual([0.25, 0.5, 0.75, 1]);
  });

  it('throws PermanentError or a retryable Error when asked to fail', async () => {
    await expect(sleepAnalyzer.run({ ms: 0, fail: 'permanent' }, fakeCtx().ctx)).rejects.toBeInstanceOf(PermanentError);
    const err = await sleepAnalyzer.run({ ms: 0, fail: 'retryable' }, fakeCtx().ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(PermanentError);
  });

  it.each([0, 10])('rejects with signal.reason within milliseconds of abort (steps=%i)', async (steps) => {
    const ac = new AbortController();
    const reason = new Error('canceled');
    const run = sleepAnalyzer.run({ ms: 60_000, steps }, fakeCtx(ac.signal).ctx);
    setTimeout(() => ac.abort(reason), 20);
    const started = Date.now();
    await expect(run).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(200);
  });

  it('does not wait for a slow partial store once aborted', async () => {
    const ac = new AbortController();
    const never = (): Promise<void> => new Promise<void>(() => undefined);
    const run = sleepAnalyzer.run({ ms: 10, steps: 1 }, fakeCtx(ac.signal, never).ctx);
    setTimeout(() => ac.abort(), 30);
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
  });
});

describe('dataset-profile analyzer (in-process)', () => {
  const analyzer = createDatasetProfileAnalyzer({ inProcess: true });
  const csv = 'city,temp\nZürich,3.5\n東京,11\n"Lyon, FR",-2\nbad"row,1\nOslo\n';

  it('validates input: exactly one of data/file, positive chunk_rows, sane delimiter', () => {
    const validate = ajv.compile(analyzer.inputSchema);
    expect(validate({ format: 'csv', data: 'a\n1\n' })).toBe(true);
    expect(validate({ format: 'ndjson', file: '/tmp/x.ndjson', chunk_rows: 1 })).toBe(true);
    for (const bad of [
      { format: 'csv' },
      { format: 'csv', data: '', file: '/x' },
      { format: 'tsv', data: '' },
      { format: 'csv', data: '', chunk_rows: 0 },
      { format: 'csv', data: '', delimiter: '"' },
      { format: 'csv', data: '', delimiter: '' },
      { format: 'csv', data: '', extra: 1 },
    ]) {
      expect(validate(bad)).toBe(false);
    }
  });

  it('profiles inline data, relaying partials and progress to ctx', async () => {
    const { ctx, partials, progress } = fakeCtx();
    const out = await analyzer.run({ format: 'csv', data: csv, chunk_rows: 2 }, ctx);
    expect(out.rows).toBe(3);
    expect(out.malformed_rows).toBe(2);
    expect(out.columns.map((c) => [c.name, c.type, c.min, c.max])).toEqual([
      ['city', 'string', 'Lyon, FR', '東京'],
      ['temp', 'number', -2, 11],
    ]);
    expect(partials.map(([k]) => k)).toEqual(['rows-2']);
    expect(progress.at(-1)).toBe(1);
  });

  it('fails permanently on unusable inputs', async () => {
    const run = (input: object): Promise<unknown> => analyzer.run(input as never, fakeCtx().ctx);
    await expect(run({ format: 'csv', file: 'relative.csv' })).rejects.toBeInstanceOf(PermanentError);
    await expect(run({ format: 'csv' })).rejects.toBeInstanceOf(PermanentError);
    await expect(run({ format: 'csv', data: 'a\n', chunk_rows: 0 })).rejects.toBeInstanceOf(PermanentError);
  });

  it('rejects with signal.reason when already aborted', async () => {
    const ac = new AbortController();
    ac.abort(new Error('timeout'));
    await expect(analyzer.run({ format: 'csv', data: csv }, fakeCtx(ac.signal).ctx)).rejects.toThrow('timeout');
  });

  it('falls back to in-process (with a warning) when running from TypeScript sources', async () => {
    const { ctx, logger } = fakeCtx();
    const out = await datasetProfileAnalyzer.run({ format: 'ndjson', data: '{"a":1}\n{"a":2}\n' }, ctx);
    expect(out.columns[0]).toMatchObject({ name: 'a', type: 'integer', mean: 1.5 });
    expect(logger.warn).toHaveBeenCalledOnce();
  });
});
