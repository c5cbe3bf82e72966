import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Ajv } from 'ajv';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AnalyzerRegistry } from '../app/analyzerRegistry.js';
import type { ApiKeyService } from '../app/apiKeys.js';
import type { DashboardStatsService } from '../app/dashboardStatsService.js';
import type { JobService } from '../app/jobService.js';
import type { NotificationService } from '../app/notificationService.js';
import type { Config } from '../config/config.js';
import { UpshiftError } from '../core/errors.js';
import type { Logger } from '../ports/logger.js';
import type { HttpMetrics } from '../ports/metrics.js';
import type { TokenVerifier } from '../ports/tokenVerifier.js';
import type { Tracer } from '../ports/tracer.js';
import { noFeatureFlags, type FeatureFlagSource } from '../ports/featureFlags.js';
import type { Readiness, RouteContext } from './context.js';
import { requestPath, sendProblem } from './problem.js';
import { jobRoutes } from './routes/jobs.js';
import { legacyRoutes } from './routes/legacy.js';
import { notificationRoutes } from './routes/notifications.js';
import { metricsRoutes } from './routes/metrics.js';
import { opsRoutes } from './routes/ops.js';
import { resultRoutes } from './routes/results.js';
import { uiDir, uiRoutes } from './routes/ui.js';
import { registerUploadParsers, submitRoutes } from './routes/submit.js';
import { webhookRoutes } from './routes/webhooks.js';
import { statsRoutes } from './routes/stats.js';
import { UPLOAD_CONTENT_TYPES } from './schemas.js';
import { OpenRequests } from './sse.js';
import { installTelemetryHooks } from './telemetry.js';
import { createTenantResolver, RateLimiter } from './tenancy.js';

export interface HttpDeps {
  service: JobService;
  registry: AnalyzerRegistry;
  apiKeys: ApiKeyService;
  /** Bearer JWT verification; required when config.auth.mode is `jwt`. */
  tokens?: TokenVerifier;
  config: Config;
  logger: Logger;
  readiness: Readiness;
  /** Request metrics and `GET /metrics` (docs/metrics.md); absent → neither. */
  metrics?: HttpMetrics;
  /** Server spans per request; absent → no spans (an incoming traceparent still reaches the job). */
  tracer?: Tracer;
  /** Notification and webhook routes (docs/notifications.md); absent → not served. */
  notifications?: NotificationService;
  /** Per-tenant feature flags (core/featureFlags.ts); absent → every flag off. */
  flags?: FeatureFlagSource;
  /** GET /analyze/stats (docs/projections.md); absent → not served. */
  stats?: DashboardStatsService;
}

/** Requests slower than this are logged (except streams and sync waits, slow by design). */
const SLOW_REQUEST_MS = 1000;
/** How long close() waits for open streams and sync waits to wind down. */
const CLOSE_STREAMS_TIMEOUT_MS = 2000;

/**
 * The HTTP API (SPEC §3): Fastify with TypeBox schemas, problem+json errors, tenancy/auth,
 * SSE and raw uploads. Routes are not sealed (no ready()), so the composition root can add more.
 */
