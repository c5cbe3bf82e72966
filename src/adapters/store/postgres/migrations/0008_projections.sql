-- 0008_projections: event-sourced read models (docs/projections.md). Append-only once merged.

-- One row per projection: the position of the last event it applied, a version every write
-- bumps (the compare-and-set of batch commits and rebuilds), and the runner lease that keeps
-- one runner active per projection. No tenant data: tenants may read it (their stats' lag).
CREATE TABLE projection_offsets (
  projection       text   NOT NULL PRIMARY KEY,
  position         bigint NOT NULL DEFAULT 0,
  version          bigint NOT NULL DEFAULT 0,
  lease_owner      text,
  lease_expires_at bigint NOT NULL DEFAULT 0,
  updated_at       bigint
);

-- One state per (projection, org): the fold's JSON, written in the transaction that moves the
-- projection's offset.
CREATE TABLE projection_states (
  projection text   NOT NULL,
  org_id     text   NOT NULL,
  state      jsonb  NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (projection, org_id)
);

-- Tenant policy in the style of 0006 (never an index condition); the runner and rebuilds work
-- across tenants as the internal role.
ALTER TABLE projection_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE projection_states FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON projection_states
  USING ((org_id || '') = current_setting('upshift.org_id', true))
  WITH CHECK ((org_id || '') = current_setting('upshift.org_id', true));
CREATE POLICY internal_access ON projection_states TO :UPSHIFT_INTERNAL_ROLE USING (true) WITH CHECK (true);

GRANT SELECT ON projection_offsets, projection_states TO :UPSHIFT_APP_ROLE;
GRANT SELECT, INSERT, UPDATE ON projection_offsets TO :UPSHIFT_INTERNAL_ROLE;
GRANT SELECT, INSERT, UPDATE, DELETE ON projection_states TO :UPSHIFT_INTERNAL_ROLE;
