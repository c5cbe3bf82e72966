import { asOrgId, newToken, type OrgId } from '../../../core/ids.js';
import { notificationIdOf } from '../../../core/notifications.js';
import type {
  ClaimedEntry,
  ClaimOutboxCommand,
  CreateWebhookEndpointCommand,
  DeliveryStore,
  WebhookAttemptResult,
  WebhookEndpointPatch,
} from '../../../ports/deliveryStore.js';
import type { InAppNotification, NotificationType, WebhookDelivery, WebhookEndpoint } from '../../../core/notifications.js';
import { NO_ID_CURSOR, NO_TIME_CURSOR, type DeliveryQueries } from './sqliteDeliveryQueries.js';
import { toClaimedEntry, toDelivery, toEndpoint, toNotification } from './sqliteDeliveryRows.js';

/** How the delivery methods reach the store's connections (see createSqliteJobStore). */
export interface SqliteDeliveryAccess {
  /** A synchronous read on the connection (never inside an open transaction). */
  read<T>(fn: (q: DeliveryQueries) => T): Promise<T>;
  /** A named write op (DELIVERY_WRITES), group-committed with every other write of this event-loop turn. */
  write<N extends keyof typeof DELIVERY_WRITES>(name: N, args: Parameters<(typeof DELIVERY_WRITES)[N]>[1]): Promise<ReturnType<(typeof DELIVERY_WRITES)[N]>>;
}

const floor = (n: number): number => Math.max(0, Math.floor(n));

/**
 * The delivery writes, by name: each runs inside the writer's open transaction (on the
 * writer thread, or in-thread; see sqliteWriter.ts), so a read-modify-write here runs under
 * the single writer's lock: claims and fenced updates are compare-and-set without extra
 * locking. Arguments and results cross a thread boundary: plain data only.
 */
export const DELIVERY_WRITES = {
  claimOutbox(q: DeliveryQueries, cmd: ClaimOutboxCommand): ClaimedEntry[] {
    if (cmd.limit <= 0) return [];
    const rows = q.dueEntries.all(cmd.kind, cmd.now, floor(cmd.limit));
    // One random draw per claim, suffixed per entry (as job leases do).
    const token = newToken('dlv_');
    return rows.map((r, i) => {
      const leaseToken = `${token}.${i}`;
      q.leaseEntry.run(cmd.now + cmd.leaseMs, leaseToken, r.entry_id);
      return toClaimedEntry(r, leaseToken);
    });
  },

  completeInApp(q: DeliveryQueries, { entry, now }: { entry: ClaimedEntry; now: number }): InAppNotification {
    q.insertNotification.run(notificationIdOf(entry.jobId, entry.type), entry.orgId, entry.jobId, entry.type, JSON.stringify(entry.data), now);
    const row = q.entryById.get(entry.entryId);
    if (row?.status === 'pending') q.recordAttempt.run('delivered', now, now, now, null, null, now, now, entry.entryId);
    return toNotification(q.notificationByKey.get(entry.jobId, entry.type)!);
  },

  recordWebhookAttempt(
    q: DeliveryQueries,
    { entry, result, now, nextAttemptAt }: { entry: ClaimedEntry; result: WebhookAttemptResult; now: number; nextAttemptAt: number | null },
  ): WebhookDelivery | undefined {
    const row = q.entryById.get(entry.entryId);
    if (!row || row.status !== 'pending') return undefined;
    if (!result.ok && row.lease_token !== entry.leaseToken) return undefined;
    const status = result.ok ? 'delivered' : nextAttemptAt === null ? 'failed' : 'pending';
    q.recordAttempt.run(
      status,
      nextAttemptAt ?? now,
      now,
      now,
      result.statusCode,
      result.ok ? null : (result.error ?? 'failed').slice(0, 500),
      result.ok ? now : null,
      now,
      entry.entryId,
    );
    return toDelivery(q.entryById.get(entry.entryId)!);
  },

  deferEntry(q: DeliveryQueries, { entry, until }: { entry: ClaimedEntry; until: number }): boolean {
    return q.deferEntry.run(until, entry.entryId, entry.leaseToken).changes > 0;
  },

  markRead(q: DeliveryQueries, { orgId, notificationId, now }: { orgId: OrgId; notificationId: string; now: number }): InAppNotification | undefined {
    if (q.markRead.run(now, notificationId, orgId).changes === 0) return undefined;
    return toNotification(q.notificationByOrg.get(notificationId, orgId)!);
  },

  createWebhookEndpoint(q: DeliveryQueries, cmd: CreateWebhookEndpointCommand): WebhookEndpoint {
    q.insertEndpoint.run(cmd.endpointId, cmd.orgId, cmd.url, cmd.description, JSON.stringify(cmd.eventTypes), cmd.secret, cmd.now, cmd.now);
    return toEndpoint(q.endpointByOrg.get(cmd.endpointId, cmd.orgId)!);
  },

  updateWebhookEndpoint(
    q: DeliveryQueries,
    { orgId, endpointId, patch, now }: { orgId: OrgId; endpointId: string; patch: WebhookEndpointPatch; now: number },
  ): WebhookEndpoint | undefined {
    const row = q.endpointByOrg.get(endpointId, orgId);
    if (!row) return undefined;
    q.updateEndpoint.run(
      patch.url ?? row.url,
      patch.description !== undefined ? patch.description : row.description,
      patch.eventTypes !== undefined ? JSON.stringify(patch.eventTypes) : row.event_types,
      patch.enabled !== undefined ? (patch.enabled ? 1 : 0) : row.enabled,
      now,
      endpointId,
      orgId,
    );
    return toEndpoint(q.endpointByOrg.get(endpointId, orgId)!);
  },

  deleteWebhookEndpoint(q: DeliveryQueries, { orgId, endpointId }: { orgId: OrgId; endpointId: string }): boolean {
    if (q.deleteEndpoint.run(endpointId, orgId).changes === 0) return false;
    q.deleteEndpointEntries.run(orgId, endpointId);
    return true;
  },

  redeliver(q: DeliveryQueries, { orgId, endpointId, deliveryId, now }: { orgId: OrgId; endpointId: string; deliveryId: string; now: number }): WebhookDelivery | undefined {
    const row = q.deliveryByOrg.get(deliveryId, orgId, endpointId);
    if (!row) return undefined;
    // In flight (claimed, lease not yet released): a second concurrent attempt could reach
    // the receiver twice at once; the running attempt decides.
    const inFlight = row.status === 'pending' && row.lease_token !== null && row.next_attempt_at > now;
    if (!inFlight) q.redeliver.run(row.status === 'pending' ? Math.min(row.next_attempt_at, now) : now, now, deliveryId);
    return toDelivery(q.deliveryByOrg.get(deliveryId, orgId, endpointId)!);
  },
};

