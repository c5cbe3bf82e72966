import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isUpshiftError } from '../../src/core/errors.js';
import { asOrgId, newJobId, newResultId, newToken, type OrgId } from '../../src/core/ids.js';
import type { ClaimedJob, Job, LeaseRef } from '../../src/core/job.js';
import { outboxEntryId, webhookChannel, type NotificationType } from '../../src/core/notifications.js';
import type { ClaimedEntry, DeliveryStore, InAppDelivery } from '../../src/ports/deliveryStore.js';
import type { JobStore } from '../../src/ports/jobStore.js';

export type DeliveryTestStore = JobStore & DeliveryStore;

export type DeliveryStoreFactory = (opts: { readonly inAppDelivery: InAppDelivery }) => Promise<{ store: DeliveryTestStore; cleanup: () => Promise<void> }>;

/**
 * The DeliveryStore conformance suite (with the JobStore half that fills the outbox).
 * Adapter-agnostic: only ports and core. `factory` returns a fresh, empty store created with
 * the given in-app delivery mode; the suite migrates it and calls `cleanup()` after each test.
 * Time is passed explicitly (T0 + n). Most tests run in `outbox` mode (entries to claim);
 * the last block runs in `inline` mode.
 */
export function deliveryStoreContract(name: string, factory: DeliveryStoreFactory): void {
  deliveryStoreOutboxContract(name, () => factory({ inAppDelivery: 'outbox' }));
  // An adapter that does not implement `inline` yet says so at its call site (and its
  // composition root must not pick it: see inAppDeliveryOf in src/main.ts).
  describe(`${name}: inline in-app delivery`, () => {
    inlineInAppContract(name, () => factory({ inAppDelivery: 'inline' }));
  });
}

/** A queued noop job of `orgId` submitted at `now`; `seq` keeps the ids of one millisecond distinct. */
async function submitNoop(store: DeliveryTestStore, orgId: OrgId, now: number, seq: number): Promise<Job> {
  const { job } = await store.submitJob({
    jobId: newJobId(now + seq),
    orgId,
    analyzer: 'noop',
    input: {},
    priority: 0,
    maxAttempts: 1,
    idempotencyKey: null,
    requestHash: null,
    traceContext: null,
    now,
  });
  return job;
}

/** A noop job submitted and claimed at `now`: the running job and its lease. */
async function runningNoop(store: DeliveryTestStore, orgId: OrgId, now: number, seq: number, leaseMs: number): Promise<{ job: ClaimedJob; lease: LeaseRef }> {
  const s = await submitNoop(store, orgId, now, seq);
  const job = (await store.claimJobs({ orgId, limit: 100, workerId: 'w', now, leaseMs, analyzers: null })).find((j) => j.jobId === s.jobId)!;
  return { job, lease: { orgId, jobId: job.jobId, attempt: job.attempt, leaseToken: job.leaseToken } };
}

