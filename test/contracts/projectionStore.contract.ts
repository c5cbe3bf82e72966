import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProjectionRunner } from '../../src/app/projectionRunner.js';
import { rebuildProjection, verifyProjection } from '../../src/app/projections.js';
import { runRetention } from '../../src/app/retention.js';
import { canonicalDashboard, dashboardProjection, type DashboardState } from '../../src/core/dashboardStats.js';
import { isUpshiftError } from '../../src/core/errors.js';
import { asOrgId, newJobId, newResultId, type OrgId } from '../../src/core/ids.js';
import type { LeaseRef } from '../../src/core/job.js';
import { ManualClock } from '../../src/ports/clock.js';
import type { JobStore } from '../../src/ports/jobStore.js';
import { silentLogger } from '../../src/ports/logger.js';
import type { ProjectionStore } from '../../src/ports/projectionStore.js';
import type { RetentionStore } from '../../src/ports/retentionStore.js';

export interface ProjectionFixture {
  readonly store: JobStore & RetentionStore & ProjectionStore;
  readonly cleanup: () => Promise<void>;
}

/**
 * The ProjectionStore conformance suite plus the runner, rebuild and verify use cases against
 * the adapter: exactly-once application across stops and restarts, compare-and-set commits,
 * the lease, tenant-bound reads, and retention (live and rebuilt states agree with the source).
 */
