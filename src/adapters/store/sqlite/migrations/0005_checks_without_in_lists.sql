-- upshift:schema-edit jobs notification_outbox
-- 0005_checks_without_in_lists: the status CHECKs of jobs and notification_outbox, spelled as
-- OR-ed comparisons instead of IN lists. Same accepted values, so every stored row still
-- satisfies them. Append-only once merged.
--
-- Why: SQLite evaluates `x IN (<more than two constants>)` through an ephemeral table, and a
-- CHECK builds it anew on every row it checks: an in-memory b-tree with its own pager and
-- page cache, filled with the list and torn down again, on every INSERT and every status
-- UPDATE of a job — three per job on the hot path (submit, claim, completion). That was
-- ~9 % of the embedded store's CPU per job (docs/benchmarks.md, session 12). Comparisons
-- cost nothing of the kind.
--
-- How: SQLite's documented procedure for changing a CHECK constraint without rebuilding the
-- table (https://sqlite.org/lang_altertable.html#otheralter): the migrator runs a file whose
-- first line is `-- upshift:schema-edit <names>` with writes to sqlite_schema allowed, raises
-- schema_version and makes SQLite re-read the schema before the migration's transaction
-- commits. It fails the migration — rolled back, nothing changed — unless exactly the named
-- definitions changed and all of them still parse (sqliteMigrator.ts, editSchema).
UPDATE sqlite_schema
  SET sql = replace(sql,
    'CHECK (status IN (''queued'', ''running'', ''completed'', ''failed'', ''canceled''))',
    'CHECK (status = ''queued'' OR status = ''running'' OR status = ''completed'' OR status = ''failed'' OR status = ''canceled'')')
  WHERE type = 'table' AND name = 'jobs';

UPDATE sqlite_schema
  SET sql = replace(sql,
    'CHECK (status IN (''pending'', ''delivered'', ''failed''))',
    'CHECK (status = ''pending'' OR status = ''delivered'' OR status = ''failed'')')
  WHERE type = 'table' AND name = 'notification_outbox';
