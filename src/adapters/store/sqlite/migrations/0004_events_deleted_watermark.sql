-- 0004_events_deleted_watermark: the highest event position retention ever deleted
-- (docs/projections.md "Retention"). A projection whose checkpoint lies below it missed events
-- it can no longer read: its runner rebuilds instead of applying what is left, and a batch read
-- from below it cannot commit. Append-only once merged.
CREATE TABLE store_watermarks (
  name     TEXT    NOT NULL PRIMARY KEY,
  position INTEGER NOT NULL
);