function deliveryStoreOutboxContract(name: string, factory: () => Promise<{ store: DeliveryTestStore; cleanup: () => Promise<void> }>): void {
  describe(`DeliveryStore contract: ${name}`, () => {
    const T0 = Date.UTC(2026, 0, 1);
    const A = asOrgId('org-a');
    const B = asOrgId('org-b');
    const LEASE = 30_000;
    const ALL: NotificationType[] = ['async.job.completed', 'async.job.failed', 'async.job.canceled'];
    let store: DeliveryTestStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await factory());
      await store.migrate();
    });
    afterEach(async () => {
      await cleanup();
    });

    let clockOffset = 0;
    const submit = (orgId: OrgId = A, now = T0): Promise<Job> => submitNoop(store, orgId, now, clockOffset++);
    const running = (orgId: OrgId = A, now = T0): Promise<{ job: ClaimedJob; lease: LeaseRef }> => runningNoop(store, orgId, now, clockOffset++, LEASE);
    const complete = async (orgId: OrgId = A, now = T0): Promise<Job> => {
      const { lease } = await running(orgId, now);
      return store.finishJob(lease, { status: 'completed', resultId: newResultId(Date.now()), payload: { ok: 1 } }, now);
    };
    const claimAll = (kind: 'in_app' | 'webhook', now = T0, limit = 100): Promise<ClaimedEntry[]> => store.claimOutbox({ kind, now, limit, leaseMs: LEASE });
    const webhook = (orgId: OrgId = A, eventTypes: NotificationType[] = ALL) =>
      store.createWebhookEndpoint({ endpointId: newToken('whe_'), orgId, url: 'https://example.com/hook', description: null, eventTypes, secret: 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=', now: T0 });

    describe('outbox written with every terminal transition', () => {
      it('completed, failed and canceled (worker, cancel before start, lease expiry) each write one in_app entry', async () => {
        const done = await complete();
        const f = await running();
        await store.finishJob(f.lease, { status: 'failed', error: { code: 'X', message: 'boom' } }, T0);
        const c = await running();
        await store.finishJob(c.lease, { status: 'canceled', reason: 'cancel_observed' }, T0);
        const queued = await submit();
        await store.requestCancel(A, queued.jobId, T0);
        const expired = await running();
        const recovered = await store.recoverExpiredLeases(T0 + LEASE + 1, 10, () => T0);
        expect(recovered.map((j) => j.jobId)).toEqual([expired.job.jobId]);
        const entries = await claimAll('in_app', T0 + LEASE + 1);
        const byJob = new Map(entries.map((e) => [e.jobId, e]));
        expect(entries).toHaveLength(5);
        expect(byJob.get(done.jobId)?.type).toBe('async.job.completed');
        expect(byJob.get(f.job.jobId)?.type).toBe('async.job.failed');
        expect(byJob.get(c.job.jobId)?.type).toBe('async.job.canceled');
        expect(byJob.get(queued.jobId)?.type).toBe('async.job.canceled');
        expect(byJob.get(expired.job.jobId)?.type).toBe('async.job.failed');
        const e = byJob.get(done.jobId)!;
        expect(e).toMatchObject({ kind: 'in_app', channel: 'in_app', endpointId: null, orgId: A, attempts: 0, firstAttemptAt: null, target: null });
        expect(e.entryId).toBe(outboxEntryId(done.jobId, 'async.job.completed', 'in_app'));
        expect(e.data).toMatchObject({ job_id: done.jobId, org_id: A, status: 'completed', analyzer: 'noop', result_id: done.resultId, error: null });
        expect(byJob.get(f.job.jobId)!.data).toMatchObject({ status: 'failed', error: { code: 'X', message: 'boom' } });
      });

      it('non-terminal transitions and lost finalizations write nothing', async () => {
        const r = await running();
        await store.requestCancel(A, r.job.jobId, T0); // running: only cancel requested
        await store.finishJob(r.lease, { status: 'retry', error: { code: 'E', message: 'again' }, retryAt: T0 }, T0); // → canceled (cancel requested)
        const other = await running();
        await store.finishJob(other.lease, { status: 'completed', resultId: newResultId(Date.now()), payload: 1 }, T0);
        const lost = await store.finishJob(other.lease, { status: 'failed', error: { code: 'E', message: 'x' } }, T0).catch((e: unknown) => e);
        expect(isUpshiftError(lost, 'JOB_LEASE_LOST')).toBe(true);
        const entries = await claimAll('in_app');
        expect(entries.map((e) => e.type).sort()).toEqual(['async.job.canceled', 'async.job.completed']);
      });

      it('one webhook entry per enabled endpoint of the org subscribed to the type', async () => {
        const all = await webhook(A);
        const failedOnly = await webhook(A, ['async.job.failed']);
        const disabled = await webhook(A);
        await store.updateWebhookEndpoint(A, disabled.endpointId, { enabled: false }, T0);
        await webhook(B);
        const job = await complete(A);
        const entries = await claimAll('webhook');
        expect(entries.map((e) => e.channel)).toEqual([webhookChannel(all.endpointId)]);
        const e = entries[0]!;
        expect(e).toMatchObject({ jobId: job.jobId, endpointId: all.endpointId, kind: 'webhook', type: 'async.job.completed' });
        expect(e.target).toEqual({ url: 'https://example.com/hook', secret: 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=', enabled: true });
        expect(e.entryId).toBe(outboxEntryId(job.jobId, 'async.job.completed', webhookChannel(all.endpointId)));
        expect(failedOnly.eventTypes).toEqual(['async.job.failed']);
      });
    });

    describe('claims', () => {
      it('lease an entry: no second claim until the lease expires, then it is claimable again', async () => {
        await complete();
        const [first] = await claimAll('in_app');
        expect(first).toBeDefined();
        expect(await claimAll('in_app', T0 + 1)).toEqual([]);
        expect(await claimAll('webhook', T0 + LEASE + 1)).toEqual([]);
        const [again] = await claimAll('in_app', T0 + LEASE + 1);
        expect(again?.entryId).toBe(first!.entryId);
        expect(again?.leaseToken).not.toBe(first!.leaseToken);
      });

      it('concurrent claims never return the same entry', async () => {
        for (let i = 0; i < 20; i++) await complete();
        const batches = await Promise.all(Array.from({ length: 5 }, () => claimAll('in_app', T0, 7)));
        const ids = batches.flat().map((e) => e.entryId);
        expect(ids).toHaveLength(20);
        expect(new Set(ids).size).toBe(20);
      });

      it('deferEntry releases without an attempt (fenced by the lease)', async () => {
        await complete();
        const [e] = await claimAll('in_app');
        expect(await store.deferEntry(e!, T0 + 5_000)).toBe(true);
        expect(await store.deferEntry(e!, T0 + 9_000)).toBe(false);
        expect(await claimAll('in_app', T0 + 4_999)).toEqual([]);
        const [back] = await claimAll('in_app', T0 + 5_000);
        expect(back).toMatchObject({ entryId: e!.entryId, attempts: 0 });
      });
    });

    describe('in-app notifications', () => {
      it('completeInApp is idempotent: one notification, entry delivered', async () => {
        const job = await complete();
        const [e] = await claimAll('in_app');
        const n1 = await store.completeInApp(e!, T0 + 10);
        const n2 = await store.completeInApp(e!, T0 + 20);
        expect(n2).toEqual(n1);
        expect(n1).toMatchObject({ orgId: A, jobId: job.jobId, type: 'async.job.completed', channel: 'in_app', createdAt: T0 + 10, readAt: null });
        expect(n1.payload).toEqual(e!.data);
        expect(await store.listJobNotifications(A, job.jobId, 'in_app', 20)).toEqual([n1]);
        expect(await claimAll('in_app', T0 + LEASE + 1)).toEqual([]);
        expect(await store.countTerminalWithoutInApp(T0 + 1_000_000)).toBe(0);
      });

      it('reads are tenant-bound; markRead is idempotent and keeps the first read time', async () => {
        const job = await complete();
        const [e] = await claimAll('in_app');
        const n = await store.completeInApp(e!, T0);
        expect(await store.listJobNotifications(B, job.jobId, 'in_app', 20)).toEqual([]);
        expect(await store.listInbox(B, { unreadOnly: false, limit: 10 })).toEqual([]);
        expect(await store.markRead(B, n.notificationId, T0 + 1)).toBeUndefined();
        expect((await store.markRead(A, n.notificationId, T0 + 2))?.readAt).toBe(T0 + 2);
        expect((await store.markRead(A, n.notificationId, T0 + 3))?.readAt).toBe(T0 + 2);
        expect(await store.markRead(A, 'ntf_00000000000000000000000000_c', T0)).toBeUndefined();
      });

      it('inbox: latest first, keyset paging, unread filter', async () => {
        for (let i = 0; i < 5; i++) await complete();
        const entries = await claimAll('in_app');
        for (const [i, e] of entries.entries()) await store.completeInApp(e, T0 + i);
        const page1 = await store.listInbox(A, { unreadOnly: false, limit: 2 });
        expect(page1.map((n) => n.createdAt)).toEqual([T0 + 4, T0 + 3]);
        const last = page1[1]!;
        const page2 = await store.listInbox(A, { unreadOnly: false, before: { createdAt: last.createdAt, notificationId: last.notificationId }, limit: 10 });
        expect(page2.map((n) => n.createdAt)).toEqual([T0 + 2, T0 + 1, T0]);
        await store.markRead(A, page1[0]!.notificationId, T0 + 9);
        const unread = await store.listInbox(A, { unreadOnly: true, limit: 10 });
        expect(unread.map((n) => n.createdAt)).toEqual([T0 + 3, T0 + 2, T0 + 1, T0]);
      });

      it('countTerminalWithoutInApp counts undelivered in-app entries older than the bound', async () => {
        await complete(A, T0);
        await complete(B, T0 + 100);
        expect(await store.countTerminalWithoutInApp(T0)).toBe(0);
        expect(await store.countTerminalWithoutInApp(T0 + 1)).toBe(1);
        expect(await store.countTerminalWithoutInApp(T0 + 101)).toBe(2);
        const [e] = await claimAll('in_app', T0 + 200, 1);
        await store.completeInApp(e!, T0 + 200);
        expect(await store.countTerminalWithoutInApp(T0 + 201)).toBe(1);
      });
    });

    describe('webhook deliveries', () => {
      it('records attempts: retry → pending, then delivered; a lost lease records no failure', async () => {
        const ep = await webhook();
        await complete();
        const [e] = await claimAll('webhook');
        const d1 = await store.recordWebhookAttempt(e!, { ok: false, statusCode: 503, error: 'HTTP 503' }, T0 + 10, T0 + 1_000);
        expect(d1).toMatchObject({ status: 'pending', attempts: 1, lastStatusCode: 503, lastError: 'HTTP 503', nextAttemptAt: T0 + 1_000, lastAttemptAt: T0 + 10 });
        expect(await store.recordWebhookAttempt(e!, { ok: false, statusCode: null, error: 'late' }, T0 + 11, T0 + 2_000)).toBeUndefined();
        expect(await claimAll('webhook', T0 + 999)).toEqual([]);
        const [e2] = await claimAll('webhook', T0 + 1_000);
        expect(e2).toMatchObject({ entryId: e!.entryId, attempts: 1, firstAttemptAt: T0 + 10 });
        const d2 = await store.recordWebhookAttempt(e2!, { ok: true, statusCode: 204, error: null }, T0 + 1_010, null);
        expect(d2).toMatchObject({ status: 'delivered', attempts: 2, lastStatusCode: 204, lastError: null, deliveredAt: T0 + 1_010, nextAttemptAt: null });
        // A success reported by a deliverer whose lease was lost does not change a delivered entry.
        expect(await store.recordWebhookAttempt(e!, { ok: true, statusCode: 200, error: null }, T0 + 2_000, null)).toBeUndefined();
        const list = await store.listDeliveries(A, ep.endpointId, { limit: 10 });
        expect(list).toEqual([d2]);
        expect(await store.getDelivery(A, ep.endpointId, e!.entryId)).toEqual(d2);
      });

      it('no next attempt → failed; redeliver makes it pending again with the same id', async () => {
        const ep = await webhook();
        await complete();
        const [e] = await claimAll('webhook');
        const failed = await store.recordWebhookAttempt(e!, { ok: false, statusCode: null, error: 'ECONNREFUSED' }, T0 + 5, null);
        expect(failed).toMatchObject({ status: 'failed', attempts: 1, nextAttemptAt: null });
        expect(await claimAll('webhook', T0 + 10_000_000)).toEqual([]);
        expect(await store.redeliver(B, ep.endpointId, e!.entryId, T0 + 50)).toBeUndefined();
        const again = await store.redeliver(A, ep.endpointId, e!.entryId, T0 + 50);
        expect(again).toMatchObject({ deliveryId: e!.entryId, status: 'pending', attempts: 1, nextAttemptAt: T0 + 50 });
        const [e2] = await claimAll('webhook', T0 + 50);
        expect(e2).toMatchObject({ entryId: e!.entryId, firstAttemptAt: null });
        // In flight: a redeliver does not create a second concurrent attempt.
        expect((await store.redeliver(A, ep.endpointId, e!.entryId, T0 + 51))?.nextAttemptAt).toBe(T0 + 50 + LEASE);
        expect(await claimAll('webhook', T0 + 52)).toEqual([]);
      });

      it('endpoints: CRUD is tenant-bound, reads never carry the secret, delete removes the log', async () => {
        const ep = await webhook(A);
        expect(ep).toMatchObject({ orgId: A, url: 'https://example.com/hook', enabled: true, eventTypes: ALL, description: null });
        expect(JSON.stringify(ep)).not.toContain('whsec_');
        expect(JSON.stringify(await store.listWebhookEndpoints(A))).not.toContain('whsec_');
        expect(await store.getWebhookEndpoint(B, ep.endpointId)).toBeUndefined();
        expect(await store.listWebhookEndpoints(B)).toEqual([]);
        expect(await store.updateWebhookEndpoint(B, ep.endpointId, { enabled: false }, T0)).toBeUndefined();
        expect(await store.deleteWebhookEndpoint(B, ep.endpointId)).toBe(false);
        const patched = await store.updateWebhookEndpoint(A, ep.endpointId, { url: 'https://example.org/x', description: 'd', eventTypes: ['async.job.failed'] }, T0 + 7);
        expect(patched).toMatchObject({ url: 'https://example.org/x', description: 'd', eventTypes: ['async.job.failed'], enabled: true, updatedAt: T0 + 7 });
        await store.updateWebhookEndpoint(A, ep.endpointId, { eventTypes: ALL }, T0 + 8);
        await complete();
        expect(await store.listDeliveries(B, ep.endpointId, { limit: 10 })).toEqual([]);
        const [d] = await store.listDeliveries(A, ep.endpointId, { limit: 10 });
        expect(d).toMatchObject({ status: 'pending', attempts: 0, endpointId: ep.endpointId });
        expect(await store.getDelivery(B, ep.endpointId, d!.deliveryId)).toBeUndefined();
        expect(await store.deleteWebhookEndpoint(A, ep.endpointId)).toBe(true);
        expect(await store.getWebhookEndpoint(A, ep.endpointId)).toBeUndefined();
        expect(await store.listDeliveries(A, ep.endpointId, { limit: 10 })).toEqual([]);
        expect(await claimAll('webhook')).toEqual([]);
      });

      it('webhookSubscriptions: each (org, event type) an enabled endpoint wants once, across tenants', async () => {
        const C = asOrgId('org-c');
        const subscriptions = async (): Promise<string[]> => (await store.webhookSubscriptions()).map((s) => `${s.orgId} ${s.type}`).sort();
        expect(await subscriptions()).toEqual([]);
        const a1 = await webhook(A);
        await webhook(A, ['async.job.failed']);
        const b = await webhook(B, ['async.job.completed', 'async.job.canceled']);
        const c = await webhook(C, ['async.job.failed']);
        expect(await subscriptions()).toEqual([
          `${A} async.job.canceled`,
          `${A} async.job.completed`,
          `${A} async.job.failed`,
          `${B} async.job.canceled`,
          `${B} async.job.completed`,
          `${C} async.job.failed`,
        ]);
        // Disabled endpoints want nothing; a type stays while one enabled endpoint of the org wants it.
        await store.updateWebhookEndpoint(B, b.endpointId, { enabled: false }, T0 + 1);
        await store.deleteWebhookEndpoint(A, a1.endpointId);
        expect(await subscriptions()).toEqual([`${A} async.job.failed`, `${C} async.job.failed`]);
        // Changed event types count from the change on.
        await store.deleteWebhookEndpoint(C, c.endpointId);
        await store.updateWebhookEndpoint(B, b.endpointId, { enabled: true, eventTypes: ['async.job.failed'] }, T0 + 2);
        expect(await subscriptions()).toEqual([`${A} async.job.failed`, `${B} async.job.failed`]);
      });

      it('deliveries list newest first with keyset paging and a status filter', async () => {
        const ep = await webhook();
        for (let i = 0; i < 4; i++) await complete(A, T0 + i);
        const all = await store.listDeliveries(A, ep.endpointId, { limit: 10 });
        expect(all.map((d) => d.createdAt)).toEqual([T0 + 3, T0 + 2, T0 + 1, T0]);
        const p1 = await store.listDeliveries(A, ep.endpointId, { limit: 2 });
        const p2 = await store.listDeliveries(A, ep.endpointId, { before: { createdAt: p1[1]!.createdAt, deliveryId: p1[1]!.deliveryId }, limit: 10 });
        expect([...p1, ...p2].map((d) => d.deliveryId)).toEqual(all.map((d) => d.deliveryId));
        const [e] = await claimAll('webhook', T0 + 10, 1);
        await store.recordWebhookAttempt(e!, { ok: true, statusCode: 200, error: null }, T0 + 10, null);
        expect((await store.listDeliveries(A, ep.endpointId, { status: 'delivered', limit: 10 })).map((d) => d.deliveryId)).toEqual([e!.entryId]);
        expect(await store.listDeliveries(A, ep.endpointId, { status: 'pending', limit: 10 })).toHaveLength(3);
      });
    });
  });
}

/** `inAppDelivery: 'inline'`: the terminal transaction writes the in-app notification itself. */
function inlineInAppContract(name: string, factory: () => Promise<{ store: DeliveryTestStore; cleanup: () => Promise<void> }>): void {
  describe(`DeliveryStore contract: ${name}, in-app delivered inline`, () => {
    const T0 = Date.UTC(2026, 0, 1);
    const A = asOrgId('org-a');
    const B = asOrgId('org-b');
    const LEASE = 30_000;
    let store: DeliveryTestStore;
    let cleanup: () => Promise<void>;
    let seq = 0;

    beforeEach(async () => {
      ({ store, cleanup } = await factory());
      await store.migrate();
    });
    afterEach(async () => {
      await cleanup();
    });

    const submit = (orgId: OrgId = A, now = T0): Promise<Job> => submitNoop(store, orgId, now, seq++);
    const running = async (orgId: OrgId = A, now = T0): Promise<LeaseRef> => (await runningNoop(store, orgId, now, seq++, LEASE)).lease;
    const notificationsOf = (orgId: OrgId, jobId: string) => store.listJobNotifications(orgId, jobId as Job['jobId'], 'in_app', 20);

    it('every terminal path commits its notification with the transition; nothing is left to claim', async () => {
      const done = await running(A, T0 + 1);
      const completed = await store.finishJob(done, { status: 'completed', resultId: newResultId(Date.now()), payload: { ok: 1 } }, T0 + 1);
      const f = await running(A, T0 + 2);
      await store.finishJob(f, { status: 'failed', error: { code: 'X', message: 'boom' } }, T0 + 2);
      const c = await running(A, T0 + 3);
      await store.finishJob(c, { status: 'canceled', reason: 'cancel_observed' }, T0 + 3);
      const queued = await submit(A, T0 + 4);
      await store.requestCancel(A, queued.jobId, T0 + 4);
      const expired = await running(A, T0 + 5);
      await store.recoverExpiredLeases(T0 + 5 + LEASE + 1, 10, () => T0);
      const expect1 = async (jobId: string, type: NotificationType, at: number) => {
        const list = await notificationsOf(A, jobId);
        expect(list).toHaveLength(1);
        expect(list[0]).toMatchObject({ orgId: A, jobId, type, channel: 'in_app', createdAt: at, readAt: null });
        return list[0]!;
      };
      const n = await expect1(done.jobId, 'async.job.completed', T0 + 1);
      expect(n.payload).toMatchObject({ job_id: done.jobId, org_id: A, status: 'completed', analyzer: 'noop', result_id: completed.resultId, error: null });
      expect((await expect1(f.jobId, 'async.job.failed', T0 + 2)).payload).toMatchObject({ status: 'failed', error: { code: 'X', message: 'boom' } });
      await expect1(c.jobId, 'async.job.canceled', T0 + 3);
      await expect1(queued.jobId, 'async.job.canceled', T0 + 4);
      await expect1(expired.jobId, 'async.job.failed', T0 + 5 + LEASE + 1);
      expect(await store.claimOutbox({ kind: 'in_app', now: T0 + 10_000_000, limit: 100, leaseMs: LEASE })).toEqual([]);
      expect(await store.countTerminalWithoutInApp(T0 + 10_000_000)).toBe(0);
      expect((await store.listInbox(A, { unreadOnly: true, limit: 10 })).map((x) => x.jobId).sort()).toEqual(
        [done.jobId, f.jobId, c.jobId, queued.jobId, expired.jobId].sort(),
      );
      expect(await store.listInbox(B, { unreadOnly: false, limit: 10 })).toEqual([]);
    });

    it('non-terminal transitions and lost finalizations add no notification', async () => {
      const r = await running();
      await store.requestCancel(A, r.jobId, T0); // running: only cancel requested
      expect(await notificationsOf(A, r.jobId)).toEqual([]);
      await store.finishJob(r, { status: 'completed', resultId: newResultId(Date.now()), payload: 1 }, T0 + 1);
      const lost = await store.finishJob(r, { status: 'failed', error: { code: 'E', message: 'x' } }, T0 + 2).catch((e: unknown) => e);
      expect(isUpshiftError(lost, 'JOB_LEASE_LOST')).toBe(true);
      expect((await notificationsOf(A, r.jobId)).map((x) => x.type)).toEqual(['async.job.completed']);
      const retried = await running();
      await store.finishJob(retried, { status: 'retry', error: { code: 'E', message: 'again' }, retryAt: T0 }, T0);
      expect(await notificationsOf(A, retried.jobId)).toEqual([]);
    });

    it('webhook entries are still written pending and delivered through the outbox', async () => {
      const ep = await store.createWebhookEndpoint({ endpointId: newToken('whe_'), orgId: A, url: 'https://example.com/hook', description: null, eventTypes: ['async.job.completed'], secret: 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=', now: T0 });
      const lease = await running();
      await store.finishJob(lease, { status: 'completed', resultId: newResultId(Date.now()), payload: 1 }, T0);
      const [e, ...more] = await store.claimOutbox({ kind: 'webhook', now: T0, limit: 10, leaseMs: LEASE });
      expect(more).toEqual([]);
      expect(e).toMatchObject({ jobId: lease.jobId, endpointId: ep.endpointId, attempts: 0 });
      expect(await store.listDeliveries(A, ep.endpointId, { limit: 10 })).toHaveLength(1);
      expect(await notificationsOf(A, lease.jobId)).toHaveLength(1);
    });
  });
}
