import { applyDashboardJobs, canonicalDashboard, dashboardProjection, diffDashboard, emptyDashboard, type DashboardState } from '../core/dashboardStats.js';
import { UpshiftError, isUpshiftError } from '../core/errors.js';
import type { OrgId } from '../core/ids.js';
import type { Projection, ProjectionCheckpoint, ProjectionName } from '../core/projection.js';
import type { Clock } from '../ports/clock.js';
import type { ProjectionStore } from '../ports/projectionStore.js';
import { byOrg } from './projectionRunner.js';

/**
 * Operations on read models: rebuild from replay, status, and the parity check against the
 * source tables (`upshift projections …`, docs/projections.md).
 */

/** Every projection by name (one today). */
export const PROJECTIONS: Readonly<Record<ProjectionName, Projection<DashboardState>>> = { dashboard_stats: dashboardProjection };

export interface ProjectionDeps {
  readonly store: ProjectionStore;
  readonly clock: Clock;
}

export interface RebuildReport {
  readonly projection: ProjectionName;
  readonly org_id: string | null;
  /** The checkpoint position the rebuilt states are valid at. */
  readonly position: number;
  readonly orgs: number;
  readonly events_replayed: number;
  /** Terminal jobs counted from their rows because retention removed (part of) their log. */
  readonly jobs_seeded: number;
  readonly attempts: number;
}

/** How long a rebuild holds the projection's lease (runners stay idle meanwhile). */
const REBUILD_LEASE_MS = 5 * 60_000;
const MAX_ATTEMPTS = 20;

/**
 * Rebuilds a projection from replay into fresh states and swaps them in atomically.
 *
 * 1. Takes the projection's lease (a commit that changes nothing else), so runners stay idle.
 * 2. Reads one consistent snapshot: seed jobs (terminal jobs whose log retention removed, from
 *    their rows) and every remaining event — up to the head (whole projection: the checkpoint
 *    jumps there) or up to the checkpoint (`orgId`: the other orgs' states stay valid at it).
 * 3. Commits the new states (whole projection: replacing every state) with a compare-and-set on
 *    the version of step 1 and releases the lease. If anything committed in between (a runner
 *    that ignored the lease after it expired, another rebuild), it starts over.
 * `onlyIfNeverBuilt` (a runner's first start): resolves null without doing anything as soon as
 * the projection has a checkpoint, so runners of several processes bootstrap it once.
 */
export async function rebuildProjection(
  deps: ProjectionDeps,
  name: ProjectionName,
  orgId: OrgId | null,
  ownerId: string,
  opts: { readonly onlyIfNeverBuilt?: boolean } = {},
): Promise<RebuildReport | null> {
  const projection = PROJECTIONS[name];
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const cp = await deps.store.readCheckpoint(name);
    // Bootstrap: another process built it first.
    if (opts.onlyIfNeverBuilt === true && cp.version !== 0) return null;
    let leased: ProjectionCheckpoint;
    try {
      const now = deps.clock.now();
      leased = await deps.store.commitProjection({
        name, expectedVersion: cp.version, position: cp.position, states: [], replaceAll: false, leaseOwner: ownerId, leaseExpiresAt: now + REBUILD_LEASE_MS, now,
      });
    } catch (e) {
      if (isUpshiftError(e, 'PROJECTION_CONFLICT')) continue;
      throw e;
    }
    const states = new Map<OrgId, DashboardState>();
    const stateOf = (org: OrgId): DashboardState => states.get(org) ?? emptyDashboard();
    let events = 0;
    let seeded = 0;
    const snap = await deps.store.scanProjectionSnapshot(
      { name, orgId, eventsUpTo: orgId === null ? 'head' : 'checkpoint' },
      {
        seed: (jobs) => {
          for (const [org, own] of byOrg(jobs)) states.set(org, projection.seedAll(stateOf(org), own));
          seeded += jobs.length;
        },
        events: (page) => {
          for (const [org, own] of byOrg(page)) states.set(org, projection.applyAll(stateOf(org), own));
          events += page.length;
        },
      },
    );
    if (snap.checkpoint.version !== leased.version) continue; // someone committed after our lease: start over
    const position = orgId === null ? Math.max(snap.head, 0) : snap.checkpoint.position;
    if (orgId !== null && !states.has(orgId)) states.set(orgId, emptyDashboard());
    try {
      const now = deps.clock.now();
      await deps.store.commitProjection({
        name,
        expectedVersion: leased.version,
        position,
        states: [...states].map(([org, s]) => ({ orgId: org, state: projection.encode(s) })),
        replaceAll: orgId === null,
        // Released: runners resume at once.
        leaseOwner: ownerId,
        leaseExpiresAt: 0,
        now,
      });
    } catch (e) {
      if (isUpshiftError(e, 'PROJECTION_CONFLICT')) continue;
      throw e;
    }
    return { projection: name, org_id: orgId, position, orgs: states.size, events_replayed: events, jobs_seeded: seeded, attempts: attempt };
  }
  throw new UpshiftError('PROJECTION_CONFLICT', `projection ${name} kept moving during ${MAX_ATTEMPTS} rebuild attempts; stop the other rebuild and try again`);
}

