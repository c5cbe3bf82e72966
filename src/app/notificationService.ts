import { randomBytes } from 'node:crypto';
import { UpshiftError } from '../core/errors.js';
import { newToken, type JobId, type OrgId } from '../core/ids.js';
import type { InAppNotification, NotificationType, WebhookDelivery, WebhookEndpoint } from '../core/notifications.js';
import { isNotificationId, isOutboxEntryId, isWebhookEndpointId, type DeliveryStatus } from '../core/notifications.js';
import type { Clock } from '../ports/clock.js';
import type { DeliveryStore, WebhookEndpointPatch } from '../ports/deliveryStore.js';
import type { JobStore } from '../ports/jobStore.js';
import type { WebhookSender } from '../ports/webhookSender.js';

export interface NotificationServiceOptions {
  readonly jobs: JobStore;
  readonly deliveries: DeliveryStore;
  /** Target policy (SSRF) for endpoint URLs. */
  readonly sender: WebhookSender;
  readonly clock: Clock;
  /** Called after a redelivery was scheduled (wakes the dispatcher of this process). */
  readonly onRedeliver?: () => void;
  /** Called after a webhook endpoint was created, updated or deleted (the dispatcher of this process re-reads them). */
  readonly onEndpointsChanged?: () => void;
}

export interface Page<T> {
  readonly items: T[];
  /** Opaque; pass back as `cursor` for the next (older) page. Null at the end. */
  readonly nextCursor: string | null;
}

const MAX_PAGE = 200;

/**
 * Tenant-facing notification use cases: a job's notifications, the inbox, webhook endpoints
 * and their deliveries. Every method is bound to one org; another org's ids are "not found".
 */
export class NotificationService {
  constructor(private readonly o: NotificationServiceOptions) {}

  async jobNotifications(orgId: OrgId, jobId: JobId, channel: string, limit: number): Promise<InAppNotification[]> {
    const job = await this.o.jobs.getJob(orgId, jobId);
    if (!job) throw new UpshiftError('JOB_NOT_FOUND', `job ${jobId} not found`);
    return this.o.deliveries.listJobNotifications(orgId, jobId, channel, clamp(limit));
  }

