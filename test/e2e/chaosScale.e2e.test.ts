import { describe, expect, it } from 'vitest';
import { formatScaleReport, runScaleChaos } from '../../bench/chaos/scale.js';
import { requirePostgres, requireRedis } from '../helpers/services.js';
import { expectCleanChaosRun } from '../helpers/chaos.js';

// The short form of `npm run chaos -- --mode scale` (docs/chaos.md): the same runner, on a
// PRIVATE PostgreSQL cluster and a PRIVATE redis-server (own temp dirs and ports; the PostgreSQL
// and Redis binaries of the machine, never its running services), 2 `upshift api` + 2 `upshift
// worker` processes with BullMQ dispatch, 1,000 sleep jobs with partials and cancels, 5 SIGKILLs
// of random API and worker processes (each restarted), PostgreSQL stopped and Redis killed for
// 3 s each mid-run. Every invariant checked from the store must hold.
// requirePostgres/requireRedis: the same binaries back the loopback services, so when those are
// missing the suite is skipped with a banner (and fails under CI=true).
// UPSHIFT_CHAOS_SEED reproduces a failing run.
const seed = Number(process.env.UPSHIFT_CHAOS_SEED ?? 20261203);
const pgUrl = await requirePostgres();
const redisUrl = await requireRedis();

describe.skipIf(!pgUrl || !redisUrl)('chaos (scale mode, short form)', () => {
  it('1,000 jobs, 5 SIGKILLs of API and worker processes, PostgreSQL and Redis outages: zero invariant violations', async () => {
    const report = await runScaleChaos({
      jobs: 1000,
      kills: 5,
      seed,
      pgOutageMs: 3000,
      redisOutageMs: 3000,
      timeoutMs: 200_000,
      drainTimeoutMs: 30_000,
      log: () => undefined,
    });
    const table = formatScaleReport(report);
    expect(report.kills.api + report.kills.worker, table).toBe(5);
    expect(report.outages, table).toHaveLength(2);
    expectCleanChaosRun(report, 1000, table);
  }, 240_000);
});
