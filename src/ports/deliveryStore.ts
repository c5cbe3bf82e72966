import type { JobId, OrgId } from '../core/ids.js';
import type { Json } from '../core/job.js';
import type {
  ChannelKind,
  DeliveryStatus,
  InAppNotification,
  NotificationType,
  WebhookDelivery,
  WebhookEndpoint,
} from '../core/notifications.js';

/**
 * The delivery port: the notification outbox, the in-app inbox, webhook endpoints and their
 * delivery log. Implemented by every store adapter next to its JobStore (same database, same
 * transactions); `test/contracts/deliveryStore.contract.ts` runs against each one.
 *
 * The outbox is filled by the JobStore, not through this port: every terminal transition
 * (completed, failed, canceled — from finishJob, requestCancel of a queued job,
 * recoverExpiredLeases, any path) writes, in the same transaction as the transition,
 *  - one `in_app` entry, and
 *  - one `webhook:<endpoint_id>` entry per enabled endpoint of the job's org subscribed to the
 *    type, selected inside that transaction.
 * Each entry is unique by its dedupe key (job_id, type, channel), so replaying a terminal
 * write inserts nothing. A job that never reaches a terminal state has no entries.
 *
 * How the `in_app` entry is delivered is fixed when the adapter is created (its
 * `inAppDelivery` option, see InAppDelivery):
 *  - `outbox` (the default): the entry is written `pending`; a dispatcher claims it
 *    (claimOutbox) and delivers it (completeInApp).
 *  - `inline`: the terminal transaction itself inserts the in-app notification (createdAt =
 *    the transition's `now`, unique by job and type) instead of a pending `in_app` entry. The
 *    notification is thus committed — or rolled back — with the transition: nothing is left
 *    to claim, and countTerminalWithoutInApp never counts it. A local write needs no lease.
 *    No `in_app` entry is written in this mode: the notification row is the delivery record.
 * Webhook entries are the same in both modes. Entries of either mode may coexist in one
 * database (e.g. written by processes configured differently); pending ones are always claimable.
 *
 * Common guarantees: tenant-bound reads and writes (another org's id behaves like a missing
 * id), timestamps from the caller (`now`, epoch ms), promises resolve after commit, failures
 * are UpshiftErrors. Secrets appear only in `createWebhookEndpoint`'s input and in claimed
 * entries (for signing) — never in any read model.
 */
export interface DeliveryStore {
  /**
   * Claims up to `limit` pending entries of one channel kind, across all orgs, whose next
   * attempt is due (`nextAttemptAt <= now`), oldest due first. Each claimed entry is leased
   * until `now + leaseMs` with a fresh lease token: until then no other claim returns it, so
   * two deliverers never hold the same entry at once. A deliverer that dies simply lets the
   * lease run out; the entry is then claimable again (delivery is at-least-once per attempt).
   * Webhook entries carry their endpoint's current url, secret and enabled flag.
   */
  claimOutbox(cmd: ClaimOutboxCommand): Promise<ClaimedEntry[]>;

  /**
   * Inserts the entry's in-app notification and marks the entry delivered, in one transaction.
   * Idempotent: the notification is unique by (job_id, type), so a repeat (or a second
   * deliverer after a lost lease) creates nothing and returns the existing notification.
   */
  completeInApp(entry: ClaimedEntry, now: number): Promise<InAppNotification>;

  /**
   * Records one webhook attempt (attempts + 1, last status code/error, last attempt time).
   * `result.ok` → delivered. Otherwise `nextAttemptAt` → stays pending, due again then;
   * `null` → failed (no more automatic attempts). Fenced: a failed attempt is recorded only
   * while the caller still holds the entry's lease; a successful one whenever the entry is
   * still pending (a delivered message stays delivered). Returns the delivery after the
   * write, or undefined if nothing was recorded (lease lost, entry gone).
   */
  recordWebhookAttempt(entry: ClaimedEntry, result: WebhookAttemptResult, now: number, nextAttemptAt: number | null): Promise<WebhookDelivery | undefined>;

  /**
   * Releases a claimed entry without an attempt and makes it due at `until` (rate limiting
   * delays, never drops). Fenced by the lease; returns false if the lease was lost.
   */
  deferEntry(entry: ClaimedEntry, until: number): Promise<boolean>;

  /** In-app notifications of one job (`channel` = `in_app`), latest first, at most `limit`. */
  listJobNotifications(orgId: OrgId, jobId: JobId, channel: string, limit: number): Promise<InAppNotification[]>;

  /** The org's inbox, latest first (createdAt, then notificationId, descending); keyset cursor. */
  listInbox(orgId: OrgId, query: InboxQuery): Promise<InAppNotification[]>;

  /** Marks one notification read. Idempotent: the first readAt is kept. Undefined if not found. */
  markRead(orgId: OrgId, notificationId: string, now: number): Promise<InAppNotification | undefined>;

