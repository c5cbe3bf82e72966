-- 0003_dispatch_outbox: the transactional outbox of BullMQ dispatch (docs/scale-mode.md).
-- Append-only once merged.
--
-- Every time a job becomes queued — submit, retry with backoff, lease-expiry recovery — the
-- store appends a `job.queued` or `job.retrying` event in the same transaction. A statement
-- trigger on job_events turns those events into dispatch_outbox rows in that same transaction,
-- so "the job is queued" and "the job will be dispatched" commit together or not at all. The
-- relay (src/adapters/dispatch/bullmq/) moves the rows to BullMQ and deletes them; while Redis
-- is down they simply wait here.
--
-- Why a trigger and not a write in each store op: every requeue path already funnels through
-- the event log (one place), and a statement-level trigger with a transition table costs one
-- INSERT … SELECT per event-appending statement. The trigger is created DISABLED: deployments
-- that dispatch straight from the store (mode `store`) pay nothing; the BullMQ relay enables
-- it at start (`ALTER TABLE … ENABLE TRIGGER`, owner only) and a `store`-mode worker disables
-- it again.

CREATE TABLE dispatch_outbox (
  id         bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id     text    NOT NULL,
  job_id     text    NOT NULL,
  -- The attempt the job was queued for: with the job id it is the BullMQ job id, so a replayed
  -- row is de-duplicated by BullMQ while a later requeue of the same job is not.
  attempt    integer NOT NULL,
  analyzer   text    NOT NULL,
  run_at     bigint  NOT NULL,
  created_at bigint  NOT NULL
);

ALTER TABLE dispatch_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE dispatch_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dispatch_outbox
  USING (org_id = current_setting('upshift.org_id', true))
  WITH CHECK (org_id = current_setting('upshift.org_id', true));
CREATE POLICY internal_access ON dispatch_outbox TO :UPSHIFT_INTERNAL_ROLE USING (true) WITH CHECK (true);

-- Tenant transactions only insert (through the trigger); the relay (internal) reads and deletes.
GRANT INSERT ON dispatch_outbox TO :UPSHIFT_APP_ROLE;
-- UPDATE only because the relay takes rows with SELECT … FOR UPDATE SKIP LOCKED.
GRANT SELECT, INSERT, UPDATE, DELETE ON dispatch_outbox TO :UPSHIFT_INTERNAL_ROLE;

-- Runs as the role of the writing transaction (tenant or internal), so RLS checks the rows it
-- inserts like any other write. Only jobs still queued when the statement ends are captured
-- (a bulk copy of old, finished jobs' history dispatches nothing).
CREATE FUNCTION dispatch_outbox_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO :UPSHIFT_SCHEMA.dispatch_outbox (org_id, job_id, attempt, analyzer, run_at, created_at)
  SELECT j.org_id, j.job_id, j.attempt, j.analyzer, j.run_at, e.occurred_at
  FROM new_events e
  JOIN :UPSHIFT_SCHEMA.jobs j ON j.org_id = e.org_id AND j.job_id = e.job_id
  WHERE e.type IN ('job.queued', 'job.retrying') AND j.status = 'queued';
  RETURN NULL;
END
$$;

CREATE TRIGGER job_events_dispatch_outbox
  AFTER INSERT ON job_events
  REFERENCING NEW TABLE AS new_events
  FOR EACH STATEMENT EXECUTE FUNCTION dispatch_outbox_capture();
ALTER TABLE job_events DISABLE TRIGGER job_events_dispatch_outbox;
