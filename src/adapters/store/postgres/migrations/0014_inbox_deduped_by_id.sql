-- 0014_inbox_deduped_by_id: the in-app inbox loses its second unique index. A notification's id
-- spells its dedupe key — `ntf_<job id without its job_ prefix>_<c|f|x>` for (job, type), and
-- the channel is always in_app (core/notifications.ts notificationIdOf) — so the primary key
-- dedupes exactly what UNIQUE (job_id, type, channel) did. The CHECK below holds every row to
-- that rule (rows copied from an embedded store too). Every completed job inserted one inbox
-- row: one B-tree insert and its WAL less per job (docs/benchmarks.md, session 11). Lookups by
-- job (a job's notifications, retention) probe the job's three ids in the primary key instead.
-- Append-only once merged.
ALTER TABLE notifications ADD CONSTRAINT notifications_id_spells_key CHECK (
  channel = 'in_app'
  AND notification_id = 'ntf_' || substr(job_id, 5) || '_' || CASE type
    WHEN 'async.job.completed' THEN 'c' WHEN 'async.job.failed' THEN 'f' WHEN 'async.job.canceled' THEN 'x' END
);
ALTER TABLE notifications DROP CONSTRAINT notifications_job_id_type_channel_key;
