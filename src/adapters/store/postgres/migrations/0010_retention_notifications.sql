-- 0010_retention_notifications: retention may delete a terminal job's in-app notifications and
-- its settled notification outbox entries (delivered or failed: the webhook delivery log) once
-- the job finished longer ago than the notifications TTL. Append-only once merged.
--
-- Like events and results, only the internal role (cross-tenant retention) may delete them;
-- the application role still cannot delete inbox entries. The internal role already reads the
-- outbox (claims, the invariant metric); it now also reads the inbox to count and plan.
GRANT SELECT, DELETE ON notifications TO :UPSHIFT_INTERNAL_ROLE;
GRANT DELETE ON notification_outbox TO :UPSHIFT_INTERNAL_ROLE;
