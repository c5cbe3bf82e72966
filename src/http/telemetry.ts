import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { HttpMetrics } from '../ports/metrics.js';
import type { Span, Tracer } from '../ports/tracer.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * W3C traceparent to store on a job submitted by this request: the request's server
     * span when tracing is on, else a valid incoming `traceparent` header, else null.
     */
    upshiftTraceContext: string | null;
    upshiftSpan: Span | null;
  }
}

export const TRACEPARENT = /^[\da-f]{2}-[\da-f]{32}-[\da-f]{16}-[\da-f]{2}$/;

/** Route template of a request; `unmatched` for the not-found handler (never the raw URL). */
export function routeLabel(request: FastifyRequest): string {
  return request.routeOptions.url ?? 'unmatched';
}

/**
 * Request metrics and server spans, from two hooks (no auto-instrumentation). Installed
 * before the tenancy hook, so rejected requests (401, 429, 404) are measured and traced too.
 */
export function installTelemetryHooks(app: FastifyInstance, deps: { metrics?: HttpMetrics | undefined; tracer?: Tracer | undefined }): void {
  const { metrics, tracer } = deps;
  app.decorateRequest('upshiftTraceContext', null);
  app.decorateRequest('upshiftSpan', null);

  app.addHook('onRequest', (request, _reply, done) => {
    const tp = request.headers.traceparent;
    const incoming = typeof tp === 'string' && TRACEPARENT.test(tp) ? tp : null;
    if (tracer?.enabled) {
      const route = routeLabel(request);
      const span = tracer.startSpan(`${request.method} ${route}`, {
        kind: 'server',
        parent: incoming,
        attributes: { 'http.request.method': request.method, 'http.route': route, 'url.path': request.url.split('?', 1)[0] },
      });
      request.upshiftSpan = span;
      request.upshiftTraceContext = span.carrier();
    } else {
      request.upshiftTraceContext = incoming;
    }
    done();
  });

  app.addHook('onResponse', (request, reply, done) => {
    const status = reply.statusCode;
    metrics?.httpRequest(request.method, routeLabel(request), status, reply.elapsedTime / 1000);
    const span = request.upshiftSpan;
    if (span) {
      span.setAttributes({ 'http.response.status_code': status });
      // Per OTel HTTP semantics a 4xx leaves a server span's status unset.
      span.end(status >= 500 ? 'error' : undefined);
    }
    done();
  });
}
