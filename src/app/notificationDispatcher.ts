import { coerceError } from '../core/errors.js';
import { isTerminalEvent } from '../core/events.js';
import type { TerminalStatus } from '../core/jobState.js';
import { notificationTypeOf, webhookBody, type ChannelKind, type NotificationType } from '../core/notifications.js';
import { backoffDelay, type BackoffPolicy } from '../core/retry.js';
import type { Clock } from '../ports/clock.js';
import type { ClaimedEntry, DeliveryStore, WebhookAttemptResult } from '../ports/deliveryStore.js';
import type { EventFeed } from '../ports/eventFeed.js';
import type { Logger } from '../ports/logger.js';
import type { WebhookSender } from '../ports/webhookSender.js';
import { DeliveryRateLimiter } from './deliveryRateLimiter.js';
import { WakeableLoop } from './wakeableLoop.js';

/** The metrics the dispatcher feeds (a subset of the Metrics port, structurally). */
export interface DeliveryMetrics {
  notificationDelivered(channel: ChannelKind, status: 'delivered' | 'retrying' | 'failed' | 'delayed'): void;
}

export interface NotificationDispatcherOptions {
  readonly store: DeliveryStore;
  readonly sender: WebhookSender;
  readonly feed: EventFeed;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Fallback poll (other processes' commits, due retries, delayed entries). */
  readonly pollMs: number;
  /**
   * `inline`: the store writes in-app notifications in the terminal transaction (InAppDelivery),
   * so terminal events do not wake the in-app loop; it only polls for entries still pending
   * (written by a process in `outbox` mode, or before an upgrade).
   */
  readonly inApp?: { readonly batch?: number; readonly leaseMs?: number; readonly inline?: boolean };
  readonly webhook: {
    /** Deliveries in flight at once (over all tenants). */
    readonly concurrency: number;
    /** Per-attempt timeout the sender enforces; the claim lease is longer. */
    readonly timeoutMs: number;
    /** How long after the first attempt a delivery is retried before it is failed. */
    readonly retryPeriodMs: number;
    readonly backoff: BackoffPolicy;
  };
  /** Deliveries per minute per org and channel kind; 0 = unlimited. Over it: delayed. */
  readonly rateLimits: { readonly inAppPerMinute: number; readonly webhookPerMinute: number };
  readonly metrics?: DeliveryMetrics;
  readonly random?: () => number;
}

const DEFAULT_IN_APP_BATCH = 500;
/**
 * Terminal events wake the webhook loop at most this often: under load a group commit lands
 * every few milliseconds, and a claim round per commit (a write op each) costs more than the
 * few milliseconds of delivery latency this adds.
 */
const WEBHOOK_WAKE_COALESCE_MS = 15;
/** Completing a batch takes milliseconds; a lease that runs out early only costs an idempotent repeat. */
const DEFAULT_IN_APP_LEASE_MS = 5_000;
/**
 * A webhook claim outlives the attempt (the sender's timeout) with room for writing the
 * outcome. It is also how long an attempt cut short by a crash waits before it is retried.
 */
const webhookLeaseMs = (timeoutMs: number): number => 2 * timeoutMs + 1_000;

/**
 * Delivers the notification outbox, off the request path: one loop claims `in_app` entries
 * in batches and completes them (inbox row + delivered, one transaction each, group
 * committed); another claims webhook entries up to its free concurrency and sends them
 * through the WebhookSender, recording each attempt and scheduling retries with exponential
 * backoff and jitter until the retry period is over. Woken by terminal events from the feed
 * (their outbox entries are committed by then), by due retries, and by a fallback poll.
 * A rate-limited entry is released with a later due time: delayed, never dropped.
 */
export class NotificationDispatcher {
  private readonly inAppLoop: WakeableLoop;
  private readonly webhookLoop: WakeableLoop;
  private readonly limits: Record<ChannelKind, DeliveryRateLimiter>;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly random: () => number;
  private unsubscribe: (() => void) | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private webhookWakeTimer: NodeJS.Timeout | null = null;
  private retryAt = Number.POSITIVE_INFINITY;
  private stopping = false;
  /**
   * The notification types enabled webhook endpoints subscribe to, by org, as last read (null:
   * unknown, every terminal event wakes).
   */
  private webhookSubscriptions: ReadonlyMap<string, ReadonlySet<NotificationType>> | null = null;
  /** When webhookSubscriptions was last read (performance.now()); -Infinity forces a read. */
  private webhookSubscriptionsReadAt = Number.NEGATIVE_INFINITY;
  /** Bumped by endpointsChanged(): a read that started before it is not kept. */
  private endpointsGeneration = 0;

