import { describe, expect, it } from 'vitest';
import { RetentionScheduler } from '../../src/app/retentionScheduler.js';
import { UpshiftError } from '../../src/core/errors.js';
import { asJobId, asOrgId } from '../../src/core/ids.js';
import type { RetentionReportLike } from '../../src/ports/metrics.js';
import { ManualClock } from '../../src/ports/clock.js';
import { silentLogger } from '../../src/ports/logger.js';
import type { RetentionStore, TerminalJobPage } from '../../src/ports/retentionStore.js';

const T0 = Date.UTC(2026, 0, 1);
const page = (i: number, last: boolean): TerminalJobPage => ({
  jobs: [{ orgId: asOrgId('o'), jobId: asJobId(`job_${String(i).padStart(26, '0')}`), status: 'completed', finishedAt: T0, resultCount: 1, eventCount: 3, notificationCount: 1 }],
  examined: 1,
  next: last ? null : { orgId: asOrgId('o'), jobId: asJobId(`job_${String(i).padStart(26, '0')}`) },
});

function recorder() {
  const runs: Array<{ report: RetentionReportLike | null; exitCode: number }> = [];
  return { runs, metrics: { retentionRun: (report: RetentionReportLike | null, exitCode: number) => runs.push({ report, exitCode }) } };
}

describe('RetentionScheduler', () => {
  it('runs on the interval, reports each run, and keeps going after a failure', async () => {
    let call = 0;
    const store: RetentionStore = {
      scanTerminalJobs: async () => {
        call++;
        if (call === 1) throw new UpshiftError('STORE_UNAVAILABLE', 'busy');
        return page(call, true);
      },
      purgeJobData: async (cmd) => ({ resultsDeleted: 1, eventsDeleted: 3, notificationsDeleted: cmd.notificationsCutoff === null ? 0 : 1, jobsDone: cmd.jobs.length }),
    };
    const { runs, metrics } = recorder();
    const s = new RetentionScheduler({ store, clock: new ManualClock(T0 + 10_000), logger: silentLogger, metrics, intervalMs: 10, initialDelayMs: 1, resultsTtlMs: 0, eventsTtlMs: 0, notificationsTtlMs: null, pauseMs: 0 });
    s.start();
    const deadline = Date.now() + 5000;
    while (runs.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await s.stop();
    expect(runs[0]).toEqual({ report: null, exitCode: 1 });
    expect(runs[1]).toMatchObject({ exitCode: 0, report: { dry_run: false, results: { delete_count: 1 }, events: { delete_count: 3 } } });
    const n = runs.length;
    await new Promise((r) => setTimeout(r, 50));
    expect(runs.length).toBe(n); // stopped: no more runs
  });

  it('stop() aborts a run between batches and waits for it; the run reports exit code 1', async () => {
    let scans = 0;
    const store: RetentionStore = {
      scanTerminalJobs: async () => page(++scans, false), // endless
      purgeJobData: async (cmd) => ({ resultsDeleted: 1, eventsDeleted: 3, notificationsDeleted: cmd.notificationsCutoff === null ? 0 : 1, jobsDone: cmd.jobs.length }),
    };
    const { runs, metrics } = recorder();
    const s = new RetentionScheduler({ store, clock: new ManualClock(T0 + 10_000), logger: silentLogger, metrics, intervalMs: 60_000, resultsTtlMs: 0, eventsTtlMs: 0, notificationsTtlMs: null, pauseMs: 1 });
    const running = s.runNow();
    expect(s.runNow()).toBe(running); // joins the run in progress
    await new Promise((r) => setTimeout(r, 30));
    await s.stop();
    const report = await running;
    expect(report).toMatchObject({ completed: false });
    expect(runs).toHaveLength(1);
    expect(runs[0]!.exitCode).toBe(1);
    const scansAtStop = scans;
    await new Promise((r) => setTimeout(r, 20));
    expect(scans).toBe(scansAtStop);
  });
});
