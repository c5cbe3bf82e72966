-- 0002_notifications: the notification outbox, the in-app inbox, webhook endpoints.
-- Append-only once merged. Timestamps are epoch milliseconds; JSON columns are text.

-- Per-tenant webhook endpoints. The secret signs deliveries (Standard Webhooks), so it is
-- stored as is; the API shows it once, at creation. event_types: JSON array of types.
CREATE TABLE webhook_endpoints (
  endpoint_id TEXT    NOT NULL PRIMARY KEY,
  org_id      TEXT    NOT NULL,
  url         TEXT    NOT NULL,
  description TEXT,
  event_types TEXT    NOT NULL,
  secret      TEXT    NOT NULL,
  enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

-- The terminal-transition lookup (one seek per terminal job) and the tenant listing.
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, created_at);

-- One row per message to deliver, written in the transaction of the terminal transition.
-- (job_id, type, channel) is the dedupe key: a replayed terminal write inserts nothing.
-- entry_id is derived from that key and is the webhook-id of a webhook delivery.
-- A claim leases a row by moving next_attempt_at to the lease end and setting lease_token.
CREATE TABLE notification_outbox (
  entry_id         TEXT    NOT NULL PRIMARY KEY,
  org_id           TEXT    NOT NULL,
  job_id           TEXT    NOT NULL,
  type             TEXT    NOT NULL,
  channel          TEXT    NOT NULL,
  kind             TEXT    NOT NULL CHECK (kind IN ('in_app', 'webhook')),
  endpoint_id      TEXT,
  payload          TEXT    NOT NULL,
  occurred_at      INTEGER NOT NULL,
  status           TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  INTEGER NOT NULL,
  lease_token      TEXT,
  first_attempt_at INTEGER,
  last_attempt_at  INTEGER,
  last_status_code INTEGER,
  last_error       TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  delivered_at     INTEGER,
  UNIQUE (job_id, type, channel),
  CHECK ((kind = 'webhook') = (endpoint_id IS NOT NULL))
);

-- Due work per kind. Partial: only pending rows, so it stays as small as the backlog and
-- delivered history costs nothing here (this also bounds the invariant metric's count).
CREATE INDEX notification_outbox_due ON notification_outbox (kind, next_attempt_at) WHERE status = 'pending';

-- An endpoint's delivery log, newest first. Webhook rows only.
CREATE INDEX notification_outbox_endpoint ON notification_outbox (org_id, endpoint_id, created_at, entry_id)
  WHERE endpoint_id IS NOT NULL;

-- The in-app inbox. Unique by (job_id, type, channel): delivering an entry twice creates one row.
CREATE TABLE notifications (
  notification_id TEXT    NOT NULL PRIMARY KEY,
  org_id          TEXT    NOT NULL,
  job_id          TEXT    NOT NULL,
  type            TEXT    NOT NULL,
  channel         TEXT    NOT NULL,
  payload         TEXT    NOT NULL,
  created_at      INTEGER NOT NULL,
  read_at         INTEGER,
  UNIQUE (job_id, type, channel)
);

CREATE INDEX notifications_inbox ON notifications (org_id, created_at, notification_id);
CREATE INDEX notifications_unread ON notifications (org_id, created_at, notification_id) WHERE read_at IS NULL;
