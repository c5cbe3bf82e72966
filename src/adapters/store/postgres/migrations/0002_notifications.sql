-- 0002_notifications: the notification outbox, the in-app inbox, webhook endpoints (same
-- semantics as the SQLite store's 0002_notifications.sql), row-level security for all three,
-- and the grants retention needs to delete events and results.
-- Append-only once merged: change the schema with a new numbered file, never by editing this one.
-- Runs with search_path = the store's schema; placeholders as in 0001_init.sql.

-- Per-tenant webhook endpoints. The secret signs deliveries (Standard Webhooks), so it is
-- stored as is; the API shows it once, at creation. event_types: JSON array of types, in the
-- order the tenant gave them.
CREATE TABLE webhook_endpoints (
  endpoint_id text    NOT NULL PRIMARY KEY,
  org_id      text    NOT NULL,
  url         text    NOT NULL,
  description text,
  event_types jsonb   NOT NULL CHECK (jsonb_typeof(event_types) = 'array'),
  secret      text    NOT NULL,
  enabled     boolean NOT NULL DEFAULT true,
  created_at  bigint  NOT NULL,
  updated_at  bigint  NOT NULL
);

-- The terminal-transition lookup (one seek per terminal job) and the tenant listing.
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, created_at);

-- One row per message to deliver, written in the transaction of the terminal transition.
-- (job_id, type, channel) is the dedupe key: a replayed terminal write inserts nothing.
-- entry_id is derived from that key and is the webhook-id of a webhook delivery.
-- A claim leases a row by moving next_attempt_at to the lease end and setting lease_token.
CREATE TABLE notification_outbox (
  entry_id         text    NOT NULL PRIMARY KEY,
  org_id           text    NOT NULL,
  job_id           text    NOT NULL,
  type             text    NOT NULL,
  channel          text    NOT NULL,
  kind             text    NOT NULL CHECK (kind IN ('in_app', 'webhook')),
  endpoint_id      text,
  payload          jsonb   NOT NULL,
  occurred_at      bigint  NOT NULL,
  status           text    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  bigint  NOT NULL,
  lease_token      text,
  first_attempt_at bigint,
  last_attempt_at  bigint,
  last_status_code integer,
  last_error       text,
  created_at       bigint  NOT NULL,
  updated_at       bigint  NOT NULL,
  delivered_at     bigint,
  UNIQUE (job_id, type, channel),
  CHECK ((kind = 'webhook') = (endpoint_id IS NOT NULL))
);

-- Due work per kind (claims walk it with FOR UPDATE SKIP LOCKED). Partial: only pending rows,
-- so it stays as small as the backlog; it also bounds the invariant metric's count.
CREATE INDEX notification_outbox_due ON notification_outbox (kind, next_attempt_at) WHERE status = 'pending';

-- An endpoint's delivery log, newest first. Webhook rows only.
CREATE INDEX notification_outbox_endpoint ON notification_outbox (org_id, endpoint_id, created_at, entry_id)
  WHERE endpoint_id IS NOT NULL;

-- The in-app inbox. Unique by (job_id, type, channel): delivering an entry twice creates one row.
CREATE TABLE notifications (
  notification_id text   NOT NULL PRIMARY KEY,
  org_id          text   NOT NULL,
  job_id          text   NOT NULL,
  type            text   NOT NULL,
  channel         text   NOT NULL,
  payload         jsonb  NOT NULL,
  created_at      bigint NOT NULL,
  read_at         bigint,
  UNIQUE (job_id, type, channel)
);

CREATE INDEX notifications_inbox ON notifications (org_id, created_at, notification_id);
CREATE INDEX notifications_unread ON notifications (org_id, created_at, notification_id) WHERE read_at IS NULL;

-- Row-level security exactly as for the tables of 0001_init.sql: the tenant policy binds every
-- role (FORCE: the owner too), the internal role gets its own permissive policy.
ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_endpoints
  USING (org_id = current_setting('upshift.org_id', true))
  WITH CHECK (org_id = current_setting('upshift.org_id', true));
CREATE POLICY internal_access ON webhook_endpoints TO :UPSHIFT_INTERNAL_ROLE USING (true) WITH CHECK (true);

ALTER TABLE notification_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notification_outbox
  USING (org_id = current_setting('upshift.org_id', true))
  WITH CHECK (org_id = current_setting('upshift.org_id', true));
CREATE POLICY internal_access ON notification_outbox TO :UPSHIFT_INTERNAL_ROLE USING (true) WITH CHECK (true);

ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notifications
  USING (org_id = current_setting('upshift.org_id', true))
  WITH CHECK (org_id = current_setting('upshift.org_id', true));
CREATE POLICY internal_access ON notifications TO :UPSHIFT_INTERNAL_ROLE USING (true) WITH CHECK (true);

-- Least privilege, by who does what:
-- - the application role (tenant-bound): endpoint CRUD (deleting an endpoint deletes its
--   delivery log), outbox entries of its terminal transitions, attempts, defers and
--   redeliveries of its own entries, its inbox (in-app delivery, mark read);
-- - the internal role (cross-tenant): outbox entries of lease recovery (which reads the
--   org's endpoints), outbox claims across orgs (with the endpoint's url and secret), the
--   invariant metric's count.
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoints TO :UPSHIFT_APP_ROLE;
GRANT SELECT ON webhook_endpoints TO :UPSHIFT_INTERNAL_ROLE;
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_outbox TO :UPSHIFT_APP_ROLE;
GRANT SELECT, INSERT, UPDATE ON notification_outbox TO :UPSHIFT_INTERNAL_ROLE;
GRANT SELECT, INSERT, UPDATE ON notifications TO :UPSHIFT_APP_ROLE;

-- Retention (cross-tenant, internal role only): deletes events and results of terminal jobs in
-- bounded batches and records each deleted result id, so its permalink answers 410. The
-- application role still cannot delete either.
GRANT DELETE ON job_events, job_results TO :UPSHIFT_INTERNAL_ROLE;
GRANT INSERT ON removed_results TO :UPSHIFT_INTERNAL_ROLE;
