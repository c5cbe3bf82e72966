import { asJobId, asOrgId } from '../../../core/ids.js';
import type { Json } from '../../../core/job.js';
import {
  IN_APP_CHANNEL,
  notificationData,
  type ChannelKind,
  type InAppNotification,
  type NotificationType,
  type WebhookEndpoint,
} from '../../../core/notifications.js';
import type { ClaimedEntry } from '../../../ports/deliveryStore.js';
import type { NotificationRowOf, OutboxRowOf } from '../storeRows.js';

export { toDelivery } from '../storeRows.js';

/**
 * Outbox, inbox and endpoint rows as pg returns them (jsonb parsed, bigint as number, see
 * postgresConnection) → domain objects. Rows come from our own writes: trusted.
 */

export type OutboxRow = OutboxRowOf<Json>;

export type ClaimRow = Pick<
  OutboxRow,
  'entry_id' | 'org_id' | 'job_id' | 'type' | 'channel' | 'kind' | 'endpoint_id' | 'payload' | 'occurred_at' | 'attempts' | 'first_attempt_at'
> & { lease_token: string; url: string | null; secret: string | null; enabled: boolean | null };

export type NotificationRow = NotificationRowOf<Json>;

export interface EndpointRow {
  endpoint_id: string;
  org_id: string;
  url: string;
  description: string | null;
  event_types: NotificationType[];
  secret: string;
  enabled: boolean;
  created_at: number;
  updated_at: number;
}

/**
 * jsonb stores object keys sorted by length, not as written; notification data leaves the
 * store in notificationData's key order again, so API answers and webhook bodies are the same
 * bytes as from the SQLite store (and as before a copy between them).
 */
const DATA_KEYS = Object.keys(notificationData({ jobId: '', orgId: '', status: 'completed', analyzer: '', resultId: null, error: null, finishedAt: 0 }));

export function inDataOrder(payload: Json): Json {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return payload;
  const out: Record<string, Json> = {};
  for (const k of DATA_KEYS) if (k in payload) out[k] = payload[k] as Json;
  for (const [k, v] of Object.entries(payload)) if (!(k in out)) out[k] = v;
  return out;
}

export function toNotification(r: NotificationRow): InAppNotification {
  return {
    notificationId: r.notification_id,
    orgId: asOrgId(r.org_id),
    jobId: asJobId(r.job_id),
    type: r.type as NotificationType,
    channel: IN_APP_CHANNEL,
    payload: inDataOrder(r.payload),
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
    eventTypes: r.event_types,
    enabled: r.enabled,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function toClaimedEntry(r: ClaimRow): ClaimedEntry {
  return {
    entryId: r.entry_id,
    orgId: asOrgId(r.org_id),
    jobId: asJobId(r.job_id),
    type: r.type as NotificationType,
    kind: r.kind as ChannelKind,
    channel: r.channel,
    endpointId: r.endpoint_id,
    data: inDataOrder(r.payload),
    occurredAt: r.occurred_at,
    attempts: r.attempts,
    firstAttemptAt: r.first_attempt_at,
    leaseToken: r.lease_token,
    target: r.kind === 'webhook' && r.url !== null && r.secret !== null ? { url: r.url, secret: r.secret, enabled: r.enabled === true } : null,
  };
}
