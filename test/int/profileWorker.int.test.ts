/**
 * dataset-profile through the piscina worker pool. Worker threads cannot load .ts files, so
 * this imports the tsc output in dist/ (`npm test` builds first). When dist is missing or
 * older than the sources the suite is skipped with a message rather than testing stale code.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as AnalyzersModule from '../../src/analyzers/index.js';
import type * as AnalyzerCore from '../../src/core/analyzer.js';
import type { AnalyzerContext } from '../../src/core/analyzer.js';
import type { JobId, OrgId } from '../../src/core/ids.js';
import type { Json } from '../../src/core/job.js';
import { expectedProfile, expectExactProfile, generateDataset, toCsv, toNdjson } from '../helpers/datasetGen.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const srcDir = path.join(root, 'src/analyzers');
const distDir = path.join(root, 'dist/src/analyzers');

function distProblem(): string | null {
  if (!existsSync(path.join(distDir, 'datasetProfile/profileWorker.js'))) return 'dist/ is missing: run `npm run build`';
  const sources = readdirSync(srcDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  for (const f of sources) {
    const js = path.join(distDir, f.replace(/\.ts$/, '.js'));
    if (!existsSync(js) || statSync(js).mtimeMs < statSync(path.join(srcDir, f)).mtimeMs) return `dist/ is older than src (${f}): run \`npm run build\``;
  }
  return null;
}

const problem = distProblem();
if (problem !== null) console.warn(`[profileWorker.int] skipped: ${problem}`);

function ctxFor(signal: AbortSignal = new AbortController().signal, partial?: AnalyzerContext['partial']) {
  const partials: Array<[string, Json]> = [];
  const progress: number[] = [];
  const ctx: AnalyzerContext = {
    jobId: 'job_worker' as JobId,
    orgId: 'org_worker' as OrgId,
    attempt: 1,
    signal,
    logger: { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined },
    progress: (f) => void progress.push(f),
    partial:
      partial ??
      ((key, payload) => {
        partials.push([key, payload]);
        return Promise.resolve();
      }),
  };
  return { ctx, partials, progress };
}

describe.skipIf(problem !== null)('dataset-profile in the worker pool (dist)', () => {
  let dist: typeof AnalyzersModule;
  let core: typeof AnalyzerCore;
  let dir: string;
  const ds = generateDataset({ seed: 4, rows: 2_500 });

  beforeAll(async () => {
    dist = (await import(pathToFileURL(path.join(root, 'dist/src/analyzers/index.js')).href)) as typeof AnalyzersModule;
    core = (await import(pathToFileURL(path.join(root, 'dist/src/core/analyzer.js')).href)) as typeof AnalyzerCore;
    dir = await mkdtemp(path.join(tmpdir(), 'upshift-profile-worker-'));
    await writeFile(path.join(dir, 'data.csv'), toCsv(ds));
    const big = toCsv(generateDataset({ seed: 5, rows: 5_000 }));
    await writeFile(path.join(dir, 'big.csv'), big.repeat(8));
  });

  afterAll(async () => {
    await dist?.closeDatasetProfilePool();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('gives the same profile and partials as in-process profiling', async () => {
    const input = { format: 'csv' as const, file: path.join(dir, 'data.csv'), chunk_rows: 1_000 };
    const w = ctxFor();
    const viaWorker = await dist.datasetProfileAnalyzer.run(input, w.ctx);
    const p = ctxFor();
    const inProcess = await dist.createDatasetProfileAnalyzer({ inProcess: true }).run(input, p.ctx);
    expect(viaWorker).toEqual(inProcess);
    expectExactProfile(viaWorker, expectedProfile(ds, 'csv'));
    expect(w.partials).toEqual(p.partials);
    expect(w.partials.map(([k]) => k)).toEqual(['rows-1000', 'rows-2000']);
    expect(w.progress.at(-1)).toBe(1);
  });

  it('profiles inline NDJSON', async () => {
    const out = await dist.datasetProfileAnalyzer.run({ format: 'ndjson', data: toNdjson(ds) }, ctxFor().ctx);
    expectExactProfile(out, expectedProfile(ds, 'ndjson'));
  });

  it('rejects promptly with signal.reason on cancel, and the pool recovers', async () => {
    const ac = new AbortController();
    const reason = new Error('canceled via worker');
    let abortedAt = 0;
    let seen = 0;
    const { ctx } = ctxFor(ac.signal, () => {
      if (++seen === 2) {
        abortedAt = Date.now();
        ac.abort(reason);
      }
      return Promise.resolve();
    });
    await expect(dist.datasetProfileAnalyzer.run({ format: 'csv', file: path.join(dir, 'big.csv'), chunk_rows: 1_000 }, ctx)).rejects.toBe(reason);
    expect(Date.now() - abortedAt).toBeLessThan(200);
    const again = await dist.datasetProfileAnalyzer.run({ format: 'csv', file: path.join(dir, 'data.csv') }, ctxFor().ctx);
    expect(again.rows).toBe(2_500);
  });

  it('keeps PermanentError permanent across the thread boundary', async () => {
    const err = await dist.datasetProfileAnalyzer.run({ format: 'csv', file: path.join(dir, 'missing.csv') }, ctxFor().ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(core.PermanentError);
    expect((err as Error).message).toMatch(/ENOENT/);
  });

  it('stops the worker and rethrows when storing a partial fails', async () => {
    const leaseLost = new Error('lease lost');
    const { ctx } = ctxFor(undefined, () => Promise.reject(leaseLost));
    await expect(dist.datasetProfileAnalyzer.run({ format: 'csv', file: path.join(dir, 'big.csv'), chunk_rows: 100 }, ctx)).rejects.toBe(leaseLost);
  });
});
