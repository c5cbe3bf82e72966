import pg from 'pg';
import { Logger, makeWorkerUtils, run, type Runner, type WorkerUtils } from 'graphile-worker';
import { drive, type Peer } from './peerCommon.js';

/**
 * graphile-worker 0.18 peer on the local PostgreSQL, own schema per run (dropped at the end).
 * (0.18 is ESM-only and needs Node >= 22.18; the API used here is unchanged from 0.17.)
 *   default: run({ concurrency, taskList }) with maxPoolSize max(10, concurrency + 2) (its
 *     documented pool advice), logging limited to warnings/errors (as for Upshift) — everything else default (no local queue, no batched completion).
 *   tuned (BENCH_GW_TUNED=1), per its performance docs: localQueue.size = 4 × concurrency (docs: start
 *     at concurrency + 1, much higher for very fast jobs), completeJobBatchDelay 0, failJobBatchDelay 0.
 * "done" = its job:complete event, which fires once the completion is handed to the (possibly
 * batched) writer. In throughput mode the clock stops only once the jobs table is empty
 * (graphile-worker deletes completed jobs), so every completion is durable when timed.
 */
const tuned = process.env.BENCH_GW_TUNED === '1';
const url = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `bench_gw_${process.pid}_${Date.now()}`;
const task = 'noop';
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') process.stderr.write(`graphile-worker ${level}: ${message}\n`);
});

await drive(tuned ? 'graphile-worker-tuned' : 'graphile-worker-default', async (): Promise<Peer> => {
  const utils: WorkerUtils = await makeWorkerUtils({ connectionString: url, schema, logger });
  await utils.migrate();
  let runner: Runner | undefined;
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  return {
    async addBulk(items) {
      await utils.addJobs(items.map((i) => ({ identifier: task, payload: { i } })));
    },
    async addOne(i) {
      await utils.addJob(task, { i });
    },
    async start(concurrency, onStart, onDone) {
      const maxPoolSize = Math.max(10, concurrency + 2);
      runner = await run({
        connectionString: url,
        schema,
        concurrency,
        maxPoolSize,
        noHandleSignals: true,
        logger,
        taskList: {
          [task]: async (payload) => {
            onStart((payload as { i: number }).i);
          },
        },
        preset: tuned
          ? { worker: { localQueue: { size: concurrency * 4 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } }
          : {},
      });
      runner.events.on('job:complete', ({ job }) => onDone((job.payload as { i: number }).i));
    },
    async settle(deadline) {
      while (performance.now() < deadline) {
        const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}._private_jobs`);
        if (Number(rows[0]?.n) === 0) return;
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    async close() {
      await runner?.stop().catch(() => {});
      await utils.release();
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await pool.end();
    },
  };
});
