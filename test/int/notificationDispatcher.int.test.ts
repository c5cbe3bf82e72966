import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createInProcessEventFeed } from '../../src/adapters/feed/inProcessEventFeed.js';
import { createSqliteJobStore } from '../../src/adapters/store/sqlite/sqliteJobStore.js';
import { NotificationDispatcher, type NotificationDispatcherOptions } from '../../src/app/notificationDispatcher.js';
import { asOrgId, newJobId, newResultId, newToken, type OrgId } from '../../src/core/ids.js';
import type { NotificationType } from '../../src/core/notifications.js';
import { systemClock } from '../../src/ports/clock.js';
import { silentLogger } from '../../src/ports/logger.js';
import type { WebhookMessage, WebhookSender, WebhookSendResult } from '../../src/ports/webhookSender.js';
import { until } from '../helpers/runtime.js';

const A = asOrgId('org-a');
const B = asOrgId('org-b');

/** An in-memory receiver: `answer` decides each attempt's outcome. */
function fakeSender(answer: (m: WebhookMessage, n: number) => WebhookSendResult | Promise<WebhookSendResult>) {
  const calls: WebhookMessage[] = [];
  const sender: WebhookSender = {
    checkTarget: () => Promise.resolve(),
    send: async (m) => {
      calls.push(m);
      return answer(m, calls.length);
    },
  };
  return { sender, calls };
}

