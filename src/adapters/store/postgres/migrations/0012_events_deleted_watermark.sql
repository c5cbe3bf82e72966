-- 0012_events_deleted_watermark: the highest event position retention ever deleted
-- (docs/projections.md "Retention"). A projection whose checkpoint lies below it missed events
-- it can no longer read: its runner rebuilds instead of applying what is left, and a batch read
-- from below it cannot commit. No tenant data. Append-only once merged.
CREATE TABLE store_watermarks (
  name     text   NOT NULL PRIMARY KEY,
  position bigint NOT NULL
);

-- Retention and the projection runner work as the internal role.
GRANT SELECT, INSERT, UPDATE ON store_watermarks TO :UPSHIFT_INTERNAL_ROLE;
