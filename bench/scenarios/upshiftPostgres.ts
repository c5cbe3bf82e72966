import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadConfig } from '../../src/config/config.js';
import { defineAnalyzer } from '../../src/core/analyzer.js';
import { parseOrgId } from '../../src/core/ids.js';
import { createUpshift, type Upshift } from '../../src/main.js';
import { drive, type Peer } from './peerCommon.js';

/**
 * Upshift in scale mode on the local PostgreSQL (full event history, result rows, notifications
 * as configured by default), library API, no HTTP. Same CLI and driver as the peers
 * (peerCommon.ts), in its own schema per run, dropped at the end:
 *   throughput <N> <concurrency> · latency <rate/s> <seconds>
 * "start" = the analyzer is invoked (as the peers' handler); "done" = the job.completed event
 * committed (the store's commit hook fires after COMMIT), so every timed completion is durable.
 * BENCH_UPSHIFT_DISPATCH=bullmq: PostgreSQL + BullMQ dispatch (added when that adapter lands).
 */
const url = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `bench_up_${process.pid}_${Date.now()}`;
const [mode = 'throughput', , b = '50'] = process.argv.slice(2);
const concurrency = mode === 'throughput' ? b : '50';
const org = parseOrgId('bench');

await drive('upshift-postgres', async (): Promise<Peer> => {
  const dir = mkdtempSync(join(tmpdir(), 'upshift-bench-pg-'));
  let onStart: (i: number) => void = () => undefined;
  // The built-in noop (returns its input as the result) plus the start hook.
  const noop = defineAnalyzer<{ i: number }, { i: number }>({
    name: 'bench-noop',
    version: '1.0.0',
    inputSchema: {},
    run: (input) => {
      onStart(input.i);
      return Promise.resolve(input);
    },
  });
  const config = loadConfig({}, {
    UPSHIFT_DATABASE_URL: url,
    UPSHIFT_DATABASE_SCHEMA: schema,
    UPSHIFT_DATA_DIR: dir,
    UPSHIFT_LOG_LEVEL: 'warn',
    UPSHIFT_WORKER_CONCURRENCY: concurrency,
    UPSHIFT_POLL_MS: '1000',
  });
  const up: Upshift = await createUpshift({ config, http: false, analyzers: [noop] });
  const numberOf = new Map<string, number>();
  const submit = async (i: number): Promise<void> => {
    const { job } = await up.service.submit(org, { analyzer: 'bench-noop', input: { i } });
    numberOf.set(job.jobId, i);
  };
  return {
    async addBulk(items) {
      await Promise.all(items.map(submit));
    },
    addOne: submit,
    async start(_c, started, done) {
      onStart = started;
      up.store.onCommitted((events) => {
        for (const e of events) {
          if (e.type !== 'job.completed') continue;
          const i = numberOf.get(e.jobId);
          if (i !== undefined) done(i);
        }
      });
      await up.start();
    },
    async close() {
      await up.close();
      rmSync(dir, { recursive: true, force: true });
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    },
  };
});