export function projectionStoreContract(name: string, factory: () => Promise<ProjectionFixture>): void {
  describe(`ProjectionStore contract: ${name}`, () => {
    const T0 = Date.UTC(2026, 0, 1, 12);
    const A = asOrgId('org-a');
    const B = asOrgId('org-b');
    let fx: ProjectionFixture;
    let store: ProjectionFixture['store'];
    let clock: ManualClock;

    beforeEach(async () => {
      fx = await factory();
      store = fx.store;
      clock = new ManualClock(T0);
      await store.migrate();
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    let seq = 0;
    const submit = async (orgId: OrgId, analyzer = 'noop') =>
      (
        await store.submitJob({
          jobId: newJobId(clock.now() + seq++),
          orgId,
          analyzer,
          input: {},
          priority: 0,
          maxAttempts: 2,
          idempotencyKey: null,
          requestHash: null,
          traceContext: null,
          now: clock.now(),
        })
      ).job;
    const claim = async (orgId: OrgId): Promise<LeaseRef[]> =>
      (await store.claimJobs({ orgId, limit: 100, workerId: 'w', now: clock.now(), leaseMs: 60_000, analyzers: null })).map((j) => ({
        orgId,
        jobId: j.jobId,
        attempt: j.attempt,
        leaseToken: j.leaseToken,
      }));

    /** A mix of every transition for one org: completed (with run times), failed, canceled before and while running, retried, queued, running. */
    async function workload(orgId: OrgId, n: number): Promise<void> {
      for (let i = 0; i < n; i++) await submit(orgId, i % 2 === 0 ? 'noop' : 'sleep');
      const leases = await claim(orgId);
      for (const [i, lease] of leases.entries()) {
        clock.advance(7 + i);
        if (i % 5 === 0) await store.finishJob(lease, { status: 'failed', error: { code: 'ANALYZER_FAILED', message: 'x' } }, clock.now());
        else if (i % 5 === 1) await store.finishJob(lease, { status: 'retry', error: { code: 'ANALYZER_FAILED', message: 'x' }, retryAt: clock.now() }, clock.now());
        else if (i % 5 === 2) await store.finishJob(lease, { status: 'canceled', reason: 'cancel_observed' }, clock.now());
        else if (i % 5 === 3) continue; // stays running
        else await store.finishJob(lease, { status: 'completed', resultId: newResultId(clock.now()), payload: { i } }, clock.now());
      }
      const extra = await submit(orgId);
      await store.requestCancel(orgId, extra.jobId, clock.now()); // canceled while queued
      await submit(orgId); // stays queued
      clock.advance(60_000);
    }

    const runner = (ownerId: string, batchSize = 4, rebuild?: (opts: { readonly onlyIfNeverBuilt: boolean }) => Promise<unknown>) =>
      new ProjectionRunner({ store, projection: dashboardProjection, clock, logger: silentLogger, ownerId, batchSize, leaseMs: 10_000, ...(rebuild && { rebuild }) });
    const drain = async (r: ProjectionRunner<DashboardState>): Promise<number> => {
      let batches = 0;
      while ((await r.step()) === 'applied') batches++;
      return batches;
    };
    const statesText = async (): Promise<Map<string, string>> => {
      const out = new Map<string, string>();
      await store.scanProjectionSnapshot({ name: 'dashboard_stats', orgId: null, eventsUpTo: 'checkpoint' }, {
        states: (s) => {
          for (const [org, text] of s) out.set(org, canonicalDashboard(dashboardProjection.decode(text)));
        },
      });
      return out;
    };
    const verify = (orgId: OrgId | null = null) => verifyProjection({ store, clock }, 'dashboard_stats', orgId, { catchUp: async () => undefined, waitMs: 0 });

    it('a runner stopped between batches and restarted applies every event exactly once (= rebuild, = source)', async () => {
      await workload(A, 12);
      await workload(B, 7);
      const head = await store.headPosition();
      expect(head).toBeGreaterThan(20);

      const first = runner('r1', 5);
      expect(await first.step()).toBe('applied');
      expect(await first.step()).toBe('applied');
      const mid = await store.readCheckpoint('dashboard_stats');
      expect(mid.position).toBeGreaterThan(0);
      expect(mid.position).toBeLessThan(head);
      // "Killed": never runs again. A second process waits out the lease, then takes over.
      const second = runner('r2', 7);
      expect(await second.step()).toBe('leased_elsewhere');
      clock.advance(10_001);
      await drain(second);
      const done = await store.readCheckpoint('dashboard_stats');
      expect(done.position).toBe(head);
      expect((await verify()).status).toBe('ok');

      const live = await statesText();
      const report = await rebuildProjection({ store, clock }, 'dashboard_stats', null, 'rebuilder');
      expect(report!.position).toBe(head);
      expect(await statesText()).toEqual(live);
      expect((await verify()).status).toBe('ok');
    });

    it('a batch whose checkpoint moved meanwhile commits nothing (PROJECTION_CONFLICT)', async () => {
      await workload(A, 4);
      const cp = await store.readCheckpoint('dashboard_stats');
      const ok = await store.commitProjection({ name: 'dashboard_stats', expectedVersion: cp.version, position: 3, states: [{ orgId: A, state: '{"analyzers":{},"completedByMinute":{}}' }], replaceAll: false, leaseOwner: 'x', leaseExpiresAt: 0, now: clock.now() });
      expect(ok.version).toBe(cp.version + 1);
      const stale = store.commitProjection({ name: 'dashboard_stats', expectedVersion: cp.version, position: 9, states: [{ orgId: B, state: '{}' }], replaceAll: true, leaseOwner: 'y', leaseExpiresAt: 0, now: clock.now() });
      await expect(stale).rejects.toSatisfy((e: unknown) => isUpshiftError(e, 'PROJECTION_CONFLICT'));
      const after = await store.readCheckpoint('dashboard_stats');
      expect(after.position).toBe(3);
      expect(after.leaseOwner).toBe('x');
      expect([...(await store.readStates('dashboard_stats', [A, B])).keys()]).toEqual([A]);
    });

    it('tenant reads see only their org; pending events count the unapplied part', async () => {
      await workload(A, 3);
      const r = runner('r1', 1000);
      await drain(r);
      await submit(A);
      await submit(A);
      const a = await store.readTenantProjection('dashboard_stats', A, 100);
      expect(a.state).not.toBeNull();
      expect(a.pendingEvents).toBe(2);
      expect((await store.readTenantProjection('dashboard_stats', A, 1)).pendingEvents).toBe(1);
      const b = await store.readTenantProjection('dashboard_stats', B, 100);
      expect(b.state).toBeNull();
      expect(b.pendingEvents).toBe(0);
      let jobsOfB = 0;
      await store.scanTenantJobs(B, (jobs) => (jobsOfB += jobs.length));
      expect(jobsOfB).toBe(0);
    });

    it('retention deleting event logs corrupts neither the live projection nor a rebuild', async () => {
      await workload(A, 10);
      await workload(B, 5);
      await drain(runner('r1', 6));
      const live = await statesText();
      expect((await verify()).status).toBe('ok');
      // Delete the events of every terminal job (they finished more than a minute ago).
      const report = await runRetention({ store, clock }, { now: clock.now(), resultsTtlMs: 3_600_000, eventsTtlMs: 1000, dryRun: false });
      expect(report.events.delete_count).toBeGreaterThan(0);
      expect(await statesText()).toEqual(live);
      expect((await verify()).status).toBe('ok');
      const rebuilt = await rebuildProjection({ store, clock }, 'dashboard_stats', null, 'rebuilder');
      expect(rebuilt!.jobs_seeded).toBeGreaterThan(0);
      expect(await statesText()).toEqual(live);
      expect((await verify()).status).toBe('ok');
    });

    /** Every event position of every job of A and B (through the job store's own reads). */
    const eventPositions = async (): Promise<Set<number>> => {
      const out = new Set<number>();
      for (const org of [A, B]) {
        for (const job of await store.listJobs(org, { limit: 1000 })) {
          for (const e of await store.listEvents(org, job.jobId, 0, 10_000)) out.add(e.position);
        }
      }
      return out;
    };

    it('retention raises the events-deleted watermark to the highest position it deleted; dry runs leave it', async () => {
      await workload(A, 8);
      await workload(B, 4);
      expect(await store.eventsDeletedThrough()).toBe(0);
      const retention = (dryRun: boolean) => runRetention({ store, clock }, { now: clock.now(), resultsTtlMs: 3_600_000, eventsTtlMs: 1000, dryRun });
      await retention(true);
      expect(await store.eventsDeletedThrough()).toBe(0);
      const before = await eventPositions();
      expect((await retention(false)).events.delete_count).toBeGreaterThan(0);
      const after = await eventPositions();
      const deleted = [...before].filter((p) => !after.has(p));
      expect(deleted.length).toBeGreaterThan(0);
      const mark = await store.eventsDeletedThrough();
      expect(mark).toBe(Math.max(...deleted));
      // Never lowered: a purge of older events (none left here) keeps it.
      await retention(false);
      expect(await store.eventsDeletedThrough()).toBe(mark);
    });

    it('a batch read from below the watermark cannot commit (PROJECTION_CONFLICT); a rebuild and later batches can', async () => {
      await workload(A, 6);
      await runRetention({ store, clock }, { now: clock.now(), resultsTtlMs: 3_600_000, eventsTtlMs: 1000, dryRun: false });
      const mark = await store.eventsDeletedThrough();
      expect(mark).toBeGreaterThan(0);
      const cp = await store.readCheckpoint('dashboard_stats');
      const batch = (readFrom: number) =>
        store.commitProjection({ name: 'dashboard_stats', expectedVersion: cp.version, position: mark + 1, states: [{ orgId: A, state: '{}' }], replaceAll: false, leaseOwner: 'x', leaseExpiresAt: 0, now: clock.now(), readFrom });
      await expect(batch(mark - 1)).rejects.toSatisfy((e: unknown) => isUpshiftError(e, 'PROJECTION_CONFLICT'));
      expect(await store.readCheckpoint('dashboard_stats')).toEqual(cp);
      expect((await store.readStates('dashboard_stats', [A])).size).toBe(0);
      expect((await batch(mark)).version).toBe(cp.version + 1);
    });

    it('a runner whose checkpoint lies below events retention deleted rebuilds instead of applying what is left', async () => {
      await workload(A, 10);
      await workload(B, 6);
      const r = runner('r1', 4, (opts) => rebuildProjection({ store, clock }, 'dashboard_stats', null, 'repair', opts));
      await r.step(); // bootstrap (never built): checkpoint at the head
      await workload(A, 8); // new work the runner has not applied yet…
      const behind = await store.readCheckpoint('dashboard_stats');
      // …whose events retention deletes first (the runner was "stopped" past the events TTL).
      const purged = await runRetention({ store, clock }, { now: clock.now(), resultsTtlMs: 3_600_000, eventsTtlMs: 1000, dryRun: false });
      expect(purged.events.delete_count).toBeGreaterThan(0);
      expect(await store.eventsDeletedThrough()).toBeGreaterThan(behind.position);
      clock.advance(600_000); // every lease taken so far has run out
      // Without a rebuild callback a runner refuses to apply the rest and stays where it is.
      expect(await runner('r0', 4).step()).toBe('conflict');
      expect((await store.readCheckpoint('dashboard_stats')).position).toBe(behind.position);
      // With it, the runner rebuilds; the states then agree with the source tables.
      expect(await r.step()).toBe('applied');
      expect((await store.readCheckpoint('dashboard_stats')).position).toBeGreaterThanOrEqual(await store.eventsDeletedThrough());
      await drain(r);
      expect((await verify()).status).toBe('ok');
    });

    it('verify compares the orgs the projection has fully applied even while another org has unapplied events', async () => {
      await workload(A, 5);
      await workload(B, 5);
      await drain(runner('r1', 1000));
      await submit(A); // A now has an unapplied event
      const lagging = await verify();
      expect(lagging).toMatchObject({ status: 'lagging', orgs_lagging: [A], orgs_checked: 1 });
      const cp = await store.readCheckpoint('dashboard_stats');
      await store.commitProjection({ name: 'dashboard_stats', expectedVersion: cp.version, position: cp.position, states: [{ orgId: B, state: '{"analyzers":{},"completedByMinute":{}}' }], replaceAll: false, leaseOwner: 'x', leaseExpiresAt: 0, now: clock.now() });
      const broken = await verify();
      expect(broken.status).toBe('mismatch');
      expect(broken.differences.map((d) => d.org_id)).toEqual([B]);
      expect(broken.orgs_lagging).toEqual([A]);
    });

    it('a first start on a store whose retention already deleted event logs bootstraps by rebuild (once, across two runners)', async () => {
      await workload(A, 10);
      await workload(B, 4);
      const purged = await runRetention({ store, clock }, { now: clock.now(), resultsTtlMs: 3_600_000, eventsTtlMs: 1000, dryRun: false });
      expect(purged.events.delete_count).toBeGreaterThan(0);
      await workload(A, 3); // and new work after the purge
      const boot = (id: string) => () => rebuildProjection({ store, clock }, 'dashboard_stats', null, id, { onlyIfNeverBuilt: true });
      // A runner's rebuild callback, limited to the bootstrap (the repair case has its own test).
      const bootOnly = (id: string) => (opts: { readonly onlyIfNeverBuilt: boolean }) => (opts.onlyIfNeverBuilt ? boot(id)() : Promise.resolve(null));
      const r1 = runner('r1', 5, bootOnly('b1'));
      const r2 = runner('r2', 5, bootOnly('b2'));
      const [o1, o2] = await Promise.all([r1.step(), r2.step()]);
      expect([o1, o2]).toContain('applied');
      const after = await store.readCheckpoint('dashboard_stats');
      expect(after.version).toBeGreaterThan(0);
      // A second bootstrap does nothing once the projection exists.
      expect(await boot('b3')()).toBeNull();
      expect((await store.readCheckpoint('dashboard_stats')).version).toBe(after.version);
      clock.advance(10_001);
      await drain(runner('r3', 50));
      expect((await verify()).status).toBe('ok');
      // A replay from 0 would miss the purged jobs: a runner refuses it (the events-deleted
      // watermark is above its checkpoint) instead of counting what is left, and verify says it lags.
      const cp = await store.readCheckpoint('dashboard_stats');
      await store.commitProjection({ name: 'dashboard_stats', expectedVersion: cp.version, position: 0, states: [], replaceAll: true, leaseOwner: 'x', leaseExpiresAt: 0, now: clock.now() });
      expect(await runner('r4', 50).step()).toBe('conflict');
      expect((await store.readCheckpoint('dashboard_stats')).position).toBe(0);
      expect((await verify()).status).toBe('lagging');
      // A runner that may rebuild repairs it.
      await drain(runner('r5', 50, (opts) => rebuildProjection({ store, clock }, 'dashboard_stats', null, 'r5-rebuild', opts)));
      expect((await verify()).status).toBe('ok');
    });

    it('a one-org rebuild replaces that org only and keeps the checkpoint', async () => {
      await workload(A, 6);
      await workload(B, 6);
      await drain(runner('r1', 1000));
      const live = await statesText();
      const before = await store.readCheckpoint('dashboard_stats');
      // Corrupt org A's state, then rebuild it.
      await store.commitProjection({ name: 'dashboard_stats', expectedVersion: before.version, position: before.position, states: [{ orgId: A, state: '{"analyzers":{},"completedByMinute":{}}' }], replaceAll: false, leaseOwner: 'x', leaseExpiresAt: 0, now: clock.now() });
      const broken = await verify();
      expect(broken.status).toBe('mismatch');
      expect(broken.differences.map((d) => d.org_id)).toEqual([A]);
      const r = await rebuildProjection({ store, clock }, 'dashboard_stats', A, 'rebuilder');
      expect(r!.position).toBe(before.position);
      expect(await statesText()).toEqual(live);
      expect((await verify(A)).status).toBe('ok');
    });
  });
}
