import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { EVENT_TYPES } from '../../core/events.js';
import type { Clock } from '../../ports/clock.js';
import type { EventFeed } from '../../ports/eventFeed.js';
import type { QueueStats } from '../../ports/jobStore.js';
import type { HttpMetrics, Metrics, RetentionReportLike } from '../../ports/metrics.js';
import { cachedSource } from './cachedSource.js';
import { createFeatureMetrics } from './featureMetrics.js';

/**
 * Prometheus metrics of one Upshift instance (docs/metrics.md lists them all). Each instance
 * has its own Registry (never prom-client's global one), so several instances in one process
 * do not collide. Job counters react to committed events from the EventFeed; queue and worker
 * gauges are read on scrape.
 */
export interface PromMetrics extends Metrics, HttpMetrics {
  readonly registry: Registry;
  /**
   * One worker attempt settled (the WorkerRuntime's onSettled hook). `status` is the committed
   * outcome: completed, failed, canceled, retry, or lease_lost (another writer won).
   */
  jobSettled(analyzer: string, status: string, durationMs: number): void;
  /** A projection runner of this process committed a batch of `events` events. */
  projectionApplied(projection: string, events: number): void;
  /** Stops listening to the feed. */
  close(): void;
}

export interface PromMetricsOptions {
  /** Queue depth and lag, read on scrape (cached for `scrapeCacheMs`). */
  readonly queue?: { queueStats(now: number): Promise<QueueStats> };
  /** Clock passed to queueStats (the app's clock). */
  readonly clock?: Clock;
  /** Committed job events to count. */
  readonly feed?: EventFeed;
  /** Worker slots of this process, read on scrape; null = no worker here. */
  readonly workerSlots?: () => { readonly busy: number; readonly total: number; readonly held: number } | null;
  /** How long a scrape-time store query is reused (default 1000 ms). */
  readonly scrapeCacheMs?: number;
  /** Read-model checkpoints and the head position, read on scrape (cached like the queue). */
  readonly projections?: () => Promise<readonly { readonly name: string; readonly position: number; readonly head: number }[]>;
  /** Node process metrics (prom-client defaults, minus the ones promtool rejects). Default true. */
  readonly processMetrics?: boolean;
}

/** Seconds. Boundaries at 1.2 s and 2.5 s make the permalink p95 alert thresholds exact. */
export const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.2, 1.5, 2, 2.5, 5, 10, 30];
/** Seconds; analyzers run from milliseconds to the default 15-minute timeout. */
export const JOB_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600];

/**
 * prom-client's default gauges named `_total`, which `promtool check metrics` rejects
 * (DEPENDENCIES.md); the same numbers stay available without the suffix
 * (`nodejs_active_handles`, `nodejs_active_requests`, `nodejs_active_resources`).
 */