async function setup(sender: WebhookSender, over: Partial<NotificationDispatcherOptions> = {}, opts: { start?: boolean; subscriptionsFail?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'upshift-dispatch-'));
  const store = createSqliteJobStore({ file: join(dir, 'db.sqlite') });
  await store.migrate();
  const feed = createInProcessEventFeed(store);
  const metrics: string[] = [];
  // The dispatcher's claim rounds by channel kind, counted on their way to the real store.
  const claims: Record<string, number> = {};
  const counted = Object.assign(Object.create(store) as typeof store, {
    claimOutbox: (cmd: Parameters<typeof store.claimOutbox>[0]) => {
      claims[cmd.kind] = (claims[cmd.kind] ?? 0) + 1;
      return store.claimOutbox(cmd);
    },
    webhookSubscriptions: () => (opts.subscriptionsFail ? Promise.reject(new Error('read failed')) : store.webhookSubscriptions()),
  });
  const dispatcher = new NotificationDispatcher({
    store: counted,
    sender,
    feed,
    clock: systemClock,
    logger: silentLogger,
    pollMs: 50,
    webhook: { concurrency: 4, timeoutMs: 1_000, retryPeriodMs: 60_000, backoff: { baseMs: 20, maxMs: 100, jitter: 0.5 } },
    rateLimits: { inAppPerMinute: 0, webhookPerMinute: 0 },
    metrics: { notificationDelivered: (channel, status) => metrics.push(`${channel}:${status}`) },
    ...over,
  });
  if (opts.start !== false) dispatcher.start();
  const finish = async (orgId: OrgId = A, status: 'completed' | 'failed' = 'completed', count = 1) => {
    const now = Date.now();
    await Promise.all(
      Array.from({ length: count }, () =>
        store.submitJob({ jobId: newJobId(now), orgId, analyzer: 'noop', input: 1, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now }),
      ),
    );
    const jobs = await store.claimJobs({ orgId, limit: 1000, workerId: 'w', now, leaseMs: 30_000, analyzers: null });
    await Promise.all(
      jobs.map((j) =>
        store.finishJob(
          { orgId, jobId: j.jobId, attempt: j.attempt, leaseToken: j.leaseToken },
          status === 'completed' ? { status, resultId: newResultId(Date.now()), payload: 1 } : { status, error: { code: 'E', message: 'x' } },
          now,
        ),
      ),
    );
    return jobs.map((j) => j.jobId);
  };
  /** 20 completed jobs of `orgId` in 5 bursts 25 ms apart: 5 commits with terminal events. */
  const completeInBursts = async (orgId: OrgId): Promise<void> => {
    for (let i = 0; i < 5; i++) {
      await finish(orgId, 'completed', 4);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const endpoint = (eventTypes: NotificationType[] = ['async.job.completed', 'async.job.failed', 'async.job.canceled']) =>
    store.createWebhookEndpoint({ endpointId: newToken('whe_'), orgId: A, url: 'http://receiver.test/hook', description: null, eventTypes, secret: 'whsec_dGVzdHNlY3JldHRlc3RzZWNyZXQ=', now: Date.now() });
  return {
    store,
    dispatcher,
    metrics,
    claims,
    finish,
    completeInBursts,
    endpoint,
    async close() {
      await dispatcher.stop(1_000);
      await feed.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('NotificationDispatcher (SQLite, fake receiver)', () => {
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
  });

  it('delivers the in-app notification right after the terminal commit (woken by the feed)', async () => {
    const { sender } = fakeSender(() => ({ ok: true, statusCode: 200 }));
    const t = await setup(sender, { pollMs: 60_000 });
    open.push(t);
    const [jobId] = await t.finish();
    await until(async () => (await t.store.listJobNotifications(A, jobId!, 'in_app', 10)).length === 1, 2_000);
    expect(await t.store.countTerminalWithoutInApp(Date.now() + 1)).toBe(0);
    // The metric is counted right after the store commit resolves, so it can trail the row by a tick.
    await until(() => t.metrics.includes('in_app:delivered'), 2_000);
  });

  it('retries a failing webhook with backoff, same webhook-id and fresh timestamps, until delivered', async () => {
    const { sender, calls } = fakeSender((_m, n) => (n < 3 ? { ok: false, statusCode: 503, error: 'HTTP 503', retryable: true } : { ok: true, statusCode: 204 }));
    const t = await setup(sender);
    open.push(t);
    const ep = await t.endpoint();
    const [jobId] = await t.finish();
    await until(async () => (await t.store.listDeliveries(A, ep.endpointId, { limit: 10 }))[0]?.status === 'delivered', 5_000);
    const [d] = await t.store.listDeliveries(A, ep.endpointId, { limit: 10 });
    expect(d).toMatchObject({ jobId, attempts: 3, lastStatusCode: 204, lastError: null });
    expect(new Set(calls.map((c) => c.messageId))).toEqual(new Set([d!.deliveryId]));
    const body = JSON.parse(calls[0]!.body) as { type: string; data: { job_id: string; status: string } };
    expect(body).toMatchObject({ type: 'async.job.completed', data: { job_id: jobId, status: 'completed' } });
    expect(calls.map((c) => c.body)).toEqual([calls[0]!.body, calls[0]!.body, calls[0]!.body]);
    expect(calls[1]!.timestamp).toBeGreaterThan(calls[0]!.timestamp);
    // The metric is counted right after the store commit resolves, so it can trail the row by a tick.
    await until(() => t.metrics.includes('webhook:delivered'), 2_000);
    expect(t.metrics.filter((m) => m === 'webhook:retrying')).toHaveLength(2);
  });

  it('fails a delivery after the retry period, and at once when the target is forbidden', async () => {
    const { sender } = fakeSender((m) =>
      m.url.includes('forbidden') ? { ok: false, statusCode: null, error: 'target forbidden', retryable: false } : { ok: false, statusCode: null, error: 'ECONNREFUSED', retryable: true },
    );
    const t = await setup(sender, { webhook: { concurrency: 4, timeoutMs: 1_000, retryPeriodMs: 150, backoff: { baseMs: 20, maxMs: 40, jitter: 0 } } });
    open.push(t);
    const ep = await t.endpoint();
    await t.finish();
    await until(async () => (await t.store.listDeliveries(A, ep.endpointId, { limit: 10 }))[0]?.status === 'failed', 5_000);
    const [d] = await t.store.listDeliveries(A, ep.endpointId, { limit: 10 });
    expect(d!.attempts).toBeGreaterThanOrEqual(3);
    expect(d!.lastError).toBe('ECONNREFUSED');
    await t.store.updateWebhookEndpoint(A, ep.endpointId, { url: 'http://forbidden.test/' }, Date.now());
    await t.store.redeliver(A, ep.endpointId, d!.deliveryId, Date.now());
    t.dispatcher.poke();
    await until(async () => (await t.store.getDelivery(A, ep.endpointId, d!.deliveryId))?.attempts === d!.attempts + 1, 5_000);
    expect(await t.store.getDelivery(A, ep.endpointId, d!.deliveryId)).toMatchObject({ status: 'failed', lastError: 'target forbidden' });
  });

  it('a disabled endpoint fails its pending deliveries without calling the receiver', async () => {
    const { sender, calls } = fakeSender(() => ({ ok: true, statusCode: 200 }));
    const t = await setup(sender, { pollMs: 60_000 });
    open.push(t);
    const ep = await t.endpoint();
    await t.dispatcher.stop(100); // entries stay pending while it is off
    await t.finish();
    await t.store.updateWebhookEndpoint(A, ep.endpointId, { enabled: false }, Date.now());
    // A fresh dispatcher on the same store picks the pending entries up.
    const d2 = new NotificationDispatcher({ store: t.store, sender, feed: createInProcessEventFeed(t.store), clock: systemClock, logger: silentLogger, pollMs: 20, webhook: { concurrency: 1, timeoutMs: 1_000, retryPeriodMs: 1_000, backoff: { baseMs: 10, maxMs: 10, jitter: 0 } }, rateLimits: { inAppPerMinute: 0, webhookPerMinute: 0 } });
    d2.start();
    open.push({ close: () => d2.stop(100) });
    await until(async () => (await t.store.listDeliveries(A, ep.endpointId, { limit: 10 }))[0]?.status === 'failed', 5_000);
    expect((await t.store.listDeliveries(A, ep.endpointId, { limit: 10 }))[0]?.lastError).toBe('endpoint disabled');
    expect(calls).toHaveLength(0);
  });

  it('terminal events wake the webhook loop only for orgs with enabled endpoints', async () => {
    const { sender, calls } = fakeSender(() => ({ ok: true, statusCode: 200 }));
    // No fallback poll within the test: every webhook round here is a wake-up.
    const t = await setup(sender, { pollMs: 60_000 });
    open.push(t);
    const { claims } = t;
    await until(() => claims.webhook === 1, 2_000); // the loop's first round at start
    // Org B has no endpoint: its terminal commits start no webhook claim round (before: one per
    // commit, coalesced to one per 15 ms), while its in-app entries are still delivered.
    await t.completeInBursts(B);
    await until(async () => (await t.store.listInbox(B, { unreadOnly: false, limit: 100 })).length === 20, 2_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(claims.webhook).toBe(1);
    // An endpoint created through this process (the service calls endpointsChanged): org A's next
    // terminal commit wakes the loop, long before the 60 s poll.
    const ep = await t.endpoint();
    t.dispatcher.endpointsChanged();
    const [jobId] = await t.finish(A);
    await until(async () => (await t.store.listDeliveries(A, ep.endpointId, { limit: 10 }))[0]?.status === 'delivered', 2_000);
    expect(calls.map((c) => JSON.parse(c.body) as { data: { job_id: string } }).map((b) => b.data.job_id)).toEqual([jobId]);
    // With the endpoints read again (A only), org B stays quiet.
    const before = claims.webhook ?? 0;
    await t.completeInBursts(B);
    await new Promise((r) => setTimeout(r, 50));
    expect(claims.webhook).toBe(before);
  });

  it('terminal events wake the webhook loop only for the event types an enabled endpoint of their org wants', async () => {
    const { sender, calls } = fakeSender(() => ({ ok: true, statusCode: 200 }));
    const t = await setup(sender, { pollMs: 60_000 });
    open.push(t);
    const { claims } = t;
    await until(() => claims.webhook === 1, 2_000); // the loop's first round at start
    const ep = await t.endpoint(['async.job.failed']);
    t.dispatcher.endpointsChanged();
    await until(() => claims.webhook === 2, 2_000); // endpointsChanged() pokes: the round re-reads
    // Org A's endpoint wants failures only: its completions wrote no webhook entry and start no
    // claim round (before: one per commit, coalesced to one per 15 ms) ...
    await t.completeInBursts(A);
    await until(async () => (await t.store.listInbox(A, { unreadOnly: false, limit: 100 })).length === 20, 2_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(claims.webhook).toBe(2);
    // ... while a failure wakes the loop at once and is delivered.
    const [jobId] = await t.finish(A, 'failed');
    await until(async () => (await t.store.listDeliveries(A, ep.endpointId, { limit: 10 }))[0]?.status === 'delivered', 2_000);
    expect(calls.map((c) => JSON.parse(c.body) as { type: string; data: { job_id: string } }).map((b) => [b.type, b.data.job_id])).toEqual([['async.job.failed', jobId]]);
  });

  it('when the subscriptions cannot be read, every terminal event wakes the webhook loop', async () => {
    const { sender, calls } = fakeSender(() => ({ ok: true, statusCode: 200 }));
    const t = await setup(sender, { pollMs: 60_000 }, { subscriptionsFail: true });
    open.push(t);
    await until(() => t.claims.webhook === 1, 2_000); // the loop's first round at start (its read failed)
    const ep = await t.endpoint();
    const [jobId] = await t.finish(A);
    await until(async () => (await t.store.listDeliveries(A, ep.endpointId, { limit: 10 }))[0]?.status === 'delivered', 2_000);
    expect(calls.map((c) => (JSON.parse(c.body) as { data: { job_id: string } }).data.job_id)).toEqual([jobId]);
  });

  it('an endpoint created by another process is read by the next poll round: its deliveries are late, not lost', async () => {
    const { sender, calls } = fakeSender(() => ({ ok: true, statusCode: 200 }));
    const t = await setup(sender, { pollMs: 300 });
    open.push(t);
    await new Promise((r) => setTimeout(r, 50)); // the first round has read "no endpoints"
    // Written straight to the store (as another process's API would): this dispatcher is not told.
    const ep = await t.endpoint();
    const [jobId] = await t.finish();
    await until(async () => (await t.store.listDeliveries(A, ep.endpointId, { limit: 10 }))[0]?.status === 'delivered', 3_000);
    expect(calls).toHaveLength(1);
    expect((JSON.parse(calls[0]!.body) as { data: { job_id: string } }).data.job_id).toBe(jobId);
  });

  it('rate limits delay deliveries (never drop them)', async () => {
    const { sender } = fakeSender(() => ({ ok: true, statusCode: 200 }));
    // 600/min: a burst of 600, then one every 100 ms.
    // The dispatcher starts once every job is terminal: the bucket cannot refill while a slow
    // (loaded) machine is still finishing jobs, so exactly the 6 over the burst must wait.
    const t = await setup(sender, { rateLimits: { inAppPerMinute: 600, webhookPerMinute: 0 } }, { start: false });
    open.push(t);
    const ids = await t.finish(A, 'completed', 606);
    expect(ids).toHaveLength(606);
    const started = Date.now();
    t.dispatcher.start();
    await until(async () => (await t.store.listInbox(A, { unreadOnly: false, limit: 1000 })).length === ids.length, 30_000);
    // The 6 over the burst of 600 had to wait for tokens (10/s): all 606 cannot be delivered in
    // less than ~0.6 s, however fast the machine — and none were dropped. (How many show up as
    // `delayed` depends on the machine: claim rounds that take long refill the bucket meanwhile.)
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(t.metrics.filter((m) => m === 'in_app:delivered')).toHaveLength(606);
    expect(t.metrics.filter((m) => m.startsWith('in_app:') && m !== 'in_app:delivered' && m !== 'in_app:delayed')).toEqual([]);
    expect(await t.store.countTerminalWithoutInApp(Date.now() + 1)).toBe(0);
  });
});
