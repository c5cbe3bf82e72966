-- 0006_rls_not_an_access_path: the tenant policies keep their meaning but stop offering the
-- planner an index condition. Append-only once merged.
--
-- `org_id = current_setting('upshift.org_id', true)` is a stable expression on the first column
-- of every org-leading index, so the planner could use the policy itself as an access path:
-- "every row of the org" through the primary key. Without statistics (a fresh schema,
-- autovacuum behind or off) it estimates that scan at one row and prefers it to probing the
-- statement's own keys: the claim's UPDATE walked every job of the org (done ones included)
-- once per claim, under the commit-order lock — 10 ms per claim at 3,000 jobs, growing with
-- the table — and the completion did the same (0005 fixed one such plan inside the dispatch
-- trigger). Every tenant statement names its org (and usually its keys) itself, so the policy
-- is only the second guard: spelled `(org_id || '')` it still filters every row (same result:
-- a NULL org matches nothing either way) but is never an index condition.
ALTER POLICY tenant_isolation ON jobs
  USING ((org_id || '') = current_setting('upshift.org_id', true))
  WITH CHECK ((org_id || '') = current_setting('upshift.org_id', true));
ALTER POLICY tenant_isolation ON job_events
  USING ((org_id || '') = current_setting('upshift.org_id', true))
  WITH CHECK ((org_id || '') = current_setting('upshift.org_id', true));
ALTER POLICY tenant_isolation ON job_results
  USING ((org_id || '') = current_setting('upshift.org_id', true))
  WITH CHECK ((org_id || '') = current_setting('upshift.org_id', true));
ALTER POLICY tenant_isolation ON removed_results
  USING ((org_id || '') = current_setting('upshift.org_id', true))
  WITH CHECK ((org_id || '') = current_setting('upshift.org_id', true));
ALTER POLICY tenant_isolation ON api_keys
  USING ((org_id || '') = current_setting('upshift.org_id', true))
  WITH CHECK ((org_id || '') = current_setting('upshift.org_id', true));
ALTER POLICY tenant_isolation ON webhook_endpoints
  USING ((org_id || '') = current_setting('upshift.org_id', true))
  WITH CHECK ((org_id || '') = current_setting('upshift.org_id', true));
ALTER POLICY tenant_isolation ON notification_outbox
  USING ((org_id || '') = current_setting('upshift.org_id', true))
  WITH CHECK ((org_id || '') = current_setting('upshift.org_id', true));
ALTER POLICY tenant_isolation ON notifications
  USING ((org_id || '') = current_setting('upshift.org_id', true))
  WITH CHECK ((org_id || '') = current_setting('upshift.org_id', true));
ALTER POLICY tenant_isolation ON dispatch_outbox
  USING ((org_id || '') = current_setting('upshift.org_id', true))
  WITH CHECK ((org_id || '') = current_setting('upshift.org_id', true));