export async function buildHttpServer(deps: HttpDeps): Promise<FastifyInstance> {
  const { config, logger } = deps;
  const log = logger.child({ component: 'http' });
  const app = Fastify({
    // No Fastify logger, hence no per-request log lines: the hot path stays cheap. We log
    // 5xx (with context) and slow requests ourselves through deps.logger.
    logger: false,
    bodyLimit: config.http.bodyLimitBytes,
    // We answer shutdown ourselves (problem+json SHUTTING_DOWN) and end streams in preClose.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 500 },
    frameworkErrors: (error, request, reply) => {
      sendProblem(request, reply, error, log);
    },
  });
  app.decorateRequest('upshiftOrg', null);
  installValidators(app);
  installJsonParser(app);

  installTelemetryHooks(app, { metrics: deps.metrics, tracer: deps.tracer });
  const open = new OpenRequests();
  const resolveTenant = createTenantResolver({ mode: config.auth.mode, apiKeys: deps.apiKeys, tokens: deps.tokens });
  const limiter = config.http.rateLimitPerMinute > 0 ? new RateLimiter(config.http.rateLimitPerMinute) : null;

  app.addHook('onRequest', async (request, reply) => {
    if (open.isClosing) {
      reply.header('connection', 'close');
      throw new UpshiftError('SHUTTING_DOWN', 'the server is shutting down');
    }
    if (request.routeOptions.config.tenant !== true) return;
    const org = await resolveTenant(request);
    request.upshiftOrg = org;
    limiter?.take(org);
  });
  app.addHook('onResponse', (request, reply, done) => {
    const ms = reply.elapsedTime;
    if (ms > SLOW_REQUEST_MS && request.routeOptions.config.longRunning !== true) {
      log.warn({ req_id: request.id, method: request.method, route: request.routeOptions.url ?? requestPath(request), status: reply.statusCode, ms: Math.round(ms) }, 'slow request');
    }
    done();
  });
  app.addHook('preClose', async () => {
    await open.closeAll(CLOSE_STREAMS_TIMEOUT_MS);
  });
  app.setErrorHandler((error, request, reply) => {
    // A body we never read (rejected upload, failed auth) must not be drained: drop the connection.
    if (request.raw.complete === false) reply.header('connection', 'close');
    return sendProblem(request, reply, error, log);
  });
  app.setNotFoundHandler((request, reply) => {
    sendProblem(request, reply, new UpshiftError('ROUTE_NOT_FOUND', `no route for ${request.method} ${requestPath(request)}`), log);
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Upshift API',
        version: '1.0.0',
        description:
          'Multi-tenant async job runtime. Tenant: `X-Org-Id` (or `X-Tenant-Id`). Errors: `application/problem+json` with a stable `code`.',
      },
      tags: [
        { name: 'jobs', description: 'submit, inspect, follow and cancel jobs' },
        { name: 'results', description: 'results and permalinks' },
        { name: 'legacy', description: 'the synchronous POST /analyze contract' },
        { name: 'ops', description: 'health and readiness' },
        { name: 'notifications', description: 'in-app notifications: per job and the tenant inbox' },
        { name: 'webhooks', description: 'webhook endpoints and their deliveries (Standard Webhooks)' },
      ],
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'API key `upk_…` (auth mode api-key)' },
          jwt: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'JWT of the configured identity provider; the org is its org claim (auth mode jwt)' },
        },
      },
      ...(config.auth.mode === 'api-key' && { security: [{ apiKey: [] }] }),
      ...(config.auth.mode === 'jwt' && { security: [{ jwt: [] }] }),
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  const ctx: RouteContext = { service: deps.service, registry: deps.registry, config, logger: log, open, flags: deps.flags ?? noFeatureFlags };
  opsRoutes(app, deps.readiness);
  if (deps.metrics) metricsRoutes(app, deps.metrics);
  jobRoutes(app, ctx);
  resultRoutes(app, ctx);
  if (deps.stats) statsRoutes(app, deps.stats);
  if (deps.notifications) {
    notificationRoutes(app, deps.notifications);
    webhookRoutes(app, deps.notifications);
  }
  if (config.http.uiEnabled) {
    const dir = uiDir();
    if (dir === null) log.warn({ component: 'ui' }, 'web UI not served: no ui/ folder found above the code');
    else uiRoutes(app, { dir, authMode: config.auth.mode, analyzers: () => deps.registry.names() });
  }
  // Raw-stream parsers only where uploads are accepted; elsewhere those types answer 415.
  await app.register(async (scope) => {
    registerUploadParsers(scope);
    submitRoutes(scope, ctx);
    legacyRoutes(scope, ctx);
  });
  return app;
}

/**
 * Bodies are validated strictly (a string is not a number); query, params and headers are
 * strings on the wire and coerced. Upload bodies are streams, validated by the route.
 */
function installValidators(app: FastifyInstance): void {
  const bodyAjv = new Ajv({ allErrors: true, coerceTypes: false, useDefaults: true, strict: false });
  const wireAjv = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true, strict: false });
  const uploadTypes = new Set<string>(UPLOAD_CONTENT_TYPES);
  const acceptAll = () => true;
  app.setValidatorCompiler(({ schema, httpPart, contentType }) => {
    if (httpPart === 'body') return contentType !== undefined && uploadTypes.has(contentType) ? acceptAll : bodyAjv.compile(schema);
    return wireAjv.compile(schema);
  });
}

/** Fastify's JSON parser, except that an empty body is "no body" (e.g. POST …/cancel). */
function installJsonParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text === '') {
      done(null, undefined);
      return;
    }
    parseJson(request, text, done);
  });
}