  async inbox(orgId: OrgId, q: { unreadOnly: boolean; cursor?: string; limit: number }): Promise<Page<InAppNotification>> {
    const limit = clamp(q.limit);
    const before = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
    const rows = await this.o.deliveries.listInbox(orgId, {
      unreadOnly: q.unreadOnly,
      ...(before && { before: { createdAt: before.t, notificationId: before.i } }),
      limit: limit + 1,
    });
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.notificationId) : null };
  }

  /** Idempotent: a repeat answers the same notification with its first read time. */
  async markRead(orgId: OrgId, notificationId: string): Promise<InAppNotification> {
    const n = isNotificationId(notificationId) ? await this.o.deliveries.markRead(orgId, notificationId, this.o.clock.now()) : undefined;
    if (!n) throw new UpshiftError('NOTIFICATION_NOT_FOUND', `notification ${notificationId} not found`);
    return n;
  }

  /** Creates an endpoint; the secret is returned here and never again. */
  async createWebhook(orgId: OrgId, req: { url: string; eventTypes: readonly NotificationType[]; description?: string | null }): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
    await this.o.sender.checkTarget(req.url);
    const secret = 'whsec_' + randomBytes(32).toString('base64');
    const endpoint = await this.o.deliveries.createWebhookEndpoint({
      endpointId: newToken('whe_'),
      orgId,
      url: req.url,
      description: req.description ?? null,
      eventTypes: unique(req.eventTypes),
      secret,
      now: this.o.clock.now(),
    });
    this.o.onEndpointsChanged?.();
    return { endpoint, secret };
  }

  listWebhooks(orgId: OrgId): Promise<WebhookEndpoint[]> {
    return this.o.deliveries.listWebhookEndpoints(orgId);
  }

  async getWebhook(orgId: OrgId, endpointId: string): Promise<WebhookEndpoint> {
    const e = isWebhookEndpointId(endpointId) ? await this.o.deliveries.getWebhookEndpoint(orgId, endpointId) : undefined;
    if (!e) throw notFound(endpointId);
    return e;
  }

  async updateWebhook(orgId: OrgId, endpointId: string, patch: WebhookEndpointPatch): Promise<WebhookEndpoint> {
    await this.getWebhook(orgId, endpointId);
    if (patch.url !== undefined) await this.o.sender.checkTarget(patch.url);
    const updated = await this.o.deliveries.updateWebhookEndpoint(
      orgId,
      endpointId,
      { ...patch, ...(patch.eventTypes !== undefined && { eventTypes: unique(patch.eventTypes) }) },
      this.o.clock.now(),
    );
    if (!updated) throw notFound(endpointId);
    this.o.onEndpointsChanged?.();
    return updated;
  }

  async deleteWebhook(orgId: OrgId, endpointId: string): Promise<void> {
    if (!isWebhookEndpointId(endpointId) || !(await this.o.deliveries.deleteWebhookEndpoint(orgId, endpointId))) throw notFound(endpointId);
    this.o.onEndpointsChanged?.();
  }

  async deliveries(orgId: OrgId, endpointId: string, q: { status?: DeliveryStatus; cursor?: string; limit: number }): Promise<Page<WebhookDelivery>> {
    await this.getWebhook(orgId, endpointId);
    const limit = clamp(q.limit);
    const before = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
    const rows = await this.o.deliveries.listDeliveries(orgId, endpointId, {
      ...(q.status !== undefined && { status: q.status }),
      ...(before && { before: { createdAt: before.t, deliveryId: before.i } }),
      limit: limit + 1,
    });
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.deliveryId) : null };
  }

  async delivery(orgId: OrgId, endpointId: string, deliveryId: string): Promise<WebhookDelivery> {
    await this.getWebhook(orgId, endpointId);
    const d = isOutboxEntryId(deliveryId) ? await this.o.deliveries.getDelivery(orgId, endpointId, deliveryId) : undefined;
    if (!d) throw new UpshiftError('WEBHOOK_DELIVERY_NOT_FOUND', `delivery ${deliveryId} not found`);
    return d;
  }

  /** Sends the delivery again with the same webhook-id (see DeliveryStore.redeliver). */
  async redeliver(orgId: OrgId, endpointId: string, deliveryId: string): Promise<WebhookDelivery> {
    await this.getWebhook(orgId, endpointId);
    const d = isOutboxEntryId(deliveryId) ? await this.o.deliveries.redeliver(orgId, endpointId, deliveryId, this.o.clock.now()) : undefined;
    if (!d) throw new UpshiftError('WEBHOOK_DELIVERY_NOT_FOUND', `delivery ${deliveryId} not found`);
    this.o.onRedeliver?.();
    return d;
  }
}

const clamp = (limit: number): number => Math.min(Math.max(Math.floor(limit), 1), MAX_PAGE);
const unique = <T>(xs: readonly T[]): T[] => [...new Set(xs)];
const notFound = (endpointId: string): UpshiftError => new UpshiftError('WEBHOOK_NOT_FOUND', `webhook endpoint ${endpointId} not found`);

function encodeCursor(createdAt: number, id: string): string {
  return Buffer.from(JSON.stringify({ t: createdAt, i: id }), 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { t: number; i: string } {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (v && typeof v === 'object' && 't' in v && 'i' in v && Number.isSafeInteger(v.t) && typeof v.i === 'string' && /^[a-z]{3}_[0-9a-z_]{20,80}$/.test(v.i)) {
      return { t: v.t as number, i: v.i };
    }
  } catch {
    // fall through
  }
  throw new UpshiftError('CURSOR_INVALID', 'cursor is not valid');
}
