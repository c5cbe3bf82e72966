import { describe, expect, it } from 'vitest';
import { formatReport, runChaos, violations } from '../../bench/chaos/embedded.js';
import { expectCleanChaosRun } from '../helpers/chaos.js';

// The short form of `npm run chaos` (docs/chaos.md): the same runner, real server processes on
// one SQLite file, 1,000 sleep jobs and 5 SIGKILLs + restarts; every invariant checked from the
// store must hold. Everything waits on conditions (health, store state), never on fixed sleeps.
// UPSHIFT_CHAOS_SEED reproduces a failing run.
const seed = Number(process.env.UPSHIFT_CHAOS_SEED ?? 20261123);

describe('chaos (embedded, short form)', () => {
  it('1,000 jobs, 5 SIGKILLs with restarts: every job terminal, zero invariant violations', async () => {
    const report = await runChaos({
      jobs: 1000,
      kills: 5,
      seed,
      // Short jobs and a short lease, so each kill costs ~1 s of recovery on a loaded machine.
      leaseMs: 1000,
      heartbeatMs: 200,
      sleepMinMs: 2,
      sleepMaxMs: 20,
      longSleepMs: 400,
      timeoutMs: 100_000,
      drainTimeoutMs: 20_000,
      log: () => undefined,
    });
    const table = formatReport(report);
    expect(report.kills, table).toBe(5);
    expectCleanChaosRun(report, 1000, table);
    expect(violations(report), table).toBe(0);
  }, 120_000);
});