export interface ProjectionStatus {
  readonly projection: ProjectionName;
  readonly position: number;
  readonly head: number;
  readonly lag_events: number;
  readonly version: number;
  readonly lease_owner: string | null;
  readonly lease_expires_at: string | null;
  readonly updated_at: string | null;
}

export async function projectionStatus(deps: ProjectionDeps, name: ProjectionName): Promise<ProjectionStatus> {
  const [cp, head] = await Promise.all([deps.store.readCheckpoint(name), deps.store.headPosition()]);
  const now = deps.clock.now();
  return {
    projection: name,
    position: cp.position,
    head,
    lag_events: Math.max(0, head - cp.position),
    version: cp.version,
    lease_owner: cp.leaseExpiresAt > now ? cp.leaseOwner : null,
    lease_expires_at: cp.leaseExpiresAt > now ? new Date(cp.leaseExpiresAt).toISOString() : null,
    updated_at: cp.updatedAt === null ? null : new Date(cp.updatedAt).toISOString(),
  };
}

export interface VerifyReport {
  readonly projection: ProjectionName;
  readonly org_id: string | null;
  /**
   * `ok`: every org equal; `mismatch`: some org differs (see differences) — an org the projection
   * has fully applied must equal its job rows whatever other orgs do; `lagging`: no difference,
   * but some orgs still had unapplied events in every snapshot read until the wait ended.
   */
  readonly status: 'ok' | 'mismatch' | 'lagging';
  readonly position: number;
  readonly head: number;
  readonly orgs_checked: number;
  readonly jobs_checked: number;
  /** Orgs with events after the checkpoint in the last snapshot (not compared). */
  readonly orgs_lagging: readonly string[];
  readonly differences: readonly { readonly org_id: string; readonly problems: readonly string[] }[];
}

/**
 * The parity check: in one snapshot, recomputes every org's stats from the job rows (the source
 * tables: counts by status per analyzer, run-time histograms, completions per minute) and
 * compares them with the projection's states. An org is comparable when none of its events lies
 * after the snapshot's checkpoint (every change of a job row writes an event in the same
 * transaction, so its rows then describe exactly what the projection applied). `catchUp` (e.g. a
 * runner's) runs first; while orgs remain lagging and nothing differs, the check is retried for at
 * most `waitMs` (default 20 s: longer than a runner's lease, so a runner that died holding it
 * cannot make verify give up).
 */
export async function verifyProjection(
  deps: ProjectionDeps,
  name: ProjectionName,
  orgId: OrgId | null,
  opts: { readonly catchUp: () => Promise<unknown>; readonly waitMs?: number; readonly pauseMs?: number },
): Promise<VerifyReport> {
  const projection = PROJECTIONS[name];
  const deadline = deps.clock.now() + Math.max(0, opts.waitMs ?? 20_000);
  for (;;) {
    await opts.catchUp();
    let stored = new Map<OrgId, string>();
    let pending: ReadonlySet<OrgId> = new Set();
    const source = new Map<OrgId, DashboardState>();
    let jobs = 0;
    const snap = await deps.store.scanProjectionSnapshot(
      { name, orgId, eventsUpTo: 'checkpoint' },
      {
        pendingOrgs: (orgs) => {
          pending = orgs;
        },
        states: (s) => {
          stored = new Map(s);
        },
        jobs: (page) => {
          for (const [org, own] of byOrg(page)) source.set(org, applyDashboardJobs(source.get(org) ?? emptyDashboard(), own));
          jobs += page.length;
        },
      },
    );
    const orgs = [...new Set<OrgId>([...stored.keys(), ...source.keys()])].sort();
    const differences: { org_id: string; problems: string[] }[] = [];
    let checked = 0;
    for (const org of orgs) {
      if (pending.has(org)) continue;
      checked++;
      const text = stored.get(org);
      const actual = text === undefined ? emptyDashboard() : projection.decode(text);
      const expected = source.get(org) ?? emptyDashboard();
      if (canonicalDashboard(expected) === canonicalDashboard(actual)) continue;
      const problems = diffDashboard(expected, actual);
      differences.push({ org_id: org, problems: problems.length > 0 ? problems : ['states differ'] });
    }
    const lagging = [...pending].sort();
    const report: VerifyReport = {
      projection: name,
      org_id: orgId,
      status: differences.length > 0 ? 'mismatch' : lagging.length > 0 ? 'lagging' : 'ok',
      position: snap.checkpoint.position,
      head: snap.head,
      orgs_checked: checked,
      jobs_checked: jobs,
      orgs_lagging: lagging,
      differences,
    };
    if (report.status !== 'lagging' || deps.clock.now() >= deadline) return report;
    await new Promise((r) => setTimeout(r, opts.pauseMs ?? 200));
  }
}