  constructor(private readonly o: NotificationDispatcherOptions) {
    this.random = o.random ?? Math.random;
    this.limits = { in_app: new DeliveryRateLimiter(o.rateLimits.inAppPerMinute), webhook: new DeliveryRateLimiter(o.rateLimits.webhookPerMinute) };
    const onError = (what: string) => (e: unknown) => o.logger.error({ err: coerceError(e) }, `${what} failed`);
    this.inAppLoop = new WakeableLoop(() => this.inAppRound(), o.pollMs, onError('in-app delivery round'));
    this.webhookLoop = new WakeableLoop(() => this.webhookRound(), o.pollMs, onError('webhook delivery round'));
  }

  get webhooksInFlight(): number {
    return this.inFlight.size;
  }

  start(): void {
    if (this.unsubscribe) return;
    const inline = this.o.inApp?.inline === true;
    this.unsubscribe = this.o.feed.subscribe((events) => {
      let terminal = false;
      for (const e of events) {
        if (!isTerminalEvent(e.type)) continue;
        terminal = true;
        if (this.webhookSubscriptions === null || this.webhookSubscriptions.get(e.orgId)?.has(notificationTypeOf(e.status as TerminalStatus))) {
          this.wakeWebhooksSoon();
          break;
        }
      }
      if (terminal && !inline) this.inAppLoop.poke();
    });
    this.inAppLoop.start();
    this.webhookLoop.start();
  }

  private wakeWebhooksSoon(): void {
    if (this.webhookWakeTimer !== null || this.stopping) return;
    this.webhookWakeTimer = setTimeout(() => {
      this.webhookWakeTimer = null;
      this.webhookLoop.poke();
    }, WEBHOOK_WAKE_COALESCE_MS);
    this.webhookWakeTimer.unref();
  }

  /**
   * A webhook endpoint was created, changed or deleted — through this process's API, or by
   * another process (scale mode: the event feed relays the store's NOTIFY, main.ts): forget
   * which event types the orgs' endpoints want, so terminal events wake the webhook loop again
   * until its next round has read them anew. Without a signal (another process on an embedded store), the
   * round after `pollMs` reads them; until then that org's deliveries wait for the fallback poll.
   */
  endpointsChanged(): void {
    this.endpointsGeneration++;
    this.webhookSubscriptions = null;
    this.webhookSubscriptionsReadAt = Number.NEGATIVE_INFINITY;
    this.webhookLoop.poke();
  }

  /** Deliver now (e.g. an entry was redelivered). */
  poke(): void {
    this.inAppLoop.poke();
    this.webhookLoop.poke();
  }

  /**
   * Stops claiming, then waits up to `graceMs` for webhook attempts in flight. Attempts still
   * running after that are abandoned: their leases expire and they are sent again later, with
   * the same webhook-id.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.unsubscribe?.();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.webhookWakeTimer) clearTimeout(this.webhookWakeTimer);
    await Promise.all([this.inAppLoop.stop(), this.webhookLoop.stop()]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.inFlight), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }

  /** Returns true when there is more to do right away (a full batch). */
  private async inAppRound(): Promise<boolean> {
    const batch = this.o.inApp?.batch ?? DEFAULT_IN_APP_BATCH;
    const now = this.o.clock.now();
    const entries = await this.o.store.claimOutbox({ kind: 'in_app', now, limit: batch, leaseMs: this.o.inApp?.leaseMs ?? DEFAULT_IN_APP_LEASE_MS });
    await Promise.all(
      entries.map(async (entry) => {
        const until = this.admit(entry, now);
        if (until !== 0) return this.defer(entry, until);
        try {
          await this.o.store.completeInApp(entry, this.o.clock.now());
          this.o.metrics?.notificationDelivered('in_app', 'delivered');
        } catch (e) {
          // The lease runs out and the entry is claimed again; completion is idempotent.
          this.o.logger.warn({ err: coerceError(e), org_id: entry.orgId, job_id: entry.jobId }, 'in-app notification not delivered; will retry');
        }
      }),
    );
    return entries.length >= batch;
  }

  private async webhookRound(): Promise<boolean> {
    if (this.stopping) return false;
    const free = this.o.webhook.concurrency - this.inFlight.size;
    if (free <= 0) return false;
    await this.readWebhookSubscriptions();
    const now = this.o.clock.now();
    const entries = await this.o.store.claimOutbox({ kind: 'webhook', now, limit: free, leaseMs: webhookLeaseMs(this.o.webhook.timeoutMs) });
    let started = 0;
    const defers: Promise<unknown>[] = [];
    for (const entry of entries) {
      const until = this.admit(entry, now);
      if (until !== 0) {
        defers.push(this.defer(entry, until));
        continue;
      }
      const attempt = this.attempt(entry)
        .catch((e: unknown) => this.o.logger.error({ err: coerceError(e), org_id: entry.orgId, delivery_id: entry.entryId }, 'webhook attempt not recorded'))
        .finally(() => {
          this.inFlight.delete(attempt);
          this.webhookLoop.poke();
        });
      this.inFlight.add(attempt);
      started++;
    }
    await Promise.all(defers);
    return entries.length >= free && started > 0;
  }

