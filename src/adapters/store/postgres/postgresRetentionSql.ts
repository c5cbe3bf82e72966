import { inboxRowsOf } from './postgresDeliverySql.js';

/**
 * Statements of the RetentionStore half (merged into buildSql). Retention is cross-tenant and
 * runs as the internal role, the only role with DELETE on job_events/job_results (granted by
 * 0002_notifications.sql) and on notifications/notification_outbox (0010). Counting and deleting by job use the UNIQUE (job_id, event_seq) /
 * (job_id, seq) indexes, the outbox's UNIQUE (job_id, type, channel) and the inbox's primary key
 * (a job's three ids, inboxRowsOf); the org is checked on the job row and on every delete, so a
 * wrong-org key touches nothing.
 */
export function buildRetentionSql(s: string) {
  return {
    // A page of job keys in primary-key order; terminal ones with their row counts.
    retentionScan: `SELECT j.org_id, j.job_id, j.status, j.finished_at,
        CASE WHEN j.status IN ('completed', 'failed', 'canceled')
          THEN (SELECT COUNT(*) FROM ${s}.job_results r WHERE r.job_id = j.job_id AND r.org_id = j.org_id)::int END AS results,
        CASE WHEN j.status IN ('completed', 'failed', 'canceled')
          THEN (SELECT COUNT(*) FROM ${s}.job_events e WHERE e.job_id = j.job_id AND e.org_id = j.org_id)::int END AS events,
        CASE WHEN j.status IN ('completed', 'failed', 'canceled')
          THEN ((SELECT COUNT(*) FROM ${inboxRowsOf(s, 'j.job_id', 'job_id, org_id', 'n')} WHERE n.job_id = j.job_id AND n.org_id = j.org_id)
              + (SELECT COUNT(*) FROM ${s}.notification_outbox o WHERE o.job_id = j.job_id AND o.org_id = j.org_id AND o.status <> 'pending'))::int
          END AS notifications
      FROM (SELECT org_id, job_id, status, finished_at FROM ${s}.jobs
            WHERE (org_id, job_id) > ($1::text, $2::text) ORDER BY org_id, job_id LIMIT $3) j
      ORDER BY j.org_id, j.job_id`,
    // Eligibility re-checked in the delete transaction: terminal jobs with a finished_at, with
    // their row counts capped at $3 (the budget + 1: enough to plan, never a long count).
    retentionPlan: `SELECT k.ord::int AS ord, j.finished_at,
        (SELECT COUNT(*) FROM (SELECT 1 FROM ${s}.job_results r WHERE r.job_id = j.job_id AND r.org_id = j.org_id LIMIT $3) x)::int AS results,
        (SELECT COUNT(*) FROM (SELECT 1 FROM ${s}.job_events e WHERE e.job_id = j.job_id AND e.org_id = j.org_id LIMIT $3) x)::int AS events,
        (SELECT COUNT(*) FROM (SELECT 1 FROM ${inboxRowsOf(s, 'j.job_id', 'job_id, org_id', 'n')} WHERE n.job_id = j.job_id AND n.org_id = j.org_id LIMIT $3) x)::int AS inbox,
        (SELECT COUNT(*) FROM (SELECT 1 FROM ${s}.notification_outbox o
            WHERE o.job_id = j.job_id AND o.org_id = j.org_id AND o.status <> 'pending' LIMIT $3) x)::int AS outbox
      FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(org_id, job_id, ord)
      JOIN ${s}.jobs j ON j.org_id = k.org_id AND j.job_id = k.job_id
      WHERE j.status IN ('completed', 'failed', 'canceled') AND j.finished_at IS NOT NULL`,
    // The planned number of oldest rows per job (by seq): results recorded as removed (410)
    // and deleted, events deleted, inbox entries and settled outbox entries deleted (never a
    // pending one) — one statement, one transaction with the plan.
    retentionPurge: `WITH p AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $6::int[], $7::int[]) AS p(org_id, job_id, n_res, n_ev, n_in, n_out)),
      rr AS (SELECT r.result_id, r.job_id, r.org_id FROM p CROSS JOIN LATERAL (
          SELECT result_id, job_id, org_id FROM ${s}.job_results WHERE job_id = p.job_id AND org_id = p.org_id ORDER BY seq LIMIT p.n_res) r),
      rem AS (INSERT INTO ${s}.removed_results (result_id, job_id, org_id, removed_at)
          SELECT result_id, job_id, org_id, $5 FROM rr ON CONFLICT DO NOTHING),
      dr AS (DELETE FROM ${s}.job_results WHERE result_id IN (SELECT result_id FROM rr) RETURNING 1),
      ee AS (SELECT e.position FROM p CROSS JOIN LATERAL (
          SELECT position FROM ${s}.job_events WHERE job_id = p.job_id AND org_id = p.org_id ORDER BY event_seq LIMIT p.n_ev) e),
      de AS (DELETE FROM ${s}.job_events WHERE position IN (SELECT position FROM ee) RETURNING position),
      -- The events-deleted watermark (docs/projections.md "Retention"), in the deletes' transaction.
      wm AS (INSERT INTO ${s}.store_watermarks AS w (name, position)
          SELECT 'events_deleted_through', MAX(position) FROM de HAVING MAX(position) IS NOT NULL
          ON CONFLICT (name) DO UPDATE SET position = GREATEST(w.position, EXCLUDED.position)),
      nn AS (SELECT n.notification_id FROM p CROSS JOIN LATERAL (
          SELECT ib.notification_id FROM ${inboxRowsOf(s, 'p.job_id', 'notification_id, job_id, org_id', 'ib')}
          WHERE ib.job_id = p.job_id AND ib.org_id = p.org_id LIMIT p.n_in) n),
      dn AS (DELETE FROM ${s}.notifications WHERE notification_id IN (SELECT notification_id FROM nn) RETURNING 1),
      oo AS (SELECT o.entry_id FROM p CROSS JOIN LATERAL (
          SELECT entry_id FROM ${s}.notification_outbox WHERE job_id = p.job_id AND org_id = p.org_id AND status <> 'pending' LIMIT p.n_out) o),
      dout AS (DELETE FROM ${s}.notification_outbox WHERE entry_id IN (SELECT entry_id FROM oo) AND status <> 'pending' RETURNING 1)
      SELECT (SELECT COUNT(*) FROM dr)::int AS results, (SELECT COUNT(*) FROM de)::int AS events,
        ((SELECT COUNT(*) FROM dn) + (SELECT COUNT(*) FROM dout))::int AS notifications`,
  };
}
