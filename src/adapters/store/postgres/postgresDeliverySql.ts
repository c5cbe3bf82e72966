import { NOTIFICATION_TYPE_CODES } from '../../../core/notifications.js';

/**
 * Statements of the notification outbox, inbox and webhook endpoints (0002_notifications.sql),
 * merged into the store's statement set by buildSql. `s` is the quoted schema. Values are
 * always bound; `$n::type` casts pin parameter types where the planner cannot infer them.
 */

const OUTBOX = `entry_id, org_id, job_id, type, channel, kind, endpoint_id, payload, occurred_at, status, attempts,
  next_attempt_at, lease_token, first_attempt_at, last_attempt_at, last_status_code, last_error, created_at, updated_at, delivered_at`;
const NOTIFICATION = 'notification_id, org_id, job_id, type, channel, payload, created_at, read_at';

const ENDPOINT = 'endpoint_id, org_id, url, description, event_types, secret, enabled, created_at, updated_at';

/**
 * A job's inbox rows as a FROM item named `alias` with columns `cols` (`jobId`: an SQL
 * expression). The inbox has no index on job_id: its ids spell (job, type)
 * (0014_inbox_deduped_by_id.sql), so a job's rows are at most its three ids, each probed in the
 * primary key. The LATERAL subquery with OFFSET 0 keeps that plan whatever the statistics say: an
 * equality on the primary key is one row by construction, where `notification_id = ANY (…)
 * AND org_id = …` let the planner of a prepared statement on a young table pick the
 * (org_id, …) inbox index and walk the org's whole inbox.
 */
export const inboxRowsOf = (s: string, jobId: string, cols: string, alias: string): string =>
  `unnest(ARRAY[${Object.values(NOTIFICATION_TYPE_CODES)
    .map((code) => `'ntf_' || substr(${jobId}, 5) || '_${code}'`)
    .join(', ')}]) AS ${alias}_key(id)
    CROSS JOIN LATERAL (SELECT ${cols} FROM ${s}.notifications WHERE notification_id = ${alias}_key.id OFFSET 0) ${alias}`;

/**
 * The outbox rows of terminal transitions, from `e` (one row per transition: entry_id of the
 * in-app entry, org_id, job_id, type, payload, occurred_at, now): the pending in-app entry plus
 * one per enabled endpoint of the org subscribed to the type, looked up in the same statement
 * (so in the transition's transaction). Entry ids spell the dedupe key (see outboxEntryId):
 * `<in-app id>_<endpoint id without whe_>`. ON CONFLICT DO NOTHING: a replay inserts nothing.
 * `inline` (an SQL boolean): no in-app entry — the same statement writes the notification
 * itself (notificationInsertFrom), which is the delivery record, as on SQLite. (Until session 6
 * an entry born `delivered` was written beside it: one more row and two more index entries per
 * job that nothing read.)
 */
export function outboxInsertFrom(s: string, e: string, inline: string): string {
  return `INSERT INTO ${s}.notification_outbox (entry_id, org_id, job_id, type, channel, kind, endpoint_id, payload,
      occurred_at, next_attempt_at, created_at, updated_at)
    SELECT e.entry_id || COALESCE('_' || substr(w.endpoint_id, 5), ''), e.org_id, e.job_id, e.type,
      COALESCE('webhook:' || w.endpoint_id, 'in_app'), CASE WHEN w.endpoint_id IS NULL THEN 'in_app' ELSE 'webhook' END,
      w.endpoint_id, e.payload, e.occurred_at, e.now, e.now, e.now
    FROM ${e} e
    CROSS JOIN LATERAL (
      SELECT NULL::text AS endpoint_id WHERE NOT ${inline}
      UNION ALL
      SELECT x.endpoint_id FROM ${s}.webhook_endpoints x WHERE x.org_id = e.org_id AND x.enabled AND x.event_types ? e.type) w
    ON CONFLICT DO NOTHING`;
}

/**
 * In-app delivery inside the terminal transaction (`inAppDelivery: 'inline'`): the
 * notifications of the transitions in `e` (as above, plus notification_id), created at the
 * transition's `now`. The id spells (job, type): a replay inserts nothing.
 */
