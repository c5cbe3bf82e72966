import pg from 'pg';
import { PgBoss, type Job, type WorkOptions } from 'pg-boss';
// Not part of pg-boss's documented API (its package has no "exports" map, so the module is
// reachable): the class whose complete() its workers await after a handler resolves, see below.
import Manager from 'pg-boss/dist/manager.js';
import { drive, type Peer } from './peerCommon.js';

/**
 * pg-boss 12 peer on the local PostgreSQL, own schema per run (dropped at the end).
 *   default: one work(name, { localConcurrency: concurrency }, handler) — v12's way to get c workers
 *     in one process ("Number of workers to spawn for this queue within the current Node.js process.
 *     Each worker polls and processes jobs independently"); everything else its defaults: batchSize 1,
 *     pollingIntervalSeconds 2, no burst, no LISTEN/NOTIFY.
 *   tuned (BENCH_PGBOSS_TUNED=1): batch fetching as its docs recommend — the same `concurrency`
 *     workers, batchSize 100, pollingIntervalSeconds 0.5 (the minimum, "Must be >= 0.5"),
 *     burstWhenBatchFull (v12: "While each fetch returns a full batchSize batch … the worker keeps
 *     fetching continuously with no delay"), and its LISTEN/NOTIFY wake-ups (v12: constructor
 *     useListenNotify + queue notify: "workers on notify-enabled queues are woken the moment a job is
 *     created, instead of waiting out their polling interval"; polling stays on as the backstop at
 *     notifyPollingIntervalSeconds, default 30).
 * Both: supervise and schedule off (no maintenance or cron loops during the run).
 * pg-boss 12 awaits the handler, then writes the batch's completion with Manager#complete() and
 * awaits it before the worker fetches again; "done" is recorded when that complete() call (the
 * database write) resolves, by wrapping Manager.prototype.complete. No completion event exists
 * (its events are error, warning, wip, stopped, bam, flow).
 */
const tuned = process.env.BENCH_PGBOSS_TUNED === '1';
const url = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `bench_pgboss_${process.pid}_${Date.now()}`;
const name = 'noop';

await drive(tuned ? 'pg-boss-tuned' : 'pg-boss-default', async (): Promise<Peer> => {
  const boss = new PgBoss({
    connectionString: url,
    schema,
    max: 20,
    supervise: false,
    schedule: false,
    ...(tuned ? { useListenNotify: true } : {}),
  });
  boss.on('error', (e: Error) => process.stderr.write(`pg-boss error: ${e.message}\n`));
  boss.on('warning', (w) => process.stderr.write(`pg-boss warning: ${w.message}\n`));
  await boss.start();
  await boss.createQueue(name, tuned ? { notify: true } : {});
  const idToI = new Map<string, number>();
  let onDoneRef: ((i: number) => void) | undefined;
  const orig = Manager.prototype.complete;
  Manager.prototype.complete = async function (this: Manager, ...args: Parameters<typeof orig>) {
    const r = await orig.apply(this, args);
    // Workers pass the fetched jobs (id + retryCount); a caller may pass bare ids.
    const ids = args[1];
    for (const id of Array.isArray(ids) ? ids : [ids]) {
      const key = typeof id === 'string' ? id : id.id;
      const i = idToI.get(key);
      if (i !== undefined) {
        idToI.delete(key);
        onDoneRef?.(i);
      }
    }
    return r;
  };
  return {
    async addBulk(items) {
      await boss.insert(name, items.map((i) => ({ data: { i } })));
    },
    async addOne(i) {
      await boss.send(name, { i });
    },
    async start(concurrency, onStart, onDone) {
      onDoneRef = onDone;
      const handler = async (jobs: Job<{ i: number }>[]) => {
        for (const j of jobs) {
          idToI.set(j.id, j.data.i);
          onStart(j.data.i);
        }
      };
      const options: WorkOptions = tuned
        ? { localConcurrency: concurrency, batchSize: 100, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true }
        : { localConcurrency: concurrency };
      await boss.work<{ i: number }>(name, options, handler);
    },
    async close() {
      await boss.stop({ graceful: false, timeout: 2000 }).catch(() => {});
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    },
  };
});
