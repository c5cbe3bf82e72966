import type { FastifyInstance } from 'fastify';
import { parseResultId } from '../../core/ids.js';
import { orgOf, TENANT_CONFIG, type RouteContext } from '../context.js';
import { toPermalinkJson } from '../presenters.js';
import { PermalinkQuery, PermalinkResponse, problemResponses, ResultParams, TenantHeaders } from '../schemas.js';

/** Result permalinks: tenant-bound (another org's id is 404), 410 once retention removed it. */
export function resultRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get<{ Params: ResultParams; Querystring: PermalinkQuery }>(
    '/analyze/results/:result_id',
    {
      config: TENANT_CONFIG,
      schema: {
        tags: ['results'],
        summary: 'Result permalink',
        description:
          '`view=exact` (default) returns this very result; `view=latest` the newest result of its job ' +
          '(final if any, else newest partial). Removed by retention → 410 RESULT_GONE.',
        headers: TenantHeaders,
        params: ResultParams,
        querystring: PermalinkQuery,
        response: { 200: PermalinkResponse, ...problemResponses },
      },
    },
    async (request) => {
      const p = await ctx.service.permalink(orgOf(request), parseResultId(request.params.result_id), request.query.view);
      return toPermalinkJson(p);
    },
  );
}