export function notificationInsertFrom(s: string, e: string, inline: string): string {
  return `INSERT INTO ${s}.notifications (notification_id, org_id, job_id, type, channel, payload, created_at)
    SELECT e.notification_id, e.org_id, e.job_id, e.type, 'in_app', e.payload, e.now FROM ${e} e WHERE ${inline}
    ON CONFLICT DO NOTHING`;
}

export function buildDeliverySql(s: string) {
  return {
    // $8: inline in-app delivery, $9: the notification ids (see notificationInsertFrom).
    insertOutbox: `WITH e AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::bigint[], $7::bigint[], $9::text[])
          AS u(entry_id, org_id, job_id, type, payload, occurred_at, now, notification_id)),
      n AS (${notificationInsertFrom(s, 'e', '$8::boolean')})
      ${outboxInsertFrom(s, 'e', '$8::boolean')}`,

    // Cross-tenant (internal role). SKIP LOCKED: concurrent deliverers take disjoint rows; the
    // lease (next_attempt_at moved to its end) keeps them disjoint after commit.
    claimOutbox: `WITH picked AS (
        SELECT entry_id, next_attempt_at FROM ${s}.notification_outbox
        WHERE status = 'pending' AND kind = $1 AND next_attempt_at <= $2
        ORDER BY next_attempt_at LIMIT $3
        FOR UPDATE SKIP LOCKED),
      u AS (
        UPDATE ${s}.notification_outbox o SET next_attempt_at = $4, lease_token = $5 || '.' || substr(o.entry_id, 5)
        FROM picked WHERE o.entry_id = picked.entry_id
        RETURNING o.entry_id, o.org_id, o.job_id, o.type, o.channel, o.kind, o.endpoint_id, o.payload, o.occurred_at,
          o.attempts, o.first_attempt_at, o.lease_token, picked.next_attempt_at AS due_at)
      SELECT u.*, w.url, w.secret, w.enabled FROM u LEFT JOIN ${s}.webhook_endpoints w ON w.endpoint_id = u.endpoint_id
      ORDER BY u.due_at, u.entry_id`,
    // Fenced: a failure only while the lease is held, a success whenever the entry is pending.
    recordAttempt: `UPDATE ${s}.notification_outbox SET status = $4, attempts = attempts + 1, next_attempt_at = $5,
        lease_token = NULL, first_attempt_at = COALESCE(first_attempt_at, $6), last_attempt_at = $6, last_status_code = $7,
        last_error = $8, delivered_at = $9, updated_at = $6
      WHERE entry_id = $1 AND org_id = $2 AND status = 'pending' AND ($4 = 'delivered' OR lease_token = $3)
      RETURNING ${OUTBOX}`,
    deferEntry: `UPDATE ${s}.notification_outbox SET next_attempt_at = $4, lease_token = NULL
      WHERE entry_id = $1 AND org_id = $2 AND lease_token = $3 AND status = 'pending' RETURNING entry_id`,
    pendingInAppBefore: `SELECT COUNT(*)::int AS n FROM ${s}.notification_outbox
      WHERE status = 'pending' AND kind = 'in_app' AND created_at < $1`,
    webhookSubscriptions: `SELECT DISTINCT e.org_id, t.type FROM ${s}.webhook_endpoints e
      CROSS JOIN LATERAL jsonb_array_elements_text(e.event_types) AS t(type) WHERE e.enabled`,
    // $1: the endpoints channel (PgNames.endpointsChannel), $2: the org. Sent at COMMIT only.
    notifyEndpoints: `SELECT pg_notify($1, $2)`,

    // Insert or return the existing notification (a repeat, or a second deliverer after a lost
    // lease): DO UPDATE with a no-op change returns the row even when another transaction
    // committed it after this statement's snapshot was taken (DO NOTHING would return nothing).
    completeInApp: `WITH n AS (
        INSERT INTO ${s}.notifications (notification_id, org_id, job_id, type, channel, payload, created_at)
        VALUES ($1, $2, $3, $4, 'in_app', $5::jsonb, $6)
        ON CONFLICT (notification_id) DO UPDATE SET read_at = notifications.read_at
        RETURNING ${NOTIFICATION}),
      d AS (
        UPDATE ${s}.notification_outbox SET status = 'delivered', attempts = attempts + 1, next_attempt_at = $6, lease_token = NULL,
          first_attempt_at = COALESCE(first_attempt_at, $6), last_attempt_at = $6, last_status_code = NULL, last_error = NULL,
          delivered_at = $6, updated_at = $6
        WHERE entry_id = $7 AND org_id = $2 AND status = 'pending')
      SELECT * FROM n`,
    markRead: `UPDATE ${s}.notifications SET read_at = COALESCE(read_at, $3) WHERE notification_id = $2 AND org_id = $1
      RETURNING ${NOTIFICATION}`,
    jobNotifications: `SELECT ${NOTIFICATION} FROM ${inboxRowsOf(s, '$2::text', NOTIFICATION, 'n')}
      WHERE n.job_id = $2 AND n.org_id = $1 AND n.channel = $3
      ORDER BY n.created_at DESC, n.notification_id DESC LIMIT $4`,
    inbox: `SELECT ${NOTIFICATION} FROM ${s}.notifications
      WHERE org_id = $1 AND (created_at, notification_id) < ($2::bigint, $3::text)
      ORDER BY created_at DESC, notification_id DESC LIMIT $4`,
    inboxUnread: `SELECT ${NOTIFICATION} FROM ${s}.notifications
      WHERE org_id = $1 AND read_at IS NULL AND (created_at, notification_id) < ($2::bigint, $3::text)
      ORDER BY created_at DESC, notification_id DESC LIMIT $4`,

    insertEndpoint: `INSERT INTO ${s}.webhook_endpoints (endpoint_id, org_id, url, description, event_types, secret, enabled, created_at, updated_at)
      VALUES ($1, $2, $3, $4, $5::jsonb, $6, true, $7, $7) RETURNING ${ENDPOINT}`,
    endpointByOrg: `SELECT ${ENDPOINT} FROM ${s}.webhook_endpoints WHERE org_id = $1 AND endpoint_id = $2`,
    endpointsByOrg: `SELECT ${ENDPOINT} FROM ${s}.webhook_endpoints WHERE org_id = $1 ORDER BY created_at, endpoint_id`,
    // NULL = field not in the patch; $4 says whether the description is (it may be set to null).
    updateEndpoint: `UPDATE ${s}.webhook_endpoints SET url = COALESCE($3::text, url),
        description = CASE WHEN $4::boolean THEN $5::text ELSE description END,
        event_types = COALESCE($6::jsonb, event_types), enabled = COALESCE($7::boolean, enabled), updated_at = $8
      WHERE org_id = $1 AND endpoint_id = $2 RETURNING ${ENDPOINT}`,
    // The endpoint and its delivery log (pending entries included) in one statement.
    deleteEndpoint: `WITH d AS (DELETE FROM ${s}.webhook_endpoints WHERE org_id = $1 AND endpoint_id = $2 RETURNING endpoint_id),
      log AS (DELETE FROM ${s}.notification_outbox WHERE org_id = $1 AND endpoint_id IN (SELECT endpoint_id FROM d))
      SELECT endpoint_id FROM d`,

    deliveries: `SELECT ${OUTBOX} FROM ${s}.notification_outbox
      WHERE org_id = $1 AND endpoint_id = $2 AND ($3::text IS NULL OR status = $3)
        AND (created_at, entry_id) < ($4::bigint, $5::text)
      ORDER BY created_at DESC, entry_id DESC LIMIT $6`,
    deliveryByOrg: `SELECT ${OUTBOX} FROM ${s}.notification_outbox WHERE org_id = $1 AND endpoint_id = $2 AND entry_id = $3`,
    // Not while in flight (claimed, lease not yet over): the running attempt decides.
    redeliver: `UPDATE ${s}.notification_outbox SET status = 'pending',
        next_attempt_at = CASE WHEN status = 'pending' THEN LEAST(next_attempt_at, $4) ELSE $4 END,
        first_attempt_at = NULL, delivered_at = NULL, updated_at = $4
      WHERE org_id = $1 AND endpoint_id = $2 AND entry_id = $3
        AND NOT (status = 'pending' AND lease_token IS NOT NULL AND next_attempt_at > $4)
      RETURNING ${OUTBOX}`,
  };
}
