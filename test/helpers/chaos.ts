import { expect } from 'vitest';
import type { Violation } from '../../bench/chaos/embedded.js';

/**
 * What every chaos short form asserts once its run is over (embedded and scale): all submits
 * answered, nothing left queued or running, and no invariant violated — each failure message
 * carries the run's whole report table.
 */
export function expectCleanChaosRun(
  report: { readonly jobsSubmitted: number; readonly byStatus: Record<string, number>; readonly invariants: readonly Violation[] },
  jobs: number,
  table: string,
): void {
  expect(report.jobsSubmitted, table).toBe(jobs);
  expect(report.byStatus.queued ?? 0, table).toBe(0);
  expect(report.byStatus.running ?? 0, table).toBe(0);
  expect(
    report.invariants.filter((v) => v.count > 0).map((v) => `${v.name}: ${v.count} (${v.examples.join('; ')})`),
    table,
  ).toEqual([]);
}