  /**
   * Re-reads which event types the enabled webhook endpoints of each org want, at most once
   * per `pollMs`. A terminal event no endpoint of its org subscribes to wrote no webhook entry:
   * without this, every commit with a terminal event started a claim round (a store
   * transaction, at most one per WEBHOOK_WAKE_COALESCE_MS) that found nothing — ~60 a second
   * per process under load, in every process that delivers notifications. If the read fails,
   * every event wakes again.
   */
  private async readWebhookSubscriptions(): Promise<void> {
    const at = performance.now();
    if (at - this.webhookSubscriptionsReadAt < this.o.pollMs) return;
    const generation = this.endpointsGeneration;
    this.webhookSubscriptionsReadAt = at;
    let wanted: Map<string, Set<NotificationType>> | null = null;
    try {
      const read = await this.o.store.webhookSubscriptions();
      wanted = new Map();
      for (const { orgId, type } of read) {
        const types = wanted.get(orgId);
        if (types) types.add(type);
        else wanted.set(orgId, new Set([type]));
      }
    } catch (e) {
      this.o.logger.warn({ err: coerceError(e) }, 'reading the webhook subscriptions failed; every terminal event wakes the webhook loop');
      this.webhookSubscriptionsReadAt = Number.NEGATIVE_INFINITY;
    }
    if (generation === this.endpointsGeneration) this.webhookSubscriptions = wanted;
  }

  /** Rate limit: 0 = deliver now, else the time the entry may go. */
  private admit(entry: ClaimedEntry, now: number): number {
    const limiter = this.limits[entry.kind];
    return limiter.enabled ? limiter.admit(entry.orgId, now) : 0;
  }

  /** Releases a rate-limited entry until `until`: delayed, never dropped. */
  private async defer(entry: ClaimedEntry, until: number): Promise<void> {
    try {
      await this.o.store.deferEntry(entry, until);
      this.o.metrics?.notificationDelivered(entry.kind, 'delayed');
    } catch (e) {
      // Not released: the lease runs out and the entry comes back anyway.
      this.o.logger.warn({ err: coerceError(e), org_id: entry.orgId }, 'rate-limited entry not released; it returns when its lease expires');
    }
    this.wakeAt(until);
  }

  private async attempt(entry: ClaimedEntry): Promise<void> {
    const log = { org_id: entry.orgId, job_id: entry.jobId, delivery_id: entry.entryId, endpoint_id: entry.endpointId };
    const target = entry.target;
    let result: WebhookAttemptResult;
    let retryable = false;
    if (target === null) result = { ok: false, statusCode: null, error: 'endpoint deleted' };
    else if (!target.enabled) result = { ok: false, statusCode: null, error: 'endpoint disabled' };
    else {
      const sent = await this.o.sender.send({
        url: target.url,
        secret: target.secret,
        messageId: entry.entryId,
        timestamp: this.o.clock.now(),
        body: webhookBody(entry.type, entry.occurredAt, entry.data),
      });
      result = sent.ok ? { ok: true, statusCode: sent.statusCode, error: null } : { ok: false, statusCode: sent.statusCode, error: sent.error };
      retryable = !sent.ok && sent.retryable;
    }
    const now = this.o.clock.now();
    let next: number | null = null;
    if (!result.ok && retryable) {
      const first = entry.firstAttemptAt ?? now;
      const candidate = now + backoffDelay(entry.attempts + 2, this.o.webhook.backoff, this.random);
      if (candidate - first <= this.o.webhook.retryPeriodMs) next = candidate;
    }
    const recorded = await this.o.store.recordWebhookAttempt(entry, result, now, next);
    if (!recorded) return; // lease lost: whoever holds the entry now decides
    const status = result.ok ? 'delivered' : next === null ? 'failed' : 'retrying';
    this.o.metrics?.notificationDelivered('webhook', status);
    if (status === 'failed') this.o.logger.warn({ ...log, attempts: recorded.attempts, error: result.error }, 'webhook delivery failed for good');
    if (next !== null) this.wakeAt(next);
  }

  /** One timer for the earliest known due time (retries, delayed entries) in this process. */
  private wakeAt(at: number): void {
    if (this.stopping || at >= this.retryAt) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryAt = at;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.retryAt = Number.POSITIVE_INFINITY;
      this.poke();
    }, Math.max(0, at - this.o.clock.now()));
    this.retryTimer.unref();
  }
}
