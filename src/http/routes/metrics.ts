import type { FastifyInstance } from 'fastify';
import type { HttpMetrics } from '../../ports/metrics.js';

/** Prometheus exposition (docs/metrics.md): no tenant, no credentials, no tenant data. */
export function metricsRoutes(app: FastifyInstance, metrics: HttpMetrics): void {
  app.get(
    '/metrics',
    {
      schema: {
        tags: ['ops'],
        summary: 'Prometheus metrics',
        description: 'Text exposition format 0.0.4. Labels never carry org or job ids. See docs/metrics.md.',
        response: { 200: { description: 'Prometheus text exposition', content: { 'text/plain': { schema: { type: 'string' } } } } },
      },
    },
    async (_request, reply) => {
      const body = await metrics.scrape();
      return reply.type(metrics.contentType).header('cache-control', 'no-store').send(body);
    },
  );
}
