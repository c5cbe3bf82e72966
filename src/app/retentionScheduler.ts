import { coerceError } from '../core/errors.js';
import type { RetentionReport } from '../core/retention.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { Metrics } from '../ports/metrics.js';
import type { RetentionStore } from '../ports/retentionStore.js';
import { runRetention } from './retention.js';

export interface RetentionScheduleOptions {
  readonly store: RetentionStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Receives every run's report and exit code (0 ok, 1 failed or stopped early). */
  readonly metrics?: Pick<Metrics, 'retentionRun'>;
  /** Time between the end of one run and the start of the next (> 0). */
  readonly intervalMs: number;
  /** Delay of the first run after start(). Default: min(intervalMs, 60 s). */
  readonly initialDelayMs?: number;
  readonly resultsTtlMs: number;
  readonly eventsTtlMs: number;
  /** null: notifications are kept. */
  readonly notificationsTtlMs: number | null;
  readonly batchSize?: number;
  readonly maxRowsPerBatch?: number;
  readonly pauseMs?: number;
}

/**
 * Runs live retention inside the server on an interval (`UPSHIFT_RETENTION_INTERVAL_MS`).
 * Runs never overlap; a failed run is logged and counted (exit code 1) and the schedule goes
 * on. stop() aborts a run between two batches and waits for it, so shutdown never leaves a
 * transaction half-queued behind a closed store.
 */
export class RetentionScheduler {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running: Promise<RetentionReport | null> | null = null;
  private abort: AbortController | null = null;
  private stopped = false;

  constructor(private readonly o: RetentionScheduleOptions) {}

  start(): void {
    if (this.stopped || this.timer) return;
    this.schedule(this.o.initialDelayMs ?? Math.min(this.o.intervalMs, 60_000));
  }

  /** Runs once now (or joins the run in progress). Resolves with its report, null on failure. */
  runNow(): Promise<RetentionReport | null> {
    this.running ??= this.runOnce().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.abort?.abort();
    await this.running;
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.runNow().then(() => {
        if (!this.stopped) this.schedule(this.o.intervalMs);
      });
    }, ms);
    // The schedule alone must not keep the process alive.
    this.timer.unref?.();
  }

  private async runOnce(): Promise<RetentionReport | null> {
    const { o } = this;
    const abort = new AbortController();
    this.abort = abort;
    try {
      const report = await runRetention(
        { store: o.store, clock: o.clock },
        {
          now: o.clock.now(),
          resultsTtlMs: o.resultsTtlMs,
          eventsTtlMs: o.eventsTtlMs,
          notificationsTtlMs: o.notificationsTtlMs,
          dryRun: false,
          signal: abort.signal,
          ...(o.batchSize !== undefined && { batchSize: o.batchSize }),
          ...(o.maxRowsPerBatch !== undefined && { maxRowsPerBatch: o.maxRowsPerBatch }),
          ...(o.pauseMs !== undefined && { pauseMs: o.pauseMs }),
        },
      );
      const exitCode = report.completed ? 0 : 1;
      o.logger.info({ retention: report, exit_code: exitCode }, report.completed ? 'retention run finished' : 'retention run stopped early');
      o.metrics?.retentionRun(report, exitCode);
      return report;
    } catch (e) {
      o.logger.error({ err: coerceError(e), exit_code: 1 }, 'retention run failed');
      o.metrics?.retentionRun(null, 1);
      return null;
    } finally {
      this.abort = null;
    }
  }
}
