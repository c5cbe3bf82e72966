import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { createBullmqDispatch, type BullmqDispatch } from './adapters/dispatch/bullmq/bullmqDispatch.js';
import { PostgresDispatchStore } from './adapters/dispatch/bullmq/postgresDispatchStore.js';
import { createInProcessEventFeed } from './adapters/feed/inProcessEventFeed.js';
import { createJwtVerifier } from './adapters/auth/jwtVerifier.js';
import { createHttpWebhookSender } from './adapters/notify/webhook/httpWebhookSender.js';
import { createPostgresEventFeed } from './adapters/feed/postgresEventFeed.js';
import { createPostgresJobStore } from './adapters/store/postgres/postgresJobStore.js';
import { createSqliteJobStore } from './adapters/store/sqlite/sqliteJobStore.js';
import { createPromMetrics } from './adapters/telemetry/metrics.js';
import { createOtelTracer } from './adapters/telemetry/otelTracer.js';
import { createPinoLogger } from './adapters/telemetry/pinoLogger.js';
import { closeDatasetProfilePool, createDatasetProfileAnalyzer, noopAnalyzer, sleepAnalyzer } from './analyzers/index.js';
import { retryWhileUnavailable } from './app/startupRetry.js';
import { AnalyzerRegistry } from './app/analyzerRegistry.js';
import { ApiKeyService } from './app/apiKeys.js';
import { JobService } from './app/jobService.js';
import { DashboardStatsService } from './app/dashboardStatsService.js';
import { NotificationDispatcher } from './app/notificationDispatcher.js';
import { NotificationService } from './app/notificationService.js';
import { runRetention, type RetentionOptions } from './app/retention.js';
import { ProjectionRunner } from './app/projectionRunner.js';
import { rebuildProjection } from './app/projections.js';
import { RetentionScheduler } from './app/retentionScheduler.js';
import { readyHintOf, WorkerRuntime } from './app/workerRuntime.js';
import { resolveSqliteWriter, type Config } from './config/config.js';
import { defineAnalyzer, PermanentError, type Analyzer } from './core/analyzer.js';
import { coerceError, UpshiftError, type ErrorCode } from './core/errors.js';
import { dashboardProjection } from './core/dashboardStats.js';
import { isTerminalEvent } from './core/events.js';
import { PROJECTION_NAMES } from './core/projection.js';
import type { RetentionReport } from './core/retention.js';
import { createFeatureFlagSource } from './adapters/flags/featureFlagSource.js';
import { buildHttpServer } from './http/server.js';
import { systemClock, type Clock } from './ports/clock.js';
import type { DeliveryStore, InAppDelivery } from './ports/deliveryStore.js';
import type { EventFeed } from './ports/eventFeed.js';
import type { JobStore } from './ports/jobStore.js';
import type { Logger } from './ports/logger.js';
import type { HttpMetrics, Metrics } from './ports/metrics.js';
import type { ProjectionStore } from './ports/projectionStore.js';
import type { RetentionStore } from './ports/retentionStore.js';
import { noopTracer, type Tracer } from './ports/tracer.js';

/** Library-level BullMQ dispatch (benchmarks, embedding): see docs/scale-mode.md. */
export { createBullmqDispatch, type BullmqDispatch, type BullmqDispatchOptions } from './adapters/dispatch/bullmq/bullmqDispatch.js';

/** SPEC §4.1: a terminal job without its in-app notification after this long is a bug (metric). */
const IN_APP_GRACE_MS = 10_000;

/**
 * Composition root: the only place that picks adapters. Everything else receives ports.
 */
export interface UpshiftOptions {
  readonly config: Config;
  /** Extra analyzers (library API), besides the built-ins and config modules. */
  readonly analyzers?: readonly Analyzer<never, unknown>[];
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Build the HTTP server (default true). */
  readonly http?: boolean;
  /** Tracer to use instead of the configured one (tests: an in-memory exporter). Not shut down by close(). */
  readonly tracer?: Tracer;
}

