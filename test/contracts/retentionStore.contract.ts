import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runRetention, type RetentionOptions } from '../../src/app/retention.js';
import { asOrgId, newJobId, newResultId, newToken, type JobId, type OrgId, type ResultId } from '../../src/core/ids.js';
import type { Job, LeaseRef } from '../../src/core/job.js';
import type { RetentionReport } from '../../src/core/retention.js';
import { ManualClock } from '../../src/ports/clock.js';
import type { DeliveryStore } from '../../src/ports/deliveryStore.js';
import type { JobStore } from '../../src/ports/jobStore.js';
import type { JobKey, PurgeCommand, RetentionStore } from '../../src/ports/retentionStore.js';

/** What an adapter hands the suite: a fresh, empty store plus two test-only fixture hooks. */
export interface RetentionFixture {
  readonly store: JobStore & RetentionStore & DeliveryStore;
  readonly cleanup: () => Promise<void>;
  /** Makes a terminal job look like legacy data without `finished_at` (raw SQL in the adapter). */
  readonly clearFinishedAt: (orgId: OrgId, jobId: JobId) => Promise<void>;
  /** A digest of every table's rows (and their counts): equal digests = no mutation. */
  readonly fingerprint: () => Promise<string>;
}

/**
 * The RetentionStore conformance suite, plus the retention use case run against the adapter.
 * Adapter-agnostic (port + core + app only), so SQLite and PostgreSQL run exactly these tests.
 * Time is explicit: jobs finish at T0 + n, runs pass `now`.
 */