const PROMTOOL_REJECTED = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export function createPromMetrics(opts: PromMetricsOptions = {}): PromMetrics {
  const registry = new Registry();
  const registers = [registry];
  const cacheMs = opts.scrapeCacheMs ?? 1000;
  const clock = opts.clock ?? { now: () => Date.now() };

  if (opts.processMetrics !== false) {
    collectDefaultMetrics({ register: registry });
    for (const name of PROMTOOL_REJECTED) registry.removeSingleMetric(name);
  }

  const scrapeErrors = new Counter({
    name: 'upshift_metrics_scrape_errors_total',
    help: 'Scrape-time sources (store queries) that failed; the affected gauges keep their last value.',
    labelNames: ['source'] as const,
    registers,
  });

  // --- jobs --------------------------------------------------------------------------------
  const jobEvents = new Counter({
    name: 'upshift_job_events_total',
    help: 'Committed job events (state transitions, progress, partials) seen by this process, by event type.',
    labelNames: ['type'] as const,
    registers,
  });
  for (const type of EVENT_TYPES) jobEvents.inc({ type }, 0);
  // One increment per type and commit, not per event: a commit carries hundreds of events under load.
  const offFeed = opts.feed?.subscribe((events) => {
    let type = '';
    let n = 0;
    for (const e of events) {
      if (e.type === type) n++;
      else {
        if (n > 0) jobEvents.inc({ type }, n);
        type = e.type;
        n = 1;
      }
    }
    if (n > 0) jobEvents.inc({ type }, n);
  });

  const jobsFinished = new Counter({
    name: 'upshift_jobs_finished_total',
    help: 'Job attempts settled by this process\'s workers, by analyzer and committed outcome (completed, failed, canceled, retry, lease_lost).',
    labelNames: ['analyzer', 'status'] as const,
    registers,
  });
  const jobDuration = new Histogram({
    name: 'upshift_job_duration_seconds',
    help: 'Run time of one job attempt (claim to settled outcome), by analyzer and committed outcome.',
    labelNames: ['analyzer', 'status'] as const,
    buckets: JOB_BUCKETS,
    registers,
  });

  const settled = new Map<string, { finished: { inc(): void }; duration: { observe(v: number): void } }>();

  // --- queue (read on scrape) --------------------------------------------------------------
  const queue = opts.queue;
  const stats = queue ? cachedSource(() => queue.queueStats(clock.now()), cacheMs) : null;
  const readStats = async (): Promise<QueueStats | null> => {
    if (!stats) return null;
    try {
      return await stats();
    } catch {
      scrapeErrors.inc({ source: 'queue_stats' });
      return null;
    }
  };
  if (stats) {
    new Gauge({
      name: 'upshift_queue_jobs',
      help: 'Jobs in the store by status (queued includes jobs waiting for a retry backoff). Store-wide: every instance reports the same value.',
      labelNames: ['status'] as const,
      registers,
      async collect() {
        const s = await readStats();
        if (!s) return;
        this.set({ status: 'queued' }, s.queued);
        this.set({ status: 'running' }, s.running);
      },
    });
    new Gauge({
      name: 'upshift_queue_oldest_ready_age_seconds',
      help: 'Queue lag: age of the oldest job that is ready to run (run_at <= now) but not claimed; 0 when none. Store-wide.',
      registers,
      async collect() {
        const s = await readStats();
        if (s) this.set(s.oldestReadyAgeMs / 1000);
      },
    });
  }

  // --- worker (read on scrape) -------------------------------------------------------------
  const slots = opts.workerSlots;
  new Gauge({
    name: 'upshift_worker_busy_slots',
    help: 'Job attempts this process is running now.',
    registers,
    collect() {
      this.set(slots?.()?.busy ?? 0);
    },
  });
  new Gauge({
    name: 'upshift_worker_held_jobs',
    help: 'Claimed jobs this process holds for a free slot (worker prefetch): running in the store, not started yet.',
    registers,
    collect() {
      this.set(slots?.()?.held ?? 0);
    },
  });
  new Gauge({
    name: 'upshift_worker_slots',
    help: 'Job attempts this process can run at once (worker concurrency; 0 without a worker).',
    registers,
    collect() {
      this.set(slots?.()?.total ?? 0);
    },
  });

  // --- read models (docs/projections.md) ------------------------------------------------------
  const projections = opts.projections ? cachedSource(opts.projections, cacheMs) : null;
  const readProjections = async (): Promise<readonly { name: string; position: number; head: number }[]> => {
    if (!projections) return [];
    try {
      return await projections();
    } catch {
      scrapeErrors.inc({ source: 'projections' });
      return [];
    }
  };
  if (projections) {
    new Gauge({
      name: 'upshift_projection_lag_events',
      help: 'Read-model lag: newest committed event position minus the position the projection has applied (0 = up to date). Store-wide.',
      labelNames: ['projection'] as const,
      registers,
      async collect() {
        for (const p of await readProjections()) this.set({ projection: p.name }, Math.max(0, p.head - p.position));
      },
    });
    new Gauge({
      name: 'upshift_projection_position',
      help: 'Position of the last event the projection applied (its checkpoint). Store-wide.',
      labelNames: ['projection'] as const,
      registers,
      async collect() {
        for (const p of await readProjections()) this.set({ projection: p.name }, p.position);
      },
    });
  }
  const projectionEvents = new Counter({
    name: 'upshift_projection_events_applied_total',
    help: 'Events the projection runners of this process applied (committed batches only).',
    labelNames: ['projection'] as const,
    registers,
  });

  // --- HTTP --------------------------------------------------------------------------------
  const httpDuration = new Histogram({
    name: 'upshift_http_request_duration_seconds',
    help: 'HTTP request duration by method, route template (unmatched when no route matched) and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: HTTP_BUCKETS,
    registers,
  });

  // --- fed by other features (retention, notifications) ------------------------------------
  const features = createFeatureMetrics(registry, cacheMs, () => scrapeErrors.inc({ source: 'terminal_without_in_app' }));

  return {
    registry,
    contentType: registry.contentType,
    scrape: () => registry.metrics(),
    httpRequest(method, route, statusCode, seconds) {
      httpDuration.observe({ method, route, status_code: String(statusCode) }, seconds);
    },
    jobSettled(analyzer, status, durationMs) {
      // Children cached per label pair: prom-client hashes the label object on every call otherwise.
      const key = `${analyzer}\u0000${status}`;
      let c = settled.get(key);
      if (!c) {
        c = { finished: jobsFinished.labels({ analyzer, status }), duration: jobDuration.labels({ analyzer, status }) };
        settled.set(key, c);
      }
      c.finished.inc();
      c.duration.observe(Math.max(0, durationMs) / 1000);
    },
    projectionApplied(projection, events) {
      projectionEvents.inc({ projection }, events);
    },
    retentionRun(report: RetentionReportLike | null, exitCode: number) {
      features.retentionRun(report, exitCode, clock.now());
    },
    notificationDelivered: features.notificationDelivered,
    setTerminalWithoutInAppProvider: features.setTerminalWithoutInAppProvider,
    close() {
      offFeed?.();
    },
  };
}
