import { Type, type Static } from '@sinclair/typebox';
import {
  DELIVERY_STATUSES,
  ENDPOINT_ID_PATTERN,
  ENTRY_ID_PATTERN,
  NOTIFICATION_ID_PATTERN,
  NOTIFICATION_TYPES,
  type InAppNotification,
  type WebhookDelivery,
  type WebhookEndpoint,
} from '../core/notifications.js';

/** Schemas and presenters of the notification and webhook routes (see schemas.ts for the rest). */

const stringEnum = <T extends string>(values: readonly T[], extra: Record<string, unknown> = {}) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], ...extra });
const nullable = <T>(type: 'string' | 'integer', extra: Record<string, unknown> = {}) => Type.Unsafe<T | null>({ type: [type, 'null'], ...extra });
const Timestamp = Type.String({ format: 'date-time' });
const NullableTimestamp = nullable<string>('string', { format: 'date-time' });

export const NotificationTypeSchema = stringEnum(NOTIFICATION_TYPES);
const Limit = Type.Integer({ minimum: 1, maximum: 200, default: 20 });
const Cursor = Type.String({ maxLength: 512, description: '`next_cursor` of the previous page' });

export const JobNotificationsQuery = Type.Object({
  channel: stringEnum(['in_app'] as const, { default: 'in_app' }),
  limit: Limit,
});
export type JobNotificationsQuery = Static<typeof JobNotificationsQuery>;

export const InboxQuery = Type.Object({
  channel: stringEnum(['in_app'] as const, { default: 'in_app' }),
  unread: Type.Boolean({ default: false, description: 'only notifications not yet marked read' }),
  cursor: Type.Optional(Cursor),
  limit: Limit,
});
export type InboxQuery = Static<typeof InboxQuery>;

export const NotificationParams = Type.Object({
  notification_id: Type.String({ pattern: NOTIFICATION_ID_PATTERN, description: 'notification id (`ntf_…`)' }),
});
export type NotificationParams = Static<typeof NotificationParams>;

export const WebhookParams = Type.Object({
  webhook_id: Type.String({ pattern: ENDPOINT_ID_PATTERN, description: 'webhook endpoint id (`whe_…`)' }),
});
export type WebhookParams = Static<typeof WebhookParams>;

export const DeliveryParams = Type.Object({
  ...WebhookParams.properties,
  delivery_id: Type.String({ pattern: ENTRY_ID_PATTERN, description: 'delivery id = webhook-id (`msg_…`)' }),
});
export type DeliveryParams = Static<typeof DeliveryParams>;

// No U+0000 in stored strings: PostgreSQL cannot store it (and no URL or description means it).
const NO_NUL = '^[^\\u0000]*$';
const Url = Type.String({ minLength: 1, maxLength: 2048, pattern: NO_NUL, description: 'absolute http(s) URL the events are POSTed to' });
const EventTypes = Type.Array(NotificationTypeSchema, { minItems: 1, maxItems: NOTIFICATION_TYPES.length * 4, description: 'event types to receive' });
const Description = nullable<string>('string', { maxLength: 256, pattern: NO_NUL });

export const CreateWebhookBody = Type.Object(
  { url: Url, event_types: EventTypes, description: Type.Optional(Description) },
  { additionalProperties: false },
);
export type CreateWebhookBody = Static<typeof CreateWebhookBody>;

export const PatchWebhookBody = Type.Object(
  { url: Type.Optional(Url), event_types: Type.Optional(EventTypes), description: Type.Optional(Description), enabled: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1 },
);
export type PatchWebhookBody = Static<typeof PatchWebhookBody>;

export const DeliveriesQuery = Type.Object({
  status: Type.Optional(stringEnum(DELIVERY_STATUSES)),
  cursor: Type.Optional(Cursor),
  limit: Limit,
});
export type DeliveriesQuery = Static<typeof DeliveriesQuery>;

export const NotificationSchema = Type.Object({
  notification_id: Type.String(),
  job_id: Type.String(),
  type: NotificationTypeSchema,
  channel: Type.Literal('in_app'),
  payload: Type.Unsafe<unknown>({ description: '{job_id, org_id, status, analyzer, result_id, error, finished_at}' }),
  created_at: Timestamp,
  read_at: NullableTimestamp,
});

export const JobNotificationList = Type.Object({ job_id: Type.String(), notifications: Type.Array(NotificationSchema) });
export const NotificationList = Type.Object({
  notifications: Type.Array(NotificationSchema),
  next_cursor: nullable<string>('string', { description: 'pass as `cursor` for the next (older) page; null at the end' }),
});

export const WebhookSchema = Type.Object({
  webhook_id: Type.String(),
  url: Type.String(),
  description: nullable<string>('string'),
  event_types: Type.Array(NotificationTypeSchema),
  enabled: Type.Boolean(),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export const WebhookCreated = Type.Object({
  ...WebhookSchema.properties,
  secret: Type.String({ description: 'signing secret (`whsec_…`), shown only in this response' }),
});
export const WebhookList = Type.Object({ webhooks: Type.Array(WebhookSchema) });

export const DeliverySchema = Type.Object({
  delivery_id: Type.String({ description: 'also the `webhook-id` header of every attempt' }),
  webhook_id: Type.String(),
  job_id: Type.String(),
  type: NotificationTypeSchema,
  status: stringEnum(DELIVERY_STATUSES),
  attempts: Type.Integer(),
  last_status_code: nullable<number>('integer'),
  last_error: nullable<string>('string'),
  created_at: Timestamp,
  updated_at: Timestamp,
  last_attempt_at: NullableTimestamp,
  delivered_at: NullableTimestamp,
  next_attempt_at: NullableTimestamp,
});
export const DeliveryList = Type.Object({
  deliveries: Type.Array(DeliverySchema),
  next_cursor: nullable<string>('string', { description: 'pass as `cursor` for the next (older) page; null at the end' }),
});

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

export function toNotificationJson(n: InAppNotification) {
  return {
    notification_id: n.notificationId,
    job_id: n.jobId,
    type: n.type,
    channel: n.channel,
    payload: n.payload,
    created_at: iso(n.createdAt),
    read_at: isoOrNull(n.readAt),
  };
}

/** Never carries the secret. */
export function toWebhookJson(e: WebhookEndpoint) {
  return {
    webhook_id: e.endpointId,
    url: e.url,
    description: e.description,
    event_types: [...e.eventTypes],
    enabled: e.enabled,
    created_at: iso(e.createdAt),
    updated_at: iso(e.updatedAt),
  };
}

export function toDeliveryJson(d: WebhookDelivery) {
  return {
    delivery_id: d.deliveryId,
    webhook_id: d.endpointId,
    job_id: d.jobId,
    type: d.type,
    status: d.status,
    attempts: d.attempts,
    last_status_code: d.lastStatusCode,
    last_error: d.lastError,
    created_at: iso(d.createdAt),
    updated_at: iso(d.updatedAt),
    last_attempt_at: isoOrNull(d.lastAttemptAt),
    delivered_at: isoOrNull(d.deliveredAt),
    next_attempt_at: isoOrNull(d.nextAttemptAt),
  };
}
