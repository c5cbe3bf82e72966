-- 0001_init: jobs, their append-only event log, results, retention tombstones, API keys.
-- Append-only once merged: change the schema with a new numbered file, never by editing this one.
-- JSON columns (input, error, payload) are stored as text. Timestamps are epoch milliseconds.

-- Keyed by (org_id, job_id): every access is tenant-bound, and the key doubles as the tenant
-- listing index (newest first: job ids sort by creation time).
CREATE TABLE jobs (
  job_id              TEXT    NOT NULL,
  org_id              TEXT    NOT NULL,
  analyzer            TEXT    NOT NULL,
  input               TEXT    NOT NULL,
  status              TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'canceled')),
  attempt             INTEGER NOT NULL CHECK (attempt >= 1),
  max_attempts        INTEGER NOT NULL CHECK (max_attempts >= 1),
  priority            INTEGER NOT NULL DEFAULT 0,
  idempotency_key     TEXT,
  request_hash        TEXT,
  progress_fraction   REAL    NOT NULL DEFAULT 0,
  progress_message    TEXT,
  created_at          INTEGER NOT NULL,
  run_at              INTEGER NOT NULL,
  started_at          INTEGER,
  finished_at         INTEGER,
  cancel_requested_at INTEGER,
  result_id           TEXT,
  partial_count       INTEGER NOT NULL DEFAULT 0,
  error               TEXT,
  trace_context       TEXT,
  lease_token         TEXT,
  lease_expires_at    INTEGER,
  worker_id           TEXT,
  -- eventSeq of the job's newest event; the next event gets last_event_seq + 1 (gap-free).
  last_event_seq      INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (org_id, job_id)
);

-- Idempotency: one job per (org, key). NULL keys are not indexed.
CREATE UNIQUE INDEX jobs_idempotency ON jobs (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Claim order within an org, and the loose index scan of readyOrgs. Partial: only queued rows,
-- so the index stays as small as the backlog and terminal history costs nothing here.
CREATE INDEX jobs_claim ON jobs (org_id, priority DESC, run_at, job_id) WHERE status = 'queued';

-- Running jobs: per-org counts and listing, lease recovery, stale-cancel sweep. Only as many
-- rows as jobs running, so scanning it whole is cheap.
CREATE INDEX jobs_running ON jobs (org_id, lease_expires_at) WHERE status = 'running';

-- Listing failed/canceled jobs without scanning a tenant's history. Partial, so the happy path
-- (queued -> running -> completed) never touches it. Queued and running listings use the two
-- partial indexes above; completed (the bulk) scans the primary key.
CREATE INDEX jobs_org_unsuccessful ON jobs (org_id, status, job_id) WHERE status IN ('failed', 'canceled');

-- AUTOINCREMENT: positions are never reused, even after retention deletes the newest events,
-- so projection checkpoints stay valid. One writer at a time makes position = commit order.
CREATE TABLE job_events (
  position    INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id      TEXT    NOT NULL,
  event_seq   INTEGER NOT NULL CHECK (event_seq >= 1),
  org_id      TEXT    NOT NULL,
  type        TEXT    NOT NULL,
  status      TEXT    NOT NULL,
  payload     TEXT    NOT NULL,
  occurred_at INTEGER NOT NULL,
  UNIQUE (job_id, event_seq),
  FOREIGN KEY (org_id, job_id) REFERENCES jobs (org_id, job_id)
);

CREATE TABLE job_results (
  result_id  TEXT    NOT NULL PRIMARY KEY,
  job_id     TEXT    NOT NULL,
  org_id     TEXT    NOT NULL,
  kind       TEXT    NOT NULL CHECK (kind IN ('partial', 'final')),
  chunk_key  TEXT,
  seq        INTEGER NOT NULL CHECK (seq >= 1),
  payload    TEXT    NOT NULL,
  created_at INTEGER NOT NULL,
  CHECK ((kind = 'partial') = (chunk_key IS NOT NULL)),
  UNIQUE (job_id, seq),
  FOREIGN KEY (org_id, job_id) REFERENCES jobs (org_id, job_id)
);

-- Partial idempotency: a replayed worker cannot create a second snapshot of the same chunk.
CREATE UNIQUE INDEX job_results_chunk ON job_results (job_id, chunk_key) WHERE chunk_key IS NOT NULL;

-- Result ids retention deleted, so their permalinks answer 410 instead of 404.
CREATE TABLE removed_results (
  result_id  TEXT    NOT NULL PRIMARY KEY,
  job_id     TEXT    NOT NULL,
  org_id     TEXT    NOT NULL,
  removed_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
  key_id     TEXT    NOT NULL PRIMARY KEY,
  org_id     TEXT    NOT NULL,
  hash       TEXT    NOT NULL UNIQUE,
  label      TEXT,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);

CREATE INDEX api_keys_org ON api_keys (org_id, created_at);