export interface Upshift {
  readonly config: Config;
  readonly store: JobStore & ProjectionStore;
  readonly feed: EventFeed;
  readonly registry: AnalyzerRegistry;
  readonly service: JobService;
  readonly apiKeys: ApiKeyService;
  readonly worker: WorkerRuntime | null;
  readonly http: FastifyInstance | null;
  /** Where the SQLite store writes (`thread` | `inline`, `auto` resolved); null on PostgreSQL. */
  readonly sqliteWriter: 'thread' | 'inline' | null;
  readonly logger: Logger;
  /** This instance's metrics (own Prometheus registry), served at GET /metrics. */
  readonly metrics: Metrics & HttpMetrics;
  readonly tracer: Tracer;
  /** The notification outbox, inbox and webhooks (same store as `store`). */
  readonly deliveries: DeliveryStore;
  readonly notifications: NotificationService;
  /** Delivers the outbox; null with UPSHIFT_NOTIFICATIONS_ENABLED=false. */
  readonly dispatcher: NotificationDispatcher | null;
  /** The dashboard_stats runner; null without workers or with UPSHIFT_PROJECTIONS_ENABLED=false. */
  readonly projectionRunner: ProjectionRunner<unknown> | null;
  /** GET /analyze/stats. */
  readonly stats: DashboardStatsService;
  /** What GET /ready answers: the store, its migrations and (BullMQ mode) Redis. */
  readiness(): Promise<{ ok: boolean; checks: Record<string, string>; code?: ErrorCode }>;
  /**
   * Runs retention once on this instance's store, sharing its writer with the API (`now`
   * defaults to the clock). The scheduled runs (UPSHIFT_RETENTION_INTERVAL_MS) use the same path.
   */
  runRetention(opts: Omit<RetentionOptions, 'now'> & { readonly now?: number }): Promise<RetentionReport>;
  /** Starts the worker and (if built) listens on config.host:port. Returns the bound URL. */
  start(): Promise<string | null>;
  /** Graceful: stop accepting, drain workers until the shutdown grace, close the store. */
  close(): Promise<void>;
}

/**
 * In-app notifications are written by the terminal transaction itself (no claim, no second
 * transaction) when nothing has to hold them back: this process delivers notifications and the
 * in-app channel has no rate limit (a rate-limited entry must stay delayable in the outbox).
 */
export function inAppDeliveryOf(config: Config): InAppDelivery {
  const n = config.notifications;
  return n.enabled && n.inAppPerMinute === 0 ? 'inline' : 'outbox';
}

/**
 * Every store adapter implements the retention and delivery ports beside JobStore.
 * `sqliteWriter`: where the SQLite store writes (default: `auto` resolved for a process that
 * answers no HTTP, as the CLI's commands); ignored for PostgreSQL.
 */
export function createStore(
  config: Config,
  opts: { readonly sqliteWriter?: 'thread' | 'inline' } = {},
): JobStore & RetentionStore & DeliveryStore & ProjectionStore {
  if (config.database.kind === 'sqlite') {
    if (config.database.file !== ':memory:') mkdirSync(dirname(config.database.file), { recursive: true });
    const writer = opts.sqliteWriter ?? resolveSqliteWriter(config.sqliteWriter, { servesHttp: false });
    return createSqliteJobStore({ file: config.database.file, inAppDelivery: inAppDeliveryOf(config), writer });
  }
  return createPostgresJobStore({ url: config.database.url, schema: config.database.schema, inAppDelivery: inAppDeliveryOf(config) });
}

/**
 * BullMQ dispatch (null in `store` mode). In `store` mode on PostgreSQL, outbox capture is
 * switched off, so a deployment moved back from BullMQ does not keep filling the outbox.
 */
