import type pg from 'pg';
import type { Violation } from './embedded.js';

/**
 * The chaos invariants of docs/chaos.md, checked from a PostgreSQL store with plain SQL (the
 * same checks bench/chaos/embedded.ts runs on the SQLite file). `c` reads as a superuser (row
 * level security does not hide other tenants' rows) with search_path set to the store's schema.
 * Each query returns one row `v` per violation.
 */
const TERMINAL_SQL = `('completed','failed','canceled')`;

export const PG_CHECKS: readonly (readonly [string, string])[] = [
  ['every job terminal', `SELECT job_id || ' ' || status AS v FROM jobs WHERE status NOT IN ${TERMINAL_SQL}`],
  [
    'event_seq gap-free 1..n (= last_event_seq)',
    `SELECT j.job_id || ' count=' || coalesce(e.c, 0) || ' min=' || coalesce(e.mn, 0) || ' max=' || coalesce(e.mx, 0) || ' last=' || j.last_event_seq AS v
       FROM jobs j LEFT JOIN (SELECT job_id, count(*) AS c, min(event_seq) AS mn, max(event_seq) AS mx FROM job_events GROUP BY job_id) e
         ON e.job_id = j.job_id
      WHERE e.c IS NULL OR e.mn <> 1 OR e.mx <> e.c OR e.mx <> j.last_event_seq`,
  ],
  [
    'at most one terminal event per job',
    `SELECT job_id || ' ' || count(*) AS v FROM job_events WHERE type IN ('job.completed','job.failed','job.canceled')
      GROUP BY job_id HAVING count(*) > 1`,
  ],
  [
    'terminal event matches job status and is the last event',
    `SELECT j.job_id || ' status=' || j.status || ' terminal=' || coalesce(t.type, '-') AS v
       FROM jobs j LEFT JOIN job_events t
         ON t.job_id = j.job_id AND t.type IN ('job.completed','job.failed','job.canceled')
      WHERE j.status IN ${TERMINAL_SQL}
        AND (t.type IS NULL OR t.type <> 'job.' || j.status OR t.event_seq <> j.last_event_seq)`,
  ],
  [
    'partial chunk keys unique per job',
    `SELECT job_id || ' ' || chunk_key || ' x' || count(*) AS v FROM job_results WHERE kind = 'partial'
      GROUP BY job_id, chunk_key HAVING count(*) > 1`,
  ],
  [
    'partial results = job.partial events (= partial_count)',
    `SELECT j.job_id || ' results=' || coalesce(r.n, 0) || ' events=' || coalesce(e.n, 0) || ' partial_count=' || j.partial_count AS v
       FROM jobs j
       LEFT JOIN (SELECT job_id, count(*) AS n FROM job_results WHERE kind = 'partial' GROUP BY job_id) r ON r.job_id = j.job_id
       LEFT JOIN (SELECT job_id, count(*) AS n FROM job_events WHERE type = 'job.partial' GROUP BY job_id) e ON e.job_id = j.job_id
      WHERE coalesce(r.n, 0) <> coalesce(e.n, 0) OR coalesce(r.n, 0) <> j.partial_count`,
  ],
  [
    'completed: every step-1..K partial and one final result (= result_id)',
    `SELECT j.job_id || ' steps=' || (j.input->>'steps') || ' partials=' || coalesce(p.n, 0) || ' finals=' || coalesce(f.n, 0) AS v
       FROM jobs j
       LEFT JOIN (SELECT job_id, count(*) AS n FROM job_results WHERE kind = 'partial' GROUP BY job_id) p ON p.job_id = j.job_id
       LEFT JOIN (SELECT job_id, count(*) AS n, max(result_id) AS rid FROM job_results WHERE kind = 'final' GROUP BY job_id) f ON f.job_id = j.job_id
      WHERE j.status = 'completed'
        AND (coalesce(p.n, 0) <> (j.input->>'steps')::int OR coalesce(f.n, 0) <> 1 OR f.rid IS DISTINCT FROM j.result_id
             OR EXISTS (SELECT 1 FROM job_results x WHERE x.job_id = j.job_id AND x.kind = 'partial'
                         AND (x.chunk_key !~ '^step-[0-9]+$' OR substr(x.chunk_key, 6)::int NOT BETWEEN 1 AND (j.input->>'steps')::int)))`,
  ],
  [
    'not completed: no final result',
    `SELECT j.job_id || ' ' || j.status AS v FROM jobs j WHERE j.status <> 'completed'
        AND EXISTS (SELECT 1 FROM job_results r WHERE r.job_id = j.job_id AND r.kind = 'final')`,
  ],
  [
    'exactly one in-app notification per terminal job (type matches)',
    `SELECT j.job_id || ' ' || j.status || ' notifications=' || count(n.notification_id) AS v
       FROM jobs j LEFT JOIN notifications n ON n.job_id = j.job_id AND n.channel = 'in_app'
      WHERE j.status IN ${TERMINAL_SQL}
      GROUP BY j.job_id, j.status
     HAVING count(n.notification_id) <> 1 OR max(n.type) <> 'async.job.' || j.status`,
  ],
  ['no notification for a non-terminal job', `SELECT n.job_id AS v FROM notifications n JOIN jobs j ON j.job_id = n.job_id WHERE j.status NOT IN ${TERMINAL_SQL}`],
  [
    'canceled before start: no result row',
    `SELECT j.job_id AS v FROM jobs j WHERE j.status = 'canceled'
        AND NOT EXISTS (SELECT 1 FROM job_events e WHERE e.job_id = j.job_id AND e.type = 'job.started')
        AND EXISTS (SELECT 1 FROM job_results r WHERE r.job_id = j.job_id)`,
  ],
];

export async function checkPgInvariants(c: pg.ClientBase): Promise<Violation[]> {
  const out: Violation[] = [];
  for (const [name, sql] of PG_CHECKS) {
    const { rows } = await c.query<{ v: string }>(sql);
    out.push({ name, count: rows.length, examples: rows.slice(0, 5).map((r) => r.v) });
  }
  return out;
}

/** Jobs that are terminal but still lack their in-app notification (the dispatcher is draining). */
export const MISSING_IN_APP_SQL = `SELECT count(*)::int AS n FROM jobs j WHERE j.status IN ${TERMINAL_SQL}
  AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.job_id = j.job_id AND n.channel = 'in_app')`;
