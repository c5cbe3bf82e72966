-- 0013_drop_lease_expiry_index: jobs_lease_expiry (lease_expires_at) WHERE status = 'running'
-- duplicated jobs_running (org_id, lease_expires_at) WHERE status = 'running' for the one
-- statement that used it, lease recovery (expiredLeases: running rows whose lease ran out, oldest
-- first). That statement now reads jobs_running whole — it holds only running jobs, at most the
-- fleet's worker slots — and sorts what expired. Every claim paid for the second index: one more
-- B-tree insert and its WAL per job (docs/benchmarks.md, session 10). Append-only once merged.
DROP INDEX jobs_lease_expiry;