async function createDispatch(config: Config, store: JobStore, logger: Logger, clock: Clock): Promise<BullmqDispatch | null> {
  const db = config.database;
  if (db.kind !== 'postgres') return null;
  if (config.dispatch.mode === 'store') {
    const pg = new PostgresDispatchStore({ url: db.url, schema: db.schema, poolSize: 1 });
    try {
      if (await pg.setOutboxCapture(false)) logger.warn({ schema: db.schema }, 'dispatch outbox capture disabled: this deployment now dispatches from the store');
    } finally {
      await pg.close();
    }
    return null;
  }
  const d = createBullmqDispatch({
    databaseUrl: db.url,
    schema: db.schema,
    jobStore: store,
    redisUrl: config.dispatch.redisUrl as string,
    clock,
    logger: logger.child({ component: 'dispatch' }),
    concurrency: config.worker.concurrency,
    relayPollMs: config.worker.pollMs,
    sweepMs: config.dispatch.sweepMs,
    sweepGraceMs: config.dispatch.sweepGraceMs,
    relayGraceMs: config.dispatch.relayGraceMs,
  });
  try {
    await d.prepare();
  } catch (e) {
    await d.close();
    throw e;
  }
  return d;
}

export async function loadAnalyzerModules(paths: readonly string[]): Promise<Analyzer<never, unknown>[]> {
  const out: Analyzer<never, unknown>[] = [];
  for (const p of paths) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(p).href)) as Record<string, unknown>;
    } catch (e) {
      throw new UpshiftError('CONFIG_INVALID', `cannot load analyzer module ${p}: ${coerceError(e).message}`, { cause: e });
    }
    const exported = mod.default ?? mod.analyzers ?? mod.analyzer;
    const list = Array.isArray(exported) ? exported : [exported];
    for (const a of list) {
      if (!a || typeof a !== 'object' || typeof (a as Analyzer).name !== 'string' || typeof (a as Analyzer).run !== 'function') {
        throw new UpshiftError('CONFIG_INVALID', `analyzer module ${p} must export an analyzer (or an array) as default, "analyzers" or "analyzer"`);
      }
      out.push(a as Analyzer<never, unknown>);
    }
  }
  return out;
}

/**
 * The built-ins. dataset-profile may read uploaded files only from its own tenant's upload
 * folder, so one tenant can neither read server files nor another tenant's uploads.
 */
export function builtinAnalyzers(config: Config): Analyzer<never, unknown>[] {
  const uploads = join(config.dataDir, 'uploads');
  const profile = createDatasetProfileAnalyzer({ allowedRoots: [uploads] });
  const tenantScoped = defineAnalyzer<Parameters<typeof profile.run>[0], unknown>({
    ...profile,
    run(input, ctx) {
      if ('file' in input && typeof input.file === 'string' && !resolve(input.file).startsWith(join(uploads, ctx.orgId) + sep)) {
        throw new PermanentError('input.file must be a file uploaded by this tenant', 'ANALYZER_INPUT_INVALID');
      }
      return profile.run(input, ctx);
    },
  });
  return [noopAnalyzer, sleepAnalyzer, tenantScoped] as Analyzer<never, unknown>[];
}

