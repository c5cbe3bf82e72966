import { createRequire } from 'node:module';
import pg from 'pg';
import PgBoss from 'pg-boss';
import { drive, type Peer } from './peerCommon.js';

/**
 * pg-boss 10 peer on the local PostgreSQL, own schema per run (dropped at the end).
 *   default: `concurrency` × work(name, handler) — batchSize 1, pollingInterval 2 s (defaults).
 *   tuned (BENCH_PGBOSS_TUNED=1): batch fetching as its docs recommend — `concurrency` workers,
 *     batchSize 100, pollingIntervalSeconds 0.5 (the minimum).
 * pg-boss 10 completes a fetched batch without awaiting it; "done" is recorded when its
 * complete() call (the database write) resolves, by wrapping Manager.prototype.complete.
 */
const tuned = process.env.BENCH_PGBOSS_TUNED === '1';
const url = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `bench_pgboss_${process.pid}_${Date.now()}`;
const name = 'noop';

const require = createRequire(import.meta.url);
const Manager = require('pg-boss/src/manager.js') as { prototype: { complete: (...a: unknown[]) => Promise<unknown> } };

await drive(tuned ? 'pg-boss-tuned' : 'pg-boss-default', async (): Promise<Peer> => {
  const boss = new PgBoss({ connectionString: url, schema, max: 20, supervise: false, schedule: false });
  boss.on('error', (e: Error) => process.stderr.write(`pg-boss error: ${e.message}\n`));
  await boss.start();
  await boss.createQueue(name);
  const idToI = new Map<string, number>();
  let onDoneRef: ((i: number) => void) | undefined;
  const orig = Manager.prototype.complete;
  Manager.prototype.complete = async function (this: unknown, ...args: unknown[]) {
    const r = await orig.apply(this, args);
    const ids = args[1];
    for (const id of Array.isArray(ids) ? ids : [ids]) {
      const i = idToI.get(id as string);
      if (i !== undefined) {
        idToI.delete(id as string);
        onDoneRef?.(i);
      }
    }
    return r;
  };
  return {
    async addBulk(items) {
      await boss.insert(items.map((i) => ({ name, data: { i } })));
    },
    async addOne(i) {
      await boss.send(name, { i });
    },
    async start(concurrency, onStart, onDone) {
      onDoneRef = onDone;
      const handler = async (jobs: PgBoss.Job<{ i: number }>[]) => {
        for (const j of jobs) {
          idToI.set(j.id, j.data.i);
          onStart(j.data.i);
        }
      };
      for (let k = 0; k < concurrency; k++) {
        if (tuned) await boss.work<{ i: number }>(name, { batchSize: 100, pollingIntervalSeconds: 0.5 }, handler);
        else await boss.work<{ i: number }>(name, handler);
      }
    },
    async close() {
      await boss.stop({ graceful: false, wait: true, timeout: 2000 }).catch(() => {});
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    },
  };
});
