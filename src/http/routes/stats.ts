import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { DashboardStats, DashboardStatsService } from '../../app/dashboardStatsService.js';
import { JOB_STATUSES } from '../../core/jobState.js';
import { orgOf, TENANT_CONFIG } from '../context.js';
import { problemResponses, TenantHeaders } from '../schemas.js';

const count = Type.Integer({ minimum: 0 });
const nullableNumber = Type.Unsafe<number | null>({ type: ['number', 'null'] });
const StatusCounts = Type.Object(Object.fromEntries(JOB_STATUSES.map((s) => [s, Type.Integer()])) as Record<(typeof JOB_STATUSES)[number], ReturnType<typeof Type.Integer>>);

export const StatsSchema = Type.Object(
  {
    org_id: Type.String(),
    source: Type.Unsafe<'read_model' | 'source_tables'>({
      type: 'string',
      enum: ['read_model', 'source_tables'],
      description: '`read_model`: the dashboard_stats projection (feature flag `stats_read_model` on); `source_tables`: computed from the job rows now',
    }),
    generated_at: Type.String({ format: 'date-time' }),
    counts: Type.Object({ ...StatusCounts.properties, total: count }, { description: 'jobs by current status' }),
    throughput: Type.Array(
      Type.Object({ window_minutes: count, completed: count, per_minute: Type.Number() }),
      { description: 'completed jobs in the last N minutes (the current minute included) and per minute' },
    ),
    analyzers: Type.Array(
      Type.Object({
        analyzer: Type.String(),
        counts: StatusCounts,
        run_time_ms: Type.Object(
          { count, p50: nullableNumber, p95: nullableNumber, min: nullableNumber, max: nullableNumber, mean: nullableNumber },
          { description: 'run time (finished − started of the final attempt) of completed jobs; p50/p95 from a log histogram (≤ 9 % above the true value)' },
        ),
      }),
    ),
    projection: Type.Union(
      [
        Type.Object({
          position: count,
          pending_events: Type.Integer({ minimum: 0, description: `this tenant's events the projection has not applied yet (counted up to 10000)` }),
          up_to_date: Type.Boolean(),
          updated_at: Type.Unsafe<string | null>({ type: ['string', 'null'], format: 'date-time' }),
        }),
        Type.Null(),
      ],
      { description: 'read model only: its checkpoint and lag for this tenant; null for source_tables' },
    ),
  },
  { $id: 'DashboardStats' },
);

export function toStatsJson(orgId: string, s: DashboardStats, now: number): unknown {
  return {
    org_id: orgId,
    source: s.source,
    generated_at: new Date(now).toISOString(),
    counts: s.counts,
    throughput: s.throughput.map((t) => ({ window_minutes: t.windowMinutes, completed: t.completed, per_minute: t.perMinute })),
    analyzers: s.analyzers.map((a) => ({
      analyzer: a.analyzer,
      counts: a.counts,
      run_time_ms: { count: a.runTime.count, p50: a.runTime.p50Ms, p95: a.runTime.p95Ms, min: a.runTime.minMs, max: a.runTime.maxMs, mean: a.runTime.meanMs },
    })),
    projection:
      s.projection === null
        ? null
        : {
            position: s.projection.position,
            pending_events: s.projection.pendingEvents,
            up_to_date: s.projection.upToDate,
            updated_at: s.projection.updatedAt === null ? null : new Date(s.projection.updatedAt).toISOString(),
          },
  };
}

/** The tenant dashboard (docs/projections.md). Bound to the caller's org like every route. */
export function statsRoutes(app: FastifyInstance, stats: DashboardStatsService): void {
  app.get(
    '/analyze/stats',
    {
      config: TENANT_CONFIG,
      schema: {
        tags: ['stats'],
        summary: "The tenant's dashboard stats: jobs by status, throughput, run-time p50/p95 per analyzer",
        headers: TenantHeaders,
        response: { 200: StatsSchema, ...problemResponses },
      },
    },
    async (request) => {
      const org = orgOf(request);
      const s = await stats.stats(org);
      return toStatsJson(org, s, s.generatedAt);
    },
  );
}