  /** Stores a new endpoint with its secret (needed to sign; never returned by reads). */
  createWebhookEndpoint(cmd: CreateWebhookEndpointCommand): Promise<WebhookEndpoint>;
  /** The org's endpoints, oldest first. */
  listWebhookEndpoints(orgId: OrgId): Promise<WebhookEndpoint[]>;
  getWebhookEndpoint(orgId: OrgId, endpointId: string): Promise<WebhookEndpoint | undefined>;
  /** Applies the given fields; undefined if not found. Takes effect for entries not yet delivered. */
  updateWebhookEndpoint(orgId: OrgId, endpointId: string, patch: WebhookEndpointPatch, now: number): Promise<WebhookEndpoint | undefined>;
  /** Deletes the endpoint and its delivery log (pending entries included). True if it existed. */
  deleteWebhookEndpoint(orgId: OrgId, endpointId: string): Promise<boolean>;

  /** Deliveries of one endpoint, newest first (createdAt, then deliveryId, descending); keyset cursor. */
  listDeliveries(orgId: OrgId, endpointId: string, query: DeliveryQuery): Promise<WebhookDelivery[]>;
  getDelivery(orgId: OrgId, endpointId: string, deliveryId: string): Promise<WebhookDelivery | undefined>;

  /**
   * Schedules another attempt of a delivery with the same webhook-id: a delivered or failed
   * one becomes pending, due now, with a fresh retry period. A pending one not currently
   * claimed becomes due now; one in flight is left alone (never two attempts at once).
   * Undefined if the delivery does not exist for this org and endpoint.
   */
  redeliver(orgId: OrgId, endpointId: string, deliveryId: string, now: number): Promise<WebhookDelivery | undefined>;

  /**
   * For the invariant metric: terminal transitions committed before `olderThan` whose in-app
   * notification does not exist yet (their `in_app` entry is still pending). Cheap: reads only
   * the pending backlog, never the job history.
   */
  countTerminalWithoutInApp(olderThan: number): Promise<number>;

  /**
   * Which event types the enabled webhook endpoints want, per org, across tenants: each
   * (org, type) pair once. For the dispatcher's wake-ups: a terminal transition of a type no
   * enabled endpoint of its org subscribes to wrote no webhook entry, so it need not start a
   * webhook claim round. Small (at most three rows per org with endpoints); no secrets.
   */
  webhookSubscriptions(): Promise<WebhookSubscription[]>;
}

/** An org with at least one enabled webhook endpoint that subscribes to `type`. */
export interface WebhookSubscription {
  readonly orgId: OrgId;
  readonly type: NotificationType;
}

/**
 * The adapters' creation option for the in-app half of a terminal transition (see DeliveryStore).
 * `inline` is only correct where nothing has to hold an in-app notification back: the composition
 * root picks it when this process delivers notifications and the in-app channel has no rate limit
 * (a rate-limited entry must be delayable, so it goes through the outbox).
 */
export type InAppDelivery = 'outbox' | 'inline';

export interface ClaimOutboxCommand {
  readonly kind: ChannelKind;
  readonly now: number;
  readonly limit: number;
  readonly leaseMs: number;
}

export interface ClaimedEntry {
  /** Stable across retries: the `webhook-id` of a webhook delivery. */
  readonly entryId: string;
  readonly orgId: OrgId;
  readonly jobId: JobId;
  readonly type: NotificationType;
  readonly kind: ChannelKind;
  /** `in_app` or `webhook:<endpoint_id>`. */
  readonly channel: string;
  readonly endpointId: string | null;
  /** The notification data (NotificationData JSON). */
  readonly data: Json;
  /** When the terminal transition happened (the webhook body's `timestamp`). */
  readonly occurredAt: number;
  readonly attempts: number;
  /** Start of the current retry period (null before the first attempt). */
  readonly firstAttemptAt: number | null;
  readonly leaseToken: string;
  /** Webhook entries: the endpoint as it is now. */
  readonly target: WebhookTarget | null;
}

export interface WebhookTarget {
  readonly url: string;
  readonly secret: string;
  readonly enabled: boolean;
}

export interface WebhookAttemptResult {
  readonly ok: boolean;
  readonly statusCode: number | null;
  /** Short, secret-free description of a failure (null on success). */
  readonly error: string | null;
}

export interface InboxQuery {
  readonly unreadOnly: boolean;
  /** Exclusive: return notifications older than this one. */
  readonly before?: { readonly createdAt: number; readonly notificationId: string };
  readonly limit: number;
}

export interface DeliveryQuery {
  readonly status?: DeliveryStatus;
  /** Exclusive: return deliveries older than this one. */
  readonly before?: { readonly createdAt: number; readonly deliveryId: string };
  readonly limit: number;
}

export interface CreateWebhookEndpointCommand {
  readonly endpointId: string;
  readonly orgId: OrgId;
  readonly url: string;
  readonly description: string | null;
  readonly eventTypes: readonly NotificationType[];
  readonly secret: string;
  readonly now: number;
}

export interface WebhookEndpointPatch {
  readonly url?: string;
  readonly description?: string | null;
  readonly eventTypes?: readonly NotificationType[];
  readonly enabled?: boolean;
}
