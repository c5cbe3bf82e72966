/**
 * Deficit round robin across orgs (pure; the worker keeps one instance).
 *
 * Each planning round, every org with ready work earns `weight` credits and may claim as
 * many jobs as it has whole credits, limited by its concurrency cap and the capacity left.
 * An org without ready work forfeits its credit, so an idle org cannot save up a burst.
 * The starting org rotates between calls so equal-weight orgs take turns being first.
 * Result: a tenant with a 10,000-job backlog gets its weighted share, not the whole
 * worker; another tenant's new job is claimed in the next planning round.
 */
export interface OrgReadiness {
  readonly orgId: string;
  /** Jobs of this org currently running (cluster-wide, as the store sees it). */
  readonly running: number;
}

export interface FairnessPolicy {
  readonly defaultWeight: number;
  readonly weights: Readonly<Record<string, number>>;
  /** Per-org cap on concurrently running jobs; 0 or absent = no cap. */
  readonly defaultMaxRunning: number;
  readonly maxRunning: Readonly<Record<string, number>>;
}

export const DEFAULT_FAIRNESS: FairnessPolicy = { defaultWeight: 1, weights: {}, defaultMaxRunning: 0, maxRunning: {} };

export interface ClaimPlanEntry {
  readonly orgId: string;
  readonly limit: number;
}

export class DeficitRoundRobin {
  private readonly deficits = new Map<string, number>();
  private rotation = 0;

  constructor(private readonly policy: FairnessPolicy = DEFAULT_FAIRNESS) {}

  weightOf(orgId: string): number {
    const w = this.policy.weights[orgId] ?? this.policy.defaultWeight;
    return w > 0 ? w : 1;
  }

  capOf(orgId: string): number {
    const c = this.policy.maxRunning[orgId] ?? this.policy.defaultMaxRunning;
    return c > 0 ? c : Number.POSITIVE_INFINITY;
  }

  /** Decide how many jobs to try to claim from each ready org, at most `capacity` in all. */
  plan(ready: readonly OrgReadiness[], capacity: number): ClaimPlanEntry[] {
    if (capacity <= 0 || ready.length === 0) return [];
    if (ready.length === 1) return this.planOne(ready[0] as OrgReadiness, capacity);
    const readyIds = new Set(ready.map((r) => r.orgId));
    for (const id of [...this.deficits.keys()]) if (!readyIds.has(id)) this.deficits.delete(id);

    const sorted = [...ready].sort((a, b) => (a.orgId < b.orgId ? -1 : a.orgId > b.orgId ? 1 : 0));
    const start = this.rotation % sorted.length;
    this.rotation = (this.rotation + 1) % 1_000_000_007;
    const order = [...sorted.slice(start), ...sorted.slice(0, start)];

    const headroom = new Map(order.map((r) => [r.orgId, Math.max(0, this.capOf(r.orgId) - r.running)]));
    const planned = new Map<string, number>();
    let left = capacity;
    // Bounded: every round either hands out at least one job or no org can take more.
    while (left > 0) {
      let handedOut = 0;
      let anyEligible = false;
      for (const { orgId } of order) {
        if (left <= 0) break;
        const room = headroom.get(orgId) ?? 0;
        if (room <= 0) {
          this.deficits.set(orgId, 0);
          continue;
        }
        anyEligible = true;
        const deficit = (this.deficits.get(orgId) ?? 0) + this.weightOf(orgId);
        const take = Math.min(Math.floor(deficit), room, left);
        this.deficits.set(orgId, deficit - take);
        if (take > 0) {
          planned.set(orgId, (planned.get(orgId) ?? 0) + take);
          headroom.set(orgId, room - take);
          left -= take;
          handedOut += take;
        }
      }
      if (!anyEligible || (handedOut === 0 && !this.anyCanAccrue(order, headroom))) break;
    }
    return order
      .filter((r) => (planned.get(r.orgId) ?? 0) > 0)
      .map((r) => ({ orgId: r.orgId, limit: planned.get(r.orgId) ?? 0 }));
  }

  /**
   * plan() for a single ready org — a single-tenant deployment, or the one org with a backlog —
   * without its sets, maps and copies (a worker plans several times per job at a few hundred
   * jobs/s). The same rounds with the same arithmetic, so the result and the credit left are
   * exactly plan()'s.
   */
  private planOne(r: OrgReadiness, capacity: number): ClaimPlanEntry[] {
    const orgId = r.orgId;
    for (const id of this.deficits.keys()) if (id !== orgId) this.deficits.delete(id);
    this.rotation = (this.rotation + 1) % 1_000_000_007;
    const weight = this.weightOf(orgId);
    let room = Math.max(0, this.capOf(orgId) - r.running);
    let deficit = this.deficits.get(orgId) ?? 0;
    let left = capacity;
    let planned = 0;
    while (left > 0) {
      if (room <= 0) {
        deficit = 0;
        break;
      }
      deficit += weight;
      const take = Math.min(Math.floor(deficit), room, left);
      deficit -= take;
      planned += take;
      room -= take;
      left -= take;
    }
    this.deficits.set(orgId, deficit);
    return planned > 0 ? [{ orgId, limit: planned }] : [];
  }

  /** Tell the planner an org got fewer jobs than planned (it ran dry): drop its credit. */
  settle(orgId: string, planned: number, claimed: number): void {
    if (claimed < planned) this.deficits.set(orgId, 0);
  }

  private anyCanAccrue(order: readonly OrgReadiness[], headroom: Map<string, number>): boolean {
    return order.some((r) => (headroom.get(r.orgId) ?? 0) > 0);
  }
}
