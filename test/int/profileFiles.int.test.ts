/**
 * dataset-profile on real files in os.tmpdir(), through the analyzer contract (in-process
 * mode; test/int/profileWorker.int.test.ts runs the same through the worker pool).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatasetProfileAnalyzer, type DatasetProfile } from '../../src/analyzers/index.js';
import { PermanentError, type AnalyzerContext } from '../../src/core/analyzer.js';
import type { JobId, OrgId } from '../../src/core/ids.js';
import type { Json } from '../../src/core/job.js';
import { expectedProfile, expectExactProfile, generateDataset, toCsv, toNdjson } from '../helpers/datasetGen.js';

let dir: string;
const ds = generateDataset({ seed: 2, rows: 3_000 });
const analyzer = createDatasetProfileAnalyzer({ inProcess: true });

function ctxFor(signal: AbortSignal = new AbortController().signal) {
  const partials: Array<[string, Json]> = [];
  const progress: number[] = [];
  const ctx: AnalyzerContext = {
    jobId: 'job_files' as JobId,
    orgId: 'org_files' as OrgId,
    attempt: 1,
    signal,
    logger: { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined },
    progress: (f) => void progress.push(f),
    partial: (key, payload) => {
      partials.push([key, payload]);
      return Promise.resolve();
    },
  };
  return { ctx, partials, progress };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'upshift-profile-'));
  await writeFile(path.join(dir, 'data.csv'), toCsv(ds, { crlf: true }));
  await writeFile(path.join(dir, 'data.ndjson'), toNdjson(ds));
  await writeFile(path.join(dir, 'data.psv'), toCsv(ds, { delimiter: '|' }));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('dataset-profile on files', () => {
  it.each([
    ['data.csv', 'csv', undefined],
    ['data.psv', 'csv', '|'],
    ['data.ndjson', 'ndjson', undefined],
  ] as const)('profiles %s exactly, with cumulative partials and progress', async (file, format, delimiter) => {
    const { ctx, partials, progress } = ctxFor();
    const out = await analyzer.run({ format, file: path.join(dir, file), chunk_rows: 1_000, delimiter }, ctx);
    expectExactProfile(out, expectedProfile(ds, format));
    expect(partials.map(([k]) => k)).toEqual(['rows-1000', 'rows-2000', 'rows-3000']);
    expectExactProfile(partials[0]?.[1] as DatasetProfile, expectedProfile(ds, format, 1_000));
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.every((f, i) => f > 0 && f <= 1 && f >= (progress[i - 1] ?? 0))).toBe(true);
    expect(progress.at(-1)).toBe(1);
  });

  it('fails permanently for a missing file, a directory, and a path outside allowedRoots', async () => {
    await expect(analyzer.run({ format: 'csv', file: path.join(dir, 'nope.csv') }, ctxFor().ctx)).rejects.toBeInstanceOf(PermanentError);
    await expect(analyzer.run({ format: 'csv', file: dir }, ctxFor().ctx)).rejects.toBeInstanceOf(PermanentError);
    const confined = createDatasetProfileAnalyzer({ inProcess: true, allowedRoots: [path.join(dir, 'uploads')] });
    await expect(confined.run({ format: 'csv', file: path.join(dir, 'data.csv') }, ctxFor().ctx)).rejects.toThrow(/outside the allowed/);
    const inside = createDatasetProfileAnalyzer({ inProcess: true, allowedRoots: [dir] });
    await expect(inside.run({ format: 'csv', file: path.join(dir, 'data.csv') }, ctxFor().ctx)).resolves.toMatchObject({ rows: 3_000 });
  });

  it('rejects promptly with signal.reason when canceled mid-file', async () => {
    const big = path.join(dir, 'cancel.csv');
    const body = toCsv(generateDataset({ seed: 3, rows: 5_000 }));
    await writeFile(big, body.repeat(6)); // ~30k rows: the run cannot finish before the abort
    const ac = new AbortController();
    const reason = new Error('job canceled');
    const { ctx, partials } = ctxFor(ac.signal);
    let abortedAt = 0;
    const origPartial = ctx.partial;
    const run = analyzer.run({ format: 'csv', file: big, chunk_rows: 500 }, {
      ...ctx,
      partial: async (key, payload) => {
        await origPartial(key, payload);
        if (partials.length === 2) {
          abortedAt = Date.now();
          ac.abort(reason);
        }
      },
    });
    await expect(run).rejects.toBe(reason);
    expect(Date.now() - abortedAt).toBeLessThan(100);
    expect(partials).toHaveLength(2);
  });
});
