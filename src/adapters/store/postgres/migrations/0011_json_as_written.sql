-- 0011_json_as_written: a job's input, its result payloads and its event payloads keep their
-- JSON text as written (`json`, not `jsonb`). jsonb stores object keys sorted by length, then
-- bytes, so `{"name":…,"id":…}` came back as `{"id":…,"name":…}` on PostgreSQL while the
-- embedded store answered with the caller's order: the same job read differently on the two
-- stores, and before and after `upshift copy-store`. Nothing queries inside these documents
-- (a canceled event's `reason` is read with ->>, which json has too), so jsonb's binary form
-- bought nothing here; json also skips the conversion on every write and read.
-- Append-only once merged.
--
-- Each ALTER rewrites its table under an exclusive lock: on a large store run it in a
-- maintenance window (docs/postgres.md "Migrations"). Existing rows keep jsonb's key order (the
-- conversion cannot recover the original); rows written from now on keep theirs.
ALTER TABLE jobs ALTER COLUMN input TYPE json USING input::json;
ALTER TABLE job_results ALTER COLUMN payload TYPE json USING payload::json;
ALTER TABLE job_events ALTER COLUMN payload TYPE json USING payload::json;