export function retentionStoreContract(name: string, factory: () => Promise<RetentionFixture>): void {
  describe(`RetentionStore contract: ${name}`, () => {
    const T0 = Date.UTC(2026, 0, 1);
    const HOUR = 3_600_000;
    const A = asOrgId('org-a');
    const B = asOrgId('org-b');
    let fx: RetentionFixture;
    let store: JobStore & RetentionStore & DeliveryStore;

    beforeEach(async () => {
      fx = await factory();
      store = fx.store;
      await store.migrate();
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    const submit = async (orgId: OrgId = A, now = T0): Promise<Job> =>
      (
        await store.submitJob({
          jobId: newJobId(now),
          orgId,
          analyzer: 'noop',
          input: { n: 1 },
          priority: 0,
          maxAttempts: 3,
          idempotencyKey: null,
          requestHash: null,
          traceContext: null,
          now,
        })
      ).job;
    const start = async (orgId: OrgId = A, now = T0): Promise<LeaseRef> => {
      const s = await submit(orgId, now);
      const claimed = await store.claimJobs({ orgId, limit: 100, workerId: 'w', now, leaseMs: 60_000, analyzers: null });
      const job = claimed.find((j) => j.jobId === s.jobId)!;
      return { orgId, jobId: job.jobId, attempt: job.attempt, leaseToken: job.leaseToken };
    };
    /** A job with `partials` partial results and `progress` progress events, finished at `at`. */
    const finished = async (
      outcome: 'completed' | 'failed' | 'canceled',
      at: number,
      opts: { orgId?: OrgId; partials?: number; progress?: number } = {},
    ): Promise<{ job: Job; resultIds: ResultId[] }> => {
      const lease = await start(opts.orgId ?? A, at - 10);
      const resultIds: ResultId[] = [];
      for (let i = 0; i < (opts.progress ?? 0); i++) await store.recordProgress(lease, i / 100, null, at - 5);
      for (let i = 0; i < (opts.partials ?? 0); i++) resultIds.push((await store.recordPartial(lease, `c${i}`, { i }, at - 5)).result.resultId);
      let job: Job;
      if (outcome === 'completed') {
        const resultId = newResultId(Date.now());
        resultIds.push(resultId);
        job = await store.finishJob(lease, { status: 'completed', resultId, payload: { done: true } }, at);
      } else if (outcome === 'failed') {
        job = await store.finishJob(lease, { status: 'failed', error: { code: 'ANALYZER_FAILED', message: 'boom' } }, at);
      } else {
        job = await store.finishJob(lease, { status: 'canceled', reason: 'cancel_observed' }, at);
      }
      return { job, resultIds };
    };
    const countEvents = async (j: Job): Promise<number> => (await store.listEvents(j.orgId, j.jobId, 0, 100_000)).length;
    const countResults = async (j: Job): Promise<number> => (await store.listResults(j.orgId, j.jobId)).length;
    const retention = (opts: Partial<RetentionOptions> & { now: number }): Promise<RetentionReport> =>
      runRetention(
        { store, clock: new ManualClock(opts.now), sleep: () => Promise.resolve() },
        { resultsTtlMs: HOUR, eventsTtlMs: HOUR, dryRun: false, ...opts },
      );
    const counts = (r: RetentionReport) => ({
      terminal: r.terminal_job_count,
      results: [r.results.delete_count, r.results.kept_count],
      events: [r.events.delete_count, r.events.kept_count],
      skipped: r.skipped_missing_timestamp,
    });

    describe('scanTerminalJobs', () => {
      it('pages through every job once, returning only terminal ones with their row counts', async () => {
        const done: Job[] = [];
        for (let i = 0; i < 7; i++) done.push((await finished('completed', T0 + i, { orgId: i % 2 ? A : B, partials: i % 3, progress: 1 })).job);
        const queued = await submit(A);
        await start(B);
        const seen: string[] = [];
        const stats = new Map<string, { resultCount: number; eventCount: number; status: string; finishedAt: number | null }>();
        let after: JobKey | null = null;
        let pages = 0;
        do {
          const page = await store.scanTerminalJobs(after, 3);
          expect(page.examined).toBeLessThanOrEqual(3);
          expect(page.jobs.length).toBeLessThanOrEqual(page.examined);
          for (const j of page.jobs) {
            seen.push(j.jobId);
            stats.set(j.jobId, j);
          }
          after = page.next;
          pages++;
        } while (after !== null && pages < 100);
        expect(pages).toBeGreaterThanOrEqual(3);
        expect(seen.sort()).toEqual(done.map((j) => j.jobId).sort());
        expect(seen).not.toContain(queued.jobId);
        for (const j of done) {
          expect(stats.get(j.jobId)).toMatchObject({ status: 'completed', finishedAt: j.finishedAt, resultCount: await countResults(j), eventCount: await countEvents(j) });
        }
      });

      it('an empty store is one empty page', async () => {
        expect(await store.scanTerminalJobs(null, 10)).toEqual({ jobs: [], examined: 0, next: null });
      });
    });

    describe('purgeJobData', () => {
      it('never deletes rows of a non-terminal, too young, unknown or other-org job', async () => {
        const lease = await start(A, T0);
        await store.recordPartial(lease, 'c', { p: 1 }, T0 + 1);
        const queued = await submit(A, T0);
        const young = (await finished('completed', T0 + 2 * HOUR, { partials: 1 })).job;
        const old = (await finished('completed', T0, { partials: 1 })).job;
        const fp = await fx.fingerprint();
        const cmd: PurgeCommand = {
          jobs: [
            { orgId: A, jobId: lease.jobId },
            { orgId: A, jobId: queued.jobId },
            { orgId: A, jobId: young.jobId },
            { orgId: B, jobId: old.jobId },
            { orgId: A, jobId: newJobId(T0) },
          ],
          resultsCutoff: T0 + HOUR,
          eventsCutoff: T0 + HOUR,
          notificationsCutoff: T0 + HOUR,
          maxRows: 100,
          now: T0 + 3 * HOUR,
        };
        expect(await store.purgeJobData(cmd)).toEqual({ resultsDeleted: 0, eventsDeleted: 0, notificationsDeleted: 0, jobsDone: 5 });
        expect(await fx.fingerprint()).toBe(fp);
      });

      it('deletes results (recording them as removed, tenant-bound) and events, and keeps the job row', async () => {
        const { job, resultIds } = await finished('completed', T0, { partials: 2, progress: 2 });
        const before = (await store.getJob(A, job.jobId))!;
        expect(resultIds).toHaveLength(3);
        const out = await store.purgeJobData({ jobs: [job], resultsCutoff: T0, eventsCutoff: T0, notificationsCutoff: null, maxRows: 100, now: T0 + 5 });
        expect(out).toEqual({ resultsDeleted: 3, eventsDeleted: 7, notificationsDeleted: 0, jobsDone: 1 });
        expect(await store.getJob(A, job.jobId)).toEqual(before);
        expect(await store.listResults(A, job.jobId)).toEqual([]);
        expect(await store.listEvents(A, job.jobId, 0, 100)).toEqual([]);
        expect(await store.getLatestResult(A, job.jobId)).toBeUndefined();
        for (const id of resultIds) {
          expect(await store.getResult(A, id)).toBeUndefined();
          expect(await store.getRemovedResult(A, id)).toEqual({ resultId: id, jobId: job.jobId, orgId: A, removedAt: T0 + 5 });
          expect(await store.getRemovedResult(B, id)).toBeUndefined();
        }
        // Idempotent: nothing is left, the repeat deletes nothing and keeps the first removal time.
        expect(await store.purgeJobData({ jobs: [job], resultsCutoff: T0, eventsCutoff: T0, notificationsCutoff: null, maxRows: 100, now: T0 + 9 })).toEqual({ resultsDeleted: 0, eventsDeleted: 0, notificationsDeleted: 0, jobsDone: 1 });
        expect((await store.getRemovedResult(A, resultIds[0]!))?.removedAt).toBe(T0 + 5);
      });

      it('applies each cutoff to its own kind', async () => {
        const { job } = await finished('completed', T0, { partials: 1 });
        expect(await store.purgeJobData({ jobs: [job], resultsCutoff: T0, eventsCutoff: T0 - 1, notificationsCutoff: null, maxRows: 100, now: T0 })).toEqual({ resultsDeleted: 2, eventsDeleted: 0, notificationsDeleted: 0, jobsDone: 1 });
        expect(await countEvents(job)).toBe(4);
        expect(await store.purgeJobData({ jobs: [job], resultsCutoff: T0 - 1, eventsCutoff: T0, notificationsCutoff: null, maxRows: 100, now: T0 })).toEqual({ resultsDeleted: 0, eventsDeleted: 4, notificationsDeleted: 0, jobsDone: 1 });
      });

      it('deletes at most maxRows per call, oldest first, and reports the jobs it finished', async () => {
        const big = (await finished('completed', T0, { progress: 12 })).job; // 15 events, 1 result
        const small = (await finished('failed', T0)).job; // 3 events
        const jobs = [big, small];
        const first = await store.purgeJobData({ jobs, resultsCutoff: T0, eventsCutoff: T0, notificationsCutoff: null, maxRows: 5, now: T0 });
        expect(first).toEqual({ resultsDeleted: 1, eventsDeleted: 4, notificationsDeleted: 0, jobsDone: 0 });
        const left = await store.listEvents(A, big.jobId, 0, 100);
        expect(left.map((e) => e.eventSeq)).toEqual(Array.from({ length: 11 }, (_, i) => i + 5));
        let total = first.resultsDeleted + first.eventsDeleted;
        let rest = jobs.slice(first.jobsDone);
        for (let i = 0; i < 10 && rest.length > 0; i++) {
          const out = await store.purgeJobData({ jobs: rest, resultsCutoff: T0, eventsCutoff: T0, notificationsCutoff: null, maxRows: 5, now: T0 });
          expect(out.resultsDeleted + out.eventsDeleted).toBeLessThanOrEqual(5);
          total += out.resultsDeleted + out.eventsDeleted;
          rest = rest.slice(out.jobsDone);
        }
        expect(rest).toEqual([]);
        expect(total).toBe(1 + 15 + 3);
        expect(await countEvents(big)).toBe(0);
        expect(await countEvents(small)).toBe(0);
      });
    });

    describe('notifications (inbox entries and the settled delivery log)', () => {
      const LEASE = 60_000;
      /**
       * A finished job of `orgId` whose in-app entry was delivered (an inbox row and a delivered
       * entry) and whose webhook delivery to an endpoint of the org failed for good (a failed
       * entry): three notification rows.
       */
      const notified = async (orgId: OrgId, at: number) => {
        const { job } = await finished('completed', at, { orgId });
        for (const e of await store.claimOutbox({ kind: 'in_app', now: at, limit: 100, leaseMs: LEASE })) await store.completeInApp(e, at);
        for (const e of await store.claimOutbox({ kind: 'webhook', now: at, limit: 100, leaseMs: LEASE })) {
          await store.recordWebhookAttempt(e, { ok: false, statusCode: 410, error: 'HTTP 410' }, at, null);
        }
        return job;
      };
      const endpoint = (orgId: OrgId) =>
        store.createWebhookEndpoint({ endpointId: newToken('whe_'), orgId, url: 'https://example.com/hook', description: null, eventTypes: ['async.job.completed'], secret: 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=', now: T0 });
      const statsOf = async (job: Job) => {
        for (let after: JobKey | null = null, i = 0; i < 100; i++) {
          const page = await store.scanTerminalJobs(after, 50);
          const hit = page.jobs.find((j) => j.jobId === job.jobId);
          if (hit) return hit;
          if (page.next === null) return undefined;
          after = page.next;
        }
        return undefined;
      };

      it('counts and deletes a job’s inbox entries and settled outbox entries, never a pending one, only with a cutoff', async () => {
        const epA = await endpoint(A);
        const epB = await endpoint(B);
        const job = await notified(A, T0);
        const other = await notified(B, T0);
        // A job whose deliveries are still pending: its entries are not retention rows.
        const { job: pending } = await finished('completed', T0);
        expect(await statsOf(job)).toMatchObject({ notificationCount: 3 });
        expect(await statsOf(pending)).toMatchObject({ notificationCount: 0 });
        expect(await store.listJobNotifications(A, job.jobId, 'in_app', 10)).toHaveLength(1);
        expect(await store.listDeliveries(A, epA.endpointId, { limit: 10 })).toHaveLength(2);

        const base = { resultsCutoff: T0 - 1, eventsCutoff: T0 - 1, maxRows: 100, now: T0 + 5 };
        const jobs = [job, pending];
        // No cutoff, or one before the jobs finished: nothing goes.
        expect(await store.purgeJobData({ ...base, jobs, notificationsCutoff: null })).toEqual({ resultsDeleted: 0, eventsDeleted: 0, notificationsDeleted: 0, jobsDone: 2 });
        expect(await store.purgeJobData({ ...base, jobs, notificationsCutoff: T0 - 1 })).toEqual({ resultsDeleted: 0, eventsDeleted: 0, notificationsDeleted: 0, jobsDone: 2 });
        expect(await store.purgeJobData({ ...base, jobs, notificationsCutoff: T0 })).toEqual({ resultsDeleted: 0, eventsDeleted: 0, notificationsDeleted: 3, jobsDone: 2 });

        expect(await store.listJobNotifications(A, job.jobId, 'in_app', 10)).toEqual([]);
        expect((await store.listInbox(A, { unreadOnly: false, limit: 10 })).map((n) => n.jobId)).not.toContain(job.jobId);
        // The pending job's webhook delivery is still there and still claimable.
        expect((await store.listDeliveries(A, epA.endpointId, { limit: 10 })).map((d) => d.jobId)).toEqual([pending.jobId]);
        expect((await store.claimOutbox({ kind: 'webhook', now: T0 + 10, limit: 10, leaseMs: LEASE })).map((e) => e.jobId)).toEqual([pending.jobId]);
        expect((await store.claimOutbox({ kind: 'in_app', now: T0 + 10, limit: 10, leaseMs: LEASE })).map((e) => e.jobId)).toEqual([pending.jobId]);
        // Results, events and the other org's notifications are untouched.
        expect(await countEvents(job)).toBe(3);
        expect(await countResults(job)).toBe(1);
        expect(await store.listJobNotifications(B, other.jobId, 'in_app', 10)).toHaveLength(1);
        expect(await store.listDeliveries(B, epB.endpointId, { limit: 10 })).toHaveLength(1);
        expect(await statsOf(job)).toMatchObject({ notificationCount: 0 });
      });

      it('runRetention deletes notifications only with a TTL; a dry run predicts the live run', async () => {
        await endpoint(A);
        const old = await notified(A, T0);
        const young = await notified(A, T0 + 10 * HOUR);
        const without = await retention({ now: T0 + 2 * HOUR });
        expect(without.notifications).toEqual({ delete_count: 0, kept_count: 6, job_count: 0, ttl_seconds: null, cutoff: null });
        const fp = await fx.fingerprint();
        const dry = await retention({ now: T0 + 2 * HOUR, notificationsTtlMs: HOUR, dryRun: true });
        expect(await fx.fingerprint()).toBe(fp);
        expect(dry.notifications).toEqual({ delete_count: 3, kept_count: 3, job_count: 1, ttl_seconds: 3600, cutoff: new Date(T0 + HOUR).toISOString() });
        const live = await retention({ now: T0 + 2 * HOUR, notificationsTtlMs: HOUR, maxRowsPerBatch: 1 });
        expect(live.notifications).toEqual(dry.notifications);
        // One row per transaction: three deletes, then one that finds nothing left and finishes the job.
        expect(live.transactions).toBe(4);
        expect(await store.listJobNotifications(A, old.jobId, 'in_app', 10)).toEqual([]);
        expect(await store.listJobNotifications(A, young.jobId, 'in_app', 10)).toHaveLength(1);
        await expect(retention({ now: T0, notificationsTtlMs: -5 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
      });
    });

    describe('runRetention', () => {
      /** Old terminal jobs of each outcome, one young one, a running and a queued one, two orgs. */
      const scenario = async () => {
        const oldDone = await finished('completed', T0, { partials: 2, progress: 1 }); // 3 results, 6 events
        const oldFailed = await finished('failed', T0 + 1, { partials: 1 }); // 1 result, 4 events
        const oldCanceledB = await finished('canceled', T0 + 2, { orgId: B }); // 0 results, 3 events
        const queuedCanceled = await submit(A, T0);
        await store.requestCancel(A, queuedCanceled.jobId, T0 + 3); // 0 results, 2 events
        const young = await finished('completed', T0 + 10 * HOUR, { partials: 1 }); // 2 results, 4 events
        const lease = await start(A, T0);
        await store.recordPartial(lease, 'c', { p: 1 }, T0 + 1); // running: 1 result, 3 events
        const queued = await submit(B, T0); // 1 event
        return { oldDone, oldFailed, oldCanceledB, queuedCanceled, young, running: lease, queued };
      };

      it('deletes results and events of eligible terminal jobs only and keeps every job row', async () => {
        const s = await scenario();
        const jobsBefore = await Promise.all([s.oldDone.job, s.oldFailed.job, s.oldCanceledB.job, s.queuedCanceled, s.young.job].map((j) => store.getJob(j.orgId, j.jobId)));
        const now = T0 + 2 * HOUR;
        const r = await retention({ now });
        expect(counts(r)).toEqual({ terminal: 5, results: [4, 2], events: [15, 4], skipped: 0 });
        expect(r).toMatchObject({ dry_run: false, completed: true, results: { job_count: 2, ttl_seconds: 3600, cutoff: new Date(now - HOUR).toISOString() }, events: { job_count: 4 } });
        for (const j of [s.oldDone.job, s.oldFailed.job, s.oldCanceledB.job, s.queuedCanceled]) {
          expect(await countResults(j)).toBe(0);
          expect(await countEvents(j)).toBe(0);
        }
        // Job rows and their aggregated metadata stay exactly as they were.
        const jobsAfter = await Promise.all([s.oldDone.job, s.oldFailed.job, s.oldCanceledB.job, s.queuedCanceled, s.young.job].map((j) => store.getJob(j.orgId, j.jobId)));
        expect(jobsAfter).toEqual(jobsBefore);
        expect(jobsAfter[0]).toMatchObject({ status: 'completed', resultId: s.oldDone.resultIds[2], partialCount: 2 });
        expect(jobsAfter[1]).toMatchObject({ status: 'failed', error: { code: 'ANALYZER_FAILED', message: 'boom' } });
        // Young, running and queued jobs are untouched.
        expect(await countResults(s.young.job)).toBe(2);
        expect(await countEvents(s.young.job)).toBe(4);
        expect(await store.listResults(A, s.running.jobId)).toHaveLength(1);
        expect(await store.listEvents(A, s.running.jobId, 0, 100)).toHaveLength(3);
        expect(await store.listEvents(B, s.queued.jobId, 0, 100)).toHaveLength(1);
        for (const id of [...s.oldDone.resultIds, ...s.oldFailed.resultIds]) {
          expect(await store.getRemovedResult(A, id)).toMatchObject({ resultId: id, removedAt: now });
          expect(await store.getRemovedResult(B, id)).toBeUndefined();
        }
      });

      it('a dry run reports exactly what the live run then deletes and changes nothing', async () => {
        await scenario();
        for (let i = 0; i < 20; i++) await finished(i % 2 ? 'failed' : 'completed', T0 + i, { orgId: i % 3 ? A : B, partials: i % 4, progress: i % 5 });
        const now = T0 + 2 * HOUR;
        const fp = await fx.fingerprint();
        const dry = await retention({ now, dryRun: true, batchSize: 3, maxRowsPerBatch: 4 });
        expect(await fx.fingerprint()).toBe(fp);
        expect(dry).toMatchObject({ dry_run: true, transactions: 0, completed: true });
        const live = await retention({ now, batchSize: 3, maxRowsPerBatch: 4 });
        expect(live.dry_run).toBe(false);
        expect(counts(live)).toEqual(counts(dry));
        expect(live.results.delete_count).toBeGreaterThan(20);
        expect(live.events.delete_count).toBeGreaterThan(80);
        expect(live.transactions).toBeGreaterThanOrEqual(Math.ceil((live.results.delete_count + live.events.delete_count) / 4));
        expect(await fx.fingerprint()).not.toBe(fp);
        // Idempotent: the second live run deletes nothing and keeps the same rows.
        const again = await retention({ now, batchSize: 3, maxRowsPerBatch: 4 });
        expect(counts(again)).toEqual({ ...counts(live), results: [0, live.results.kept_count], events: [0, live.events.kept_count] });
        expect(again.transactions).toBe(0);
      });

      it('bounds every delete transaction by batchSize jobs and maxRowsPerBatch rows', async () => {
        for (let i = 0; i < 9; i++) await finished('completed', T0, { progress: i === 4 ? 30 : 1 });
        const calls: PurgeCommand[] = [];
        const outs: number[] = [];
        const spy: RetentionStore = {
          scanTerminalJobs: (after, limit) => store.scanTerminalJobs(after, limit),
          purgeJobData: async (cmd) => {
            calls.push(cmd);
            const out = await store.purgeJobData(cmd);
            outs.push(out.resultsDeleted + out.eventsDeleted);
            return out;
          },
        };
        const r = await runRetention({ store: spy, clock: new ManualClock(T0), sleep: () => Promise.resolve() }, { now: T0 + HOUR, resultsTtlMs: HOUR, eventsTtlMs: HOUR, dryRun: false, batchSize: 4, maxRowsPerBatch: 10 });
        expect(r.results.delete_count + r.events.delete_count).toBe(9 + 8 * 4 + 33);
        expect(calls.every((c) => c.jobs.length <= 4 && c.maxRows === 10)).toBe(true);
        expect(outs.every((n) => n <= 10)).toBe(true);
        expect(r.transactions).toBe(calls.length);
      });

      it('TTLs apply per kind and a job finishing exactly at the cutoff is eligible', async () => {
        const atCutoff = (await finished('completed', T0)).job;
        const after = (await finished('completed', T0 + 1)).job;
        const r = await retention({ now: T0 + HOUR, resultsTtlMs: HOUR, eventsTtlMs: 2 * HOUR });
        expect(counts(r)).toEqual({ terminal: 2, results: [1, 1], events: [0, 6], skipped: 0 });
        expect(await countResults(atCutoff)).toBe(0);
        expect(await countResults(after)).toBe(1);
        const zero = await retention({ now: T0 + 1, resultsTtlMs: 0, eventsTtlMs: 0 });
        expect(counts(zero)).toEqual({ terminal: 2, results: [1, 0], events: [6, 0], skipped: 0 });
      });

      it('counts terminal jobs without finished_at as skipped and never touches them', async () => {
        const legacy = (await finished('completed', T0, { partials: 1 })).job;
        await fx.clearFinishedAt(A, legacy.jobId);
        const normal = (await finished('failed', T0)).job;
        const fp = await fx.fingerprint();
        const dry = await retention({ now: T0 + 5 * HOUR, dryRun: true });
        expect(await fx.fingerprint()).toBe(fp);
        expect(counts(dry)).toEqual({ terminal: 2, results: [0, 2], events: [3, 4], skipped: 1 });
        const live = await retention({ now: T0 + 5 * HOUR });
        expect(counts(live)).toEqual(counts(dry));
        expect(await countResults(legacy)).toBe(2);
        expect(await countEvents(legacy)).toBe(4);
        expect(await countEvents(normal)).toBe(0);
      });

      it('an empty store reports zeros; an aborted run says it did not complete', async () => {
        expect(counts(await retention({ now: T0 }))).toEqual({ terminal: 0, results: [0, 0], events: [0, 0], skipped: 0 });
        await finished('completed', T0);
        const ac = new AbortController();
        ac.abort();
        const r = await retention({ now: T0 + HOUR, signal: ac.signal });
        expect(r).toMatchObject({ completed: false, terminal_job_count: 0, results: { delete_count: 0 } });
      });

      it('rejects invalid options', async () => {
        await expect(retention({ now: T0, resultsTtlMs: -1 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
        await expect(retention({ now: T0, batchSize: 0 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
        await expect(retention({ now: T0, maxRowsPerBatch: 1.5 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
      });
    });
  });
}
