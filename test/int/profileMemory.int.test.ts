/**
 * Memory stays bounded independently of file size: a child `node --max-old-space-size=48`
 * profiles ~250 MB of CSV through the real analyzer (worker pool from dist/; worker threads
 * inherit the process-wide V8 heap limit). An unbounded buffer would die with a heap OOM;
 * one held off the V8 heap (Buffers) shows in the child's max RSS, which must stay within
 * half the file size above an idle node's under the same flags.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../helpers/datasetGen.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const distIndex = path.join(root, 'dist/src/analyzers/index.js');

/** Same rule as profileWorker.int: never measure stale compiled code. */
function distIsCurrent(): boolean {
  const srcDir = path.join(root, 'src/analyzers');
  if (!existsSync(path.join(root, 'dist/src/analyzers/datasetProfile/profileWorker.js'))) return false;
  return readdirSync(srcDir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .every((f) => {
      const js = path.join(root, 'dist/src/analyzers', f.replace(/\.ts$/, '.js'));
      return existsSync(js) && statSync(js).mtimeMs >= statSync(path.join(srcDir, f)).mtimeMs;
    });
}

const haveDist = distIsCurrent();
if (!haveDist) console.warn('[profileMemory.int] skipped: dist/ is missing or older than src: run `npm run build`');

const HEAP_MB = 48;
const FILE_BYTES = 250 * 1024 * 1024;
/**
 * The young generation is pinned too: V8 adds it to heap_size_limit, and newer V8s size it
 * from the machine's memory (Node 20: 16 MB semi-spaces, a 96 MB limit with 48 MB old space;
 * Node 24 on the 24 GB CI box: 64 MB semi-spaces, a 240 MB limit). 16 MB keeps Node 20's default
 * and the same bound on every Node version.
 */
const NODE_FLAGS = [`--max-old-space-size=${HEAP_MB}`, '--max-semi-space-size=16'];

const CHILD = `
import v8 from 'node:v8';
const { datasetProfileAnalyzer, closeDatasetProfilePool } = await import(process.argv[2]);
let partials = 0;
const ctx = {
  jobId: 'job_mem', orgId: 'org_mem', attempt: 1, signal: new AbortController().signal,
  logger: { info() {}, warn() {}, error() {}, debug() {} },
  progress() {},
  async partial() { partials++; },
};
const started = Date.now();
const out = await datasetProfileAnalyzer.run({ format: 'csv', file: process.argv[3], chunk_rows: 250000 }, ctx);
await closeDatasetProfilePool();
process.stdout.write(JSON.stringify({
  rows: out.rows, malformed: out.malformed_rows, partials, ms: Date.now() - started,
  heapLimitMb: v8.getHeapStatistics().heap_size_limit / 2 ** 20,
  maxRssMb: process.resourceUsage().maxRSS / 1024,
  columns: out.columns.map((c) => ({ name: c.name, type: c.type, est: c.distinct_is_estimate, top: c.top[0] })),
}));
`;

describe.skipIf(!haveDist)('dataset-profile memory bound', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'upshift-profile-mem-'));
  });
  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it(`profiles ${FILE_BYTES / 2 ** 20} MB of CSV with a ${HEAP_MB} MB heap`, async () => {
    const file = path.join(dir, 'big.csv');
    const script = path.join(dir, 'child.mjs');
    const generated = await writeLargeCsv(file, FILE_BYTES, 99);
    await writeFile(script, CHILD);
    const child = spawn(process.execPath, [...NODE_FLAGS, script, pathToFileURL(distIndex).href, file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect({ code, stderr: stderr.slice(-2000) }).toEqual({ code: 0, stderr: '' });
    const result = JSON.parse(stdout) as {
      rows: number;
      malformed: number;
      partials: number;
      ms: number;
      heapLimitMb: number;
      maxRssMb: number;
      columns: Array<{ name: string; type: string; est: boolean; top: unknown }>;
    };
    const idleRssMb = idleMaxRssMb();
    console.info(`[profileMemory.int] ${(generated.bytes / 2 ** 20).toFixed(0)} MB, ${result.rows} rows in ${result.ms} ms, heap limit ${result.heapLimitMb} MB, max RSS ${result.maxRssMb.toFixed(0)} MB (idle node: ${idleRssMb.toFixed(0)} MB)`);
    expect(result.heapLimitMb).toBeLessThan(FILE_BYTES / 2 ** 20 / 2);
    expect(result.maxRssMb - idleRssMb).toBeLessThan(FILE_BYTES / 2 ** 20 / 2);
    expect(result.rows).toBe(generated.rows);
    expect(result.malformed).toBe(0);
    expect(result.partials).toBe(Math.floor(generated.rows / 250_000));
    expect(result.columns.map((c) => [c.name, c.type, c.est])).toEqual([
      ['id', 'integer', true],
      ['label', 'string', true],
      ['amount', 'number', true],
      ['flag', 'boolean', false],
      ['note', 'string', false],
    ]);
  }, 120_000);
});

/** Max RSS of an idle node under the same flags: the runtime's own footprint on this Node version. */
function idleMaxRssMb(): number {
  const out = execFileSync(process.execPath, [...NODE_FLAGS, '-e', 'process.stdout.write(String(process.resourceUsage().maxRSS / 1024))'], {
    encoding: 'utf8',
  });
  return Number(out);
}

/**
 * Streams ~targetBytes of CSV to `file` (for the memory test) and returns its row count.
 * Rows carry quoted fields with delimiters/quotes/newlines and unicode, like real exports.
 */
async function writeLargeCsv(file: string, targetBytes: number, seed: number): Promise<{ rows: number; bytes: number }> {
  const r = mulberry32(seed);
  const out = createWriteStream(file, { highWaterMark: 1 << 20 });
  let bytes = 0;
  let rows = 0;
  let buf = 'id,label,amount,flag,note\n';
  while (bytes < targetBytes) {
    for (let k = 0; k < 2000; k++) {
      const u = r();
      buf += `${rows},user_${Math.floor(u * 1e6)},${(u * 1e4).toFixed(2)},${u < 0.5},"café, ""東京"" 😀 ${rows % 97}\nsecond line"\n`;
      rows++;
    }
    bytes += Buffer.byteLength(buf);
    if (!out.write(buf)) await once(out, 'drain');
    buf = '';
  }
  out.end();
  await once(out, 'finish');
  return { rows, bytes };
}
