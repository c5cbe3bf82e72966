import { Counter, Gauge, type Registry } from 'prom-client';
import { RETENTION_KINDS } from '../../core/retention.js';
import type { Metrics, RetentionReportLike } from '../../ports/metrics.js';
import { cachedSource } from './cachedSource.js';

export interface FeatureMetrics extends Omit<Metrics, 'retentionRun'> {
  retentionRun(report: RetentionReportLike | null, exitCode: number, nowMs: number): void;
}

/**
 * Metrics that retention and notification delivery feed through the `Metrics` port. Counters
 * start at 0; the gauges are registered on first use: an instance that never ran retention
 * exports no "last exit code 0 at 1970", and one without notifications no "0 jobs missing one".
 */
export function createFeatureMetrics(registry: Registry, cacheMs: number, onProviderError: () => void): FeatureMetrics {
  const registers = [registry];

  // Counters exist from the start at 0, so rate()/increase() see the first run's increment.
  const retentionDeleted = new Counter({
    name: 'upshift_retention_deleted_total',
    help: 'Rows deleted by live retention runs, by kind (results, events, notifications).',
    labelNames: ['kind'] as const,
    registers,
  });
  for (const kind of RETENTION_KINDS) retentionDeleted.inc({ kind }, 0);
  const retentionRuns = new Counter({
    name: 'upshift_retention_runs_total',
    help: 'Finished retention runs by mode (live, dry_run) and outcome (success, failure).',
    labelNames: ['mode', 'outcome'] as const,
    registers,
  });
  for (const mode of ['live', 'dry_run']) for (const outcome of ['success', 'failure']) retentionRuns.inc({ mode, outcome }, 0);
  const retentionExitCode = new Gauge({
    name: 'upshift_retention_last_exit_code',
    help: 'Exit code of the last retention run (0 = success).',
    registers: [],
  });
  const retentionLastRun = new Gauge({
    name: 'upshift_retention_last_run_timestamp_seconds',
    help: 'Unix time at which the last retention run finished.',
    registers: [],
  });
  let retentionRegistered = false;

  const delivered = new Counter({
    name: 'upshift_notifications_delivered_total',
    help: 'Notification delivery attempts by channel (in_app, webhook) and resulting status.',
    labelNames: ['channel', 'status'] as const,
    registers,
  });
  // The SPEC's delivery states; other statuses appear on first use.
  for (const channel of ['in_app', 'webhook']) for (const status of ['delivered', 'failed']) delivered.inc({ channel, status }, 0);

  let provider: (() => Promise<number>) | null = null;
  const withoutInApp = new Gauge({
    name: 'upshift_terminal_jobs_without_in_app_notification',
    help: 'Terminal jobs past the delivery grace period that have no in-app notification (SPEC §4.1: must be 0). Store-wide.',
    registers: [],
    async collect() {
      if (!provider) return;
      try {
        this.set(await provider());
      } catch {
        onProviderError();
      }
    },
  });

  return {
    retentionRun(report, exitCode, nowMs) {
      if (!retentionRegistered) {
        retentionRegistered = true;
        registry.registerMetric(retentionExitCode);
        registry.registerMetric(retentionLastRun);
      }
      // A failed live run may still have deleted some batches: its report says how many.
      if (report !== null && !report.dry_run) {
        for (const kind of RETENTION_KINDS) retentionDeleted.inc({ kind }, nonNegative(report[kind].delete_count));
      }
      retentionRuns.inc({ mode: report?.dry_run === true ? 'dry_run' : 'live', outcome: exitCode === 0 ? 'success' : 'failure' });
      retentionExitCode.set(exitCode);
      retentionLastRun.set(nowMs / 1000);
    },
    notificationDelivered(channel, status, count = 1) {
      delivered.inc({ channel, status }, count);
    },
    setTerminalWithoutInAppProvider(fn) {
      const first = provider === null;
      provider = cachedSource(fn, cacheMs);
      if (first) registry.registerMetric(withoutInApp);
    },
  };
}

function nonNegative(n: number): number {
  return Number.isFinite(n) && n > 0 ? n : 0;
}
