import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSqliteJobStore } from '../src/adapters/store/sqlite/sqliteJobStore.js';
import { driveStoreLoad } from './storeMicroLoad.js';

/**
 * Store-level microbenchmark: N noop jobs submitted, claimed in batches of 50 and finished as
 * completed through the SQLite store (group commit), with the submitter and the workers
 * running concurrently, as in `upshift serve`. Reports wall-clock and per-CPU-second rates
 * (the second is steadier on a shared machine).
 * Usage: npm run build && node dist/bench/sqliteStoreMicro.js [jobs=20000] [workers=8]
 */
const N = Number(process.argv[2] ?? 20_000);
const WORKERS = Number(process.argv[3] ?? 8);
const BATCH = 50;
const dir = mkdtempSync(join(tmpdir(), 'upshift-bench-'));
const store = createSqliteJobStore({ file: join(dir, 'bench.db') });
await store.migrate();
const { seconds: secs, cpuSeconds: cpuSecs, events } = await driveStoreLoad(store, N, WORKERS, BATCH);
const stats = await store.queueStats(Date.now());
await store.close();
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({ jobs: N, workers: WORKERS, batch: BATCH, seconds: +secs.toFixed(3), jobsPerSecond: Math.round(N / secs), cpuSeconds: +cpuSecs.toFixed(3), jobsPerCpuSecond: Math.round(N / cpuSecs), events, left: stats }));
