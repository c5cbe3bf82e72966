import { asJobId, asOrgId } from '../../../core/ids.js';
import type { Json } from '../../../core/job.js';
import {
  IN_APP_CHANNEL,
  type ChannelKind,
  type InAppNotification,
  type NotificationType,
  type WebhookEndpoint,
} from '../../../core/notifications.js';
import type { ClaimedEntry } from '../../../ports/deliveryStore.js';
import type { DueRow, EndpointRow, NotificationRow } from './sqliteDeliveryQueries.js';

export { toDelivery } from '../storeRows.js';

/** Outbox, inbox and endpoint rows → domain objects. Rows come from our own writes: trusted. */

export function toNotification(r: NotificationRow): InAppNotification {
  return {
    notificationId: r.notification_id,
    orgId: asOrgId(r.org_id),
    jobId: asJobId(r.job_id),
    type: r.type as NotificationType,
    channel: IN_APP_CHANNEL,
    payload: JSON.parse(r.payload) as Json,
    createdAt: r.created_at,
    readAt: r.read_at,
  };
}

export function toEndpoint(r: EndpointRow): WebhookEndpoint {
  return {
    endpointId: r.endpoint_id,
    orgId: asOrgId(r.org_id),
    url: r.url,
    description: r.description,
    eventTypes: JSON.parse(r.event_types) as NotificationType[],
    enabled: r.enabled === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function toClaimedEntry(r: DueRow, leaseToken: string): ClaimedEntry {
  return {
    entryId: r.entry_id,
    orgId: asOrgId(r.org_id),
    jobId: asJobId(r.job_id),
    type: r.type as NotificationType,
    kind: r.kind as ChannelKind,
    channel: r.channel,
    endpointId: r.endpoint_id,
    data: JSON.parse(r.payload) as Json,
    occurredAt: r.occurred_at,
    attempts: r.attempts,
    firstAttemptAt: r.first_attempt_at,
    leaseToken,
    target: r.kind === 'webhook' && r.url !== null && r.secret !== null ? { url: r.url, secret: r.secret, enabled: r.enabled === 1 } : null,
  };
}
