import { applyDashboardJobs, dashboardProjection, dashboardView, emptyDashboard, type DashboardState, type DashboardView } from '../core/dashboardStats.js';
import type { OrgId } from '../core/ids.js';
import type { Clock } from '../ports/clock.js';
import type { FeatureFlagSource } from '../ports/featureFlags.js';
import type { ProjectionStore } from '../ports/projectionStore.js';

/** How many of a tenant's unapplied events the read-model answer counts at most. */
export const MAX_PENDING_COUNT = 10_000;

export interface DashboardStats extends DashboardView {
  /** `read_model`: from the dashboard_stats projection; `source_tables`: computed from the job rows now. */
  readonly source: 'read_model' | 'source_tables';
  /** When the answer was computed (epoch ms, the service's clock). */
  readonly generatedAt: number;
  /** Read model only: the projection's checkpoint and how far the tenant's stats are behind it. */
  readonly projection: {
    readonly position: number;
    /** The tenant's events after the checkpoint (capped at MAX_PENDING_COUNT). */
    readonly pendingEvents: number;
    readonly upToDate: boolean;
    readonly updatedAt: number | null;
  } | null;
}

/**
 * The tenant dashboard (GET /analyze/stats). Feature flag `stats_read_model` picks the path per
 * tenant: on → the read model (constant cost, may lag behind by what the runner has not applied
 * yet, which the answer reports); off (default, and the kill switch) → the same numbers computed
 * from the tenant's job rows (exact, cost grows with the tenant's job count).
 */
export class DashboardStatsService {
  constructor(private readonly d: { readonly store: ProjectionStore; readonly flags: FeatureFlagSource; readonly clock: Clock }) {}

  async stats(orgId: OrgId): Promise<DashboardStats> {
    if (this.d.flags.decide('stats_read_model', orgId).on) return this.fromReadModel(orgId);
    return this.fromSource(orgId);
  }

  async fromReadModel(orgId: OrgId): Promise<DashboardStats> {
    const r = await this.d.store.readTenantProjection('dashboard_stats', orgId, MAX_PENDING_COUNT);
    const state = r.state === null ? emptyDashboard() : dashboardProjection.decode(r.state);
    const now = this.d.clock.now();
    return {
      ...dashboardView(state, now),
      source: 'read_model',
      generatedAt: now,
      projection: { position: r.checkpoint.position, pendingEvents: r.pendingEvents, upToDate: r.pendingEvents === 0, updatedAt: r.checkpoint.updatedAt },
    };
  }

  async fromSource(orgId: OrgId): Promise<DashboardStats> {
    let state: DashboardState = emptyDashboard();
    await this.d.store.scanTenantJobs(orgId, (jobs) => {
      state = applyDashboardJobs(state, jobs);
    });
    const now = this.d.clock.now();
    return { ...dashboardView(state, now), source: 'source_tables', generatedAt: now, projection: null };
  }
}
