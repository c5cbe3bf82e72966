import type { FastifyInstance } from 'fastify';
import { UpshiftError } from '../../core/errors.js';
import type { Readiness } from '../context.js';
import { HealthResponse, problemResponses, ReadyResponse } from '../schemas.js';

/** Liveness, readiness and the OpenAPI document: no tenant, no credentials. */
export function opsRoutes(app: FastifyInstance, readiness: Readiness): void {
  app.get(
    '/health',
    { schema: { tags: ['ops'], summary: 'Liveness', response: { 200: HealthResponse } } },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/ready',
    {
      schema: {
        tags: ['ops'],
        summary: 'Readiness (store, migrations, queue)',
        description: '200 when ready; 503 problem (STORE_UNAVAILABLE, or QUEUE_UNAVAILABLE when only Redis is down) with the same `checks` when not.',
        response: { 200: ReadyResponse, ...problemResponses },
      },
    },
    async () => {
      const r = await readiness();
      if (!r.ok) throw new UpshiftError(r.code ?? 'STORE_UNAVAILABLE', 'not ready', { details: { checks: r.checks } });
      return { status: 'ready' as const, checks: r.checks };
    },
  );

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