export async function createUpshift(opts: UpshiftOptions): Promise<Upshift> {
  const { config } = opts;
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? createPinoLogger(config.logLevel);
  const registry = new AnalyzerRegistry();
  for (const a of builtinAnalyzers(config)) registry.register(a);
  for (const a of opts.analyzers ?? []) registry.register(a);
  for (const a of await loadAnalyzerModules(config.analyzerModules)) registry.register(a);

  // A process that answers HTTP keeps SQLite's write batches off its event loop (`auto`).
  const sqliteWriter = config.database.kind === 'sqlite' ? resolveSqliteWriter(config.sqliteWriter, { servesHttp: opts.http !== false }) : null;
  const store = createStore(config, sqliteWriter === null ? {} : { sqliteWriter });
  // A database that is (re)starting delays the start instead of failing it (startupRetry.ts).
  await retryWhileUnavailable(() => store.migrate(), {
    timeoutMs: config.startupTimeoutMs,
    onRetry: (err, attempt, waitMs) => logger.warn({ err, attempt, wait_ms: waitMs }, 'store unavailable at startup; retrying'),
  });
  // PostgreSQL: connections and backend catalog caches ready before the first job (best effort).
  await store.warmUp?.();
  // Scale mode: every process sees every commit through LISTEN/NOTIFY (also the worker wake-up
  // for jobs submitted by other processes); embedded: the store's own commit hook.
  const pgFeed =
    config.database.kind === 'postgres'
      ? createPostgresEventFeed({ url: config.database.url, schema: config.database.schema, local: store, onError: (e) => logger.warn({ err: coerceError(e) }, 'event feed: connection problem or listener error') })
      : null;
  const feed: EventFeed = pgFeed ?? createInProcessEventFeed(store, (e) => logger.error({ err: coerceError(e) }, 'event listener failed'));
  const offTransitions = feed.subscribe((events) => {
    if (!logger.isLevelEnabled('info')) return;
    for (const e of events) {
      if (e.type === 'job.progress') continue;
      logger.info({ job_id: e.jobId, org_id: e.orgId, status: e.status, event: e.type, event_seq: e.eventSeq, occurred_at: new Date(e.occurredAt).toISOString() }, 'job transition');
    }
  });
  const tracer = opts.tracer ?? (config.tracing.enabled && config.tracing.otlpEndpoint !== null ? createOtelTracer({ serviceName: config.tracing.serviceName, endpoint: config.tracing.otlpEndpoint }) : noopTracer);
  const metrics = createPromMetrics({
    queue: store,
    clock,
    feed,
    projections: async () => {
      const head = await store.headPosition();
      return Promise.all(PROJECTION_NAMES.map(async (name) => ({ name, position: (await store.readCheckpoint(name)).position, head })));
    },
    workerSlots: () => (worker ? { busy: worker.inFlight, total: config.worker.concurrency, held: worker.heldJobs } : null),
  });
  const service = new JobService({ store, feed, registry, clock, defaultMaxAttempts: config.worker.maxAttempts, tracer });
  const apiKeys = new ApiKeyService(store, clock);
  const w = config.worker;
  const dispatch = await createDispatch(config, store, logger, clock);
  // The relay moves every process's retries from the outbox at once; the feed (NOTIFY) says
  // when there are new ones. First attempts are published by the process that commits them
  // (below), the relay takes those only when they are left over (docs/scale-mode.md).
  const offRelay = dispatch
    ? feed.subscribe((events) => {
        if (events.some((e) => e.type === 'job.retrying')) dispatch.relay.poke();
      })
    : null;
  const worker = w.enabled
    ? new WorkerRuntime({
        store,
        feed,
        registry,
        clock,
        logger: logger.child({ component: 'worker' }),
        workerId: `wrk_${process.pid}_${randomBytes(4).toString('hex')}`,
        concurrency: w.concurrency,
        // Both dispatch modes: held jobs are claimed ones (running, leased) waiting for a slot.
        // With BullMQ dispatch they also let an acknowledgement fetch the next BullMQ job.
        prefetch: w.prefetch,
        leaseMs: w.leaseMs,
        heartbeatMs: w.heartbeatMs,
        pollMs: w.pollMs,
        cancelGraceMs: w.cancelGraceMs,
        defaultTimeoutMs: w.jobTimeoutMs,
        backoff: { baseMs: w.backoffBaseMs, maxMs: w.backoffMaxMs, jitter: 0.5 },
        fairness: { defaultWeight: 1, weights: config.fairness.weights, defaultMaxRunning: config.fairness.defaultMaxRunning, maxRunning: config.fairness.maxRunning },
        onSettled: (job, outcome, ms) => metrics.jobSettled(job.analyzer, outcome, ms),
        tracer,
        ...(dispatch && { dispatcher: dispatch.dispatcher }),
      })
    : null;
  // Scale mode: this process's own commits wake its worker at once, and in BullMQ mode their
  // first attempts go to BullMQ straight from here (retries through the relay, poked by the feed
  // above, which also carries this process's own events); the feed would add the NOTIFY round
  // trip and its read of the events (add→start latency). Other processes' commits still arrive
  // through the feed.
  const offLocalWake =
    config.database.kind === 'postgres'
      ? store.onCommitted((events) => {
          const queued = events.filter((e) => e.type === 'job.queued' || e.type === 'job.retrying');
          if (queued.length === 0) return;
          dispatch?.relay.publishCommitted(queued);
          // With their orgs: the store dispatcher claims from orgs it knows to be ready without a read.
          for (const e of queued) worker?.poke(readyHintOf(e));
        })
      : null;

  // Notifications (SPEC §4.1): the outbox is written by the store; this process delivers it
  // unless UPSHIFT_NOTIFICATIONS_ENABLED=false.
  const nc = config.notifications;
  const webhookSender = createHttpWebhookSender({ timeoutMs: nc.webhook.timeoutMs, allowPrivate: nc.webhook.allowPrivate });
  let dispatcher: NotificationDispatcher | null = null;
  const notifications = new NotificationService({
    jobs: store,
    deliveries: store,
    sender: webhookSender,
    clock,
    onRedeliver: () => dispatcher?.poke(),
    onEndpointsChanged: () => dispatcher?.endpointsChanged(),
  });
  dispatcher = nc.enabled
    ? new NotificationDispatcher({
        store,
        sender: webhookSender,
        feed,
        clock,
        logger: logger.child({ component: 'notifications' }),
        pollMs: nc.pollMs,
        webhook: {
          concurrency: nc.webhook.concurrency,
          timeoutMs: nc.webhook.timeoutMs,
          retryPeriodMs: nc.webhook.retryPeriodMs,
          backoff: { baseMs: nc.webhook.backoffBaseMs, maxMs: nc.webhook.backoffMaxMs, jitter: 0.5 },
        },
        rateLimits: { inAppPerMinute: nc.inAppPerMinute, webhookPerMinute: nc.webhookPerMinute },
        inApp: { inline: inAppDeliveryOf(config) === 'inline' },
        metrics,
      })
    : null;
  // Scale mode: endpoint changes committed by any process (an API process that does not
  // deliver, say) reach this process's dispatcher through the feed (the store's NOTIFY).
  const offEndpointSignal = dispatcher && pgFeed ? pgFeed.onEndpointsChanged(() => dispatcher?.endpointsChanged()) : null;
  // Inline in-app delivery happens in this process's own terminal commits: count it there.
  const offInAppMetric =
    inAppDeliveryOf(config) === 'inline'
      ? store.onCommitted((events) => {
          let n = 0;
          for (const e of events) if (isTerminalEvent(e.type)) n++;
          if (n > 0) metrics.notificationDelivered('in_app', 'delivered', n);
        })
      : () => {};
  metrics.setTerminalWithoutInAppProvider(() => store.countTerminalWithoutInApp(clock.now() - IN_APP_GRACE_MS));

  const readiness = async (): Promise<{ ok: boolean; checks: Record<string, string>; code?: ErrorCode }> => {
    const [db, queue] = await Promise.allSettled([store.ping(), dispatch ? dispatch.ping() : Promise.resolve()]);
    const checks: Record<string, string> = {
      store: db.status === 'fulfilled' ? 'ok' : coerceError(db.reason).message,
      dispatch: config.dispatch.mode,
      queue: queue.status === 'rejected' ? coerceError(queue.reason).message : dispatch ? 'ok' : worker ? 'ok' : 'disabled',
    };
    if (db.status === 'fulfilled') checks.migrations = 'ok';
    if (db.status === 'rejected') return { ok: false, checks, code: 'STORE_UNAVAILABLE' as const };
    return queue.status === 'rejected' ? { ok: false, checks, code: 'QUEUE_UNAVAILABLE' as const } : { ok: true, checks };
  };
  const tokens = config.auth.jwt ? createJwtVerifier(config.auth.jwt, clock) : undefined;
  // Read (and validated) at startup: an invalid flags file fails the start with CONFIG_INVALID.
  const flags = createFeatureFlagSource({ rules: config.featureFlags.rules, file: config.featureFlags.file, logger });
  const stats = new DashboardStatsService({ store, flags, clock });
  const http =
    opts.http === false ? null : await buildHttpServer({ service, registry, apiKeys, ...(tokens && { tokens }), config, logger, readiness, metrics, tracer, notifications, flags, stats });
  // Read models (SPEC §5) are maintained where workers run (serve, worker); one runner per
  // projection is active across processes (its lease), the others stand by.
  const pc = config.projections;
  const projectionRunner =
    w.enabled && pc.enabled
      ? new ProjectionRunner({
          store,
          projection: dashboardProjection,
          clock,
          logger: logger.child({ component: 'projections' }),
          feed,
          ownerId: `prj_${process.pid}_${randomBytes(4).toString('hex')}`,
          batchSize: pc.batchSize,
          pollMs: pc.pollMs,
          onApplied: (n) => metrics.projectionApplied(dashboardProjection.name, n),
          rebuild: (opts) => rebuildProjection({ store, clock }, dashboardProjection.name, null, `prj_boot_${process.pid}_${randomBytes(4).toString('hex')}`, opts),
        })
      : null;

  const rc = config.retention;
  const retentionDefaults = { batchSize: rc.batchSize, maxRowsPerBatch: rc.maxRowsPerBatch, pauseMs: rc.pauseMs };
  const retention =
    rc.intervalMs > 0
      ? new RetentionScheduler({
          store,
          clock,
          logger: logger.child({ component: 'retention' }),
          metrics,
          intervalMs: rc.intervalMs,
          resultsTtlMs: rc.resultsTtlSeconds * 1000,
          eventsTtlMs: rc.eventsTtlSeconds * 1000,
          notificationsTtlMs: rc.notificationsTtlSeconds === null ? null : rc.notificationsTtlSeconds * 1000,
          ...retentionDefaults,
        })
      : null;

  let closed = false;
  return {
    config,
    store,
    feed,
    registry,
    service,
    apiKeys,
    worker,
    http,
    sqliteWriter,
    logger,
    metrics,
    tracer,
    deliveries: store,
    notifications,
    dispatcher,
    projectionRunner: projectionRunner as ProjectionRunner<unknown> | null,
    stats,
    readiness,
    async runRetention(o) {
      try {
        const report = await runRetention({ store, clock }, { ...retentionDefaults, ...o, now: o.now ?? clock.now() });
        metrics.retentionRun(report, report.completed ? 0 : 1);
        return report;
      } catch (e) {
        metrics.retentionRun(null, 1);
        throw e;
      }
    },
    async start() {
      dispatch?.relay.start();
      worker?.start();
      retention?.start();
      dispatcher?.start();
      projectionRunner?.start();
      if (!http) return null;
      return http.listen({ host: config.host, port: config.port });
    },
    async close() {
      if (closed) return;
      closed = true;
      await http?.close();
      await worker?.stop(w.shutdownGraceMs);
      offRelay?.();
      offLocalWake?.();
      await dispatch?.close();
      await retention?.stop();
      await projectionRunner?.stop();
      // After the workers: their last terminal writes are in the outbox; what is not delivered
      // now is delivered by the next process (nothing is lost, webhooks keep their ids).
      await dispatcher?.stop(Math.min(w.shutdownGraceMs, nc.webhook.timeoutMs));
      webhookSender.close();
      offTransitions();
      offEndpointSignal?.();
      offInAppMetric();
      metrics.close();
      flags.close();
      await feed.close();
      await store.close();
      await closeDatasetProfilePool();
      if (!opts.tracer) await tracer.shutdown();
    },
  };
}
