-- 0003_projections: event-sourced read models (docs/projections.md). Append-only once merged.

-- One row per projection: the position of the last event it applied, a version every write
-- bumps (the compare-and-set of batch commits and rebuilds), and the runner lease that keeps
-- one runner active per projection.
CREATE TABLE projection_offsets (
  projection       TEXT    NOT NULL PRIMARY KEY,
  position         INTEGER NOT NULL DEFAULT 0,
  version          INTEGER NOT NULL DEFAULT 0,
  lease_owner      TEXT,
  lease_expires_at INTEGER NOT NULL DEFAULT 0,
  updated_at       INTEGER
);

-- One state per (projection, org): the fold's JSON, written in the transaction that moves the
-- projection's offset.
CREATE TABLE projection_states (
  projection TEXT    NOT NULL,
  org_id     TEXT    NOT NULL,
  state      TEXT    NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (projection, org_id)
);
