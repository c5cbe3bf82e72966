import type { JobId, OrgId } from './ids.js';
import type { JobError, Json } from './job.js';
import type { TerminalStatus } from './jobState.js';

/**
 * Glossary
 * - outbox entry: one message to deliver, written in the same transaction as the terminal
 *   transition it announces. One per (job, type, channel): the dedupe key.
 * - channel: where an entry goes — `in_app` (the tenant inbox) or `webhook:<endpoint_id>`.
 * - kind: the channel without its endpoint — `in_app` or `webhook` (rate limits, metrics).
 * - delivery: the webhook view of an outbox entry (status, attempts, last error).
 */

export const NOTIFICATION_TYPES = ['async.job.completed', 'async.job.failed', 'async.job.canceled'] as const;
export type NotificationType = (typeof NOTIFICATION_TYPES)[number];

export const CHANNEL_KINDS = ['in_app', 'webhook'] as const;
export type ChannelKind = (typeof CHANNEL_KINDS)[number];

export const IN_APP_CHANNEL = 'in_app';

export const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export const isNotificationType = (s: unknown): s is NotificationType =>
  typeof s === 'string' && (NOTIFICATION_TYPES as readonly string[]).includes(s);

export const notificationTypeOf = (status: TerminalStatus): NotificationType => `async.job.${status}`;

export const webhookChannel = (endpointId: string): string => `webhook:${endpointId}`;

/** What a notification says (the in-app payload and the webhook body's `data`). snake_case: it is wire JSON. */
export interface NotificationData {
  readonly job_id: string;
  readonly org_id: string;
  readonly status: TerminalStatus;
  readonly analyzer: string;
  readonly result_id: string | null;
  readonly error: JobError | null;
  /** ISO-8601. */
  readonly finished_at: string;
}

export function notificationData(job: {
  jobId: string;
  orgId: string;
  status: TerminalStatus;
  analyzer: string;
  resultId: string | null;
  error: JobError | null;
  finishedAt: number;
}): NotificationData {
  return {
    job_id: job.jobId,
    org_id: job.orgId,
    status: job.status,
    analyzer: job.analyzer,
    result_id: job.resultId,
    error: job.error === null ? null : { code: job.error.code, message: job.error.message },
    finished_at: new Date(job.finishedAt).toISOString(),
  };
}

/** The Standard Webhooks body: `{type, timestamp, data}`; `timestamp` is when the event happened. */
export function webhookBody(type: NotificationType, occurredAt: number, data: Json): string {
  return JSON.stringify({ type, timestamp: new Date(occurredAt).toISOString(), data });
}

/**
 * One letter per type inside ids: c(ompleted), f(ailed), x (canceled). Exported for stores that
 * spell the same rule in SQL (the PostgreSQL inbox's lookups by job, migration 0014's CHECK).
 */
export const NOTIFICATION_TYPE_CODES: Readonly<Record<NotificationType, string>> = { 'async.job.completed': 'c', 'async.job.failed': 'f', 'async.job.canceled': 'x' };

/**
 * The outbox entry id spells its dedupe key (job, type, channel): `msg_<job>_<type>` for the
 * in-app entry, `msg_<job>_<type>_<endpoint>` for a webhook. So the same logical message always
 * has the same id — across retries, replays and store copies — and a receiver that
 * de-duplicates by `webhook-id` never sees one event under two ids. Ids sort by job creation
 * time, which keeps inserts on the hot path at the end of the index.
 */
export function outboxEntryId(jobId: string, type: NotificationType, channel: string): string {
  const base = `msg_${jobId.slice(4)}_${NOTIFICATION_TYPE_CODES[type]}`;
  return channel === IN_APP_CHANNEL ? base : `${base}_${channel.slice('webhook:whe_'.length)}`;
}

/** The in-app notification id, derived from the same key. */
export const notificationIdOf = (jobId: string, type: NotificationType): string => `ntf_${jobId.slice(4)}_${NOTIFICATION_TYPE_CODES[type]}`;

const B32 = '[0-9a-hjkmnp-tv-z]{26}';
const ENTRY_ID_RE = new RegExp(`^msg_${B32}_[cfx](_${B32})?$`);
const NOTIFICATION_ID_RE = new RegExp(`^ntf_${B32}_[cfx]$`);
const ENDPOINT_ID_RE = new RegExp(`^whe_${B32}$`);

export const isOutboxEntryId = (s: unknown): s is string => typeof s === 'string' && ENTRY_ID_RE.test(s);
export const isNotificationId = (s: unknown): s is string => typeof s === 'string' && NOTIFICATION_ID_RE.test(s);
export const isWebhookEndpointId = (s: unknown): s is string => typeof s === 'string' && ENDPOINT_ID_RE.test(s);

export const ENTRY_ID_PATTERN = ENTRY_ID_RE.source;
export const NOTIFICATION_ID_PATTERN = NOTIFICATION_ID_RE.source;
export const ENDPOINT_ID_PATTERN = ENDPOINT_ID_RE.source;

/** An in-app notification as stored (the tenant inbox). */
export interface InAppNotification {
  readonly notificationId: string;
  readonly orgId: OrgId;
  readonly jobId: JobId;
  readonly type: NotificationType;
  readonly channel: typeof IN_APP_CHANNEL;
  readonly payload: Json;
  readonly createdAt: number;
  readonly readAt: number | null;
}

/** A webhook endpoint of one org, without its secret (the secret is shown once, at creation). */
export interface WebhookEndpoint {
  readonly endpointId: string;
  readonly orgId: OrgId;
  readonly url: string;
  readonly description: string | null;
  readonly eventTypes: readonly NotificationType[];
  readonly enabled: boolean;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** The delivery state of one webhook outbox entry. `deliveryId` is also the `webhook-id`. */
export interface WebhookDelivery {
  readonly deliveryId: string;
  readonly endpointId: string;
  readonly orgId: OrgId;
  readonly jobId: JobId;
  readonly type: NotificationType;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  readonly lastStatusCode: number | null;
  readonly lastError: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly lastAttemptAt: number | null;
  readonly deliveredAt: number | null;
  /** When the next attempt is due (pending only). */
  readonly nextAttemptAt: number | null;
}