/** The DeliveryStore half of the SQLite store: reads on the caller's connection, writes by name. */
export function createSqliteDeliveryMethods({ read, write }: SqliteDeliveryAccess): DeliveryStore {
  return {
    claimOutbox: (cmd) => write('claimOutbox', cmd),
    completeInApp: (entry, now) => write('completeInApp', { entry, now }),
    recordWebhookAttempt: (entry, result, now, nextAttemptAt) => write('recordWebhookAttempt', { entry, result, now, nextAttemptAt }),
    deferEntry: (entry, until) => write('deferEntry', { entry, until }),

    listJobNotifications: (orgId, jobId, channel, limit) =>
      read((q) => (limit <= 0 ? [] : q.jobNotifications.all(jobId, orgId, channel, floor(limit)).map(toNotification))),

    listInbox: (orgId, query) =>
      read((q) => {
        if (query.limit <= 0) return [];
        const params = { org: orgId, at: query.before?.createdAt ?? NO_TIME_CURSOR, id: query.before?.notificationId ?? NO_ID_CURSOR, limit: floor(query.limit) };
        return (query.unreadOnly ? q.inboxUnread : q.inbox).all(params).map(toNotification);
      }),

    markRead: (orgId, notificationId, now) => write('markRead', { orgId, notificationId, now }),
    createWebhookEndpoint: (cmd) => write('createWebhookEndpoint', cmd),

    listWebhookEndpoints: (orgId) => read((q) => q.endpointsByOrg.all(orgId).map(toEndpoint)),

    getWebhookEndpoint: (orgId, endpointId) =>
      read((q) => {
        const row = q.endpointByOrg.get(endpointId, orgId);
        return row ? toEndpoint(row) : undefined;
      }),

    updateWebhookEndpoint: (orgId, endpointId, patch, now) => write('updateWebhookEndpoint', { orgId, endpointId, patch, now }),
    deleteWebhookEndpoint: (orgId, endpointId) => write('deleteWebhookEndpoint', { orgId, endpointId }),

    listDeliveries: (orgId, endpointId, query) =>
      read((q) => {
        if (query.limit <= 0) return [];
        return q.deliveries
          .all({
            org: orgId,
            endpoint: endpointId,
            status: query.status ?? null,
            at: query.before?.createdAt ?? NO_TIME_CURSOR,
            id: query.before?.deliveryId ?? NO_ID_CURSOR,
            limit: floor(query.limit),
          })
          .map(toDelivery);
      }),

    getDelivery: (orgId, endpointId, deliveryId) =>
      read((q) => {
        const row = q.deliveryByOrg.get(deliveryId, orgId, endpointId);
        return row ? toDelivery(row) : undefined;
      }),

    redeliver: (orgId, endpointId, deliveryId, now) => write('redeliver', { orgId, endpointId, deliveryId, now }),

    countTerminalWithoutInApp: (olderThan) => read((q) => q.pendingInAppBefore.get(olderThan) ?? 0),
    webhookSubscriptions: () => read((q) => q.webhookSubscriptions.all().map((r) => ({ orgId: asOrgId(r.org_id), type: r.type as NotificationType }))),
  };
}
