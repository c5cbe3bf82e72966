-- 0005_dispatch_capture_by_key: the BullMQ dispatch outbox trigger (0003) looks up each queued
-- job by primary key. Append-only once merged.
--
-- 0003's capture joined the statement's new events to `jobs`. The function's cached plan
-- expects one event per statement, and the row-level-security qual (org_id = the session's
-- org) offers an index condition on the primary key's first column: the plan scanned every
-- job of the org once per event, so submitting a backlog became quadratic (a batch of 1,000
-- submits took 0.7 s at 1,000 queued and 5.7 s at 8,000). Below, each event is one lookup by
-- the full primary key (a LATERAL subquery with LIMIT 1 is planned per event, not joined),
-- and the status guard is spelled so it matches no partial index. Same rows, same
-- transaction; the trigger and its enabled/disabled state are kept (CREATE OR REPLACE).
CREATE OR REPLACE FUNCTION dispatch_outbox_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO :UPSHIFT_SCHEMA.dispatch_outbox (org_id, job_id, attempt, analyzer, run_at, created_at)
  SELECT j.org_id, j.job_id, j.attempt, j.analyzer, j.run_at, e.occurred_at
  FROM new_events e
  CROSS JOIN LATERAL (
    SELECT x.org_id, x.job_id, x.attempt, x.analyzer, x.run_at FROM :UPSHIFT_SCHEMA.jobs x
    WHERE x.org_id = e.org_id AND x.job_id = e.job_id AND (x.status || '') = 'queued'
    LIMIT 1) j
  WHERE e.type IN ('job.queued', 'job.retrying');
  RETURN NULL;
END
$$;
