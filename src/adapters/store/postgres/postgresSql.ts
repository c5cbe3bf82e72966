import { createHash } from 'node:crypto';
import { ident } from './postgresConnection.js';
import { buildDeliverySql, notificationInsertFrom, outboxInsertFrom } from './postgresDeliverySql.js';
import { buildRetentionSql } from './postgresRetentionSql.js';
import { jobCols } from './postgresRows.js';

/**
 * Every statement the PostgreSQL store runs, built once per schema. Values are always bound;
 * arrays (unnest) carry multi-row writes. Each statement is a named prepared statement per
 * connection (`names`), so the hot path skips parse and plan. Statements on
 * `status = 'queued' | 'running'` spell the literal so the planner can use the partial indexes.
 */
/** The commit-order position lock with the batch's planner settings (see positionLock below). */
const POSITION_LOCK = `SELECT pg_advisory_xact_lock(hashtextextended($1, 0)), set_config('enable_seqscan', 'off', true), set_config('enable_mergejoin', 'off', true)`;

export function buildSql(schema: string) {
  const s = ident(schema);
  const J = jobCols();
  const JJ = jobCols('j');
  const LIST = `job_id < $2
      AND ($3::text IS NULL OR analyzer = $3)
      AND ($4::bigint IS NULL OR created_at >= $4)
      AND ($5::bigint IS NULL OR created_at < $5)
    ORDER BY job_id DESC LIMIT $6`;
  // What both claims do with the rows in their CTE `picked`: to running with a fresh lease
  // (token suffixed per job), a job.started event each under the position lock, one NOTIFY (none
  // when nothing moved). Defines the CTEs u (the claimed rows), lock, ev (their events), note;
  // the arguments are the statement's parameter numbers.
  const toRunning = (p: { now: string; token: string; expires: string; worker: string; lockKey: string; channel: string }): string => `u AS (
        UPDATE ${s}.jobs j SET status = 'running', lease_token = ${p.token} || '.' || substr(j.job_id, 5), lease_expires_at = ${p.expires},
          worker_id = ${p.worker}, started_at = ${p.now}, last_event_seq = j.last_event_seq + 1
        FROM picked WHERE j.org_id = picked.org_id AND j.job_id = picked.job_id
        RETURNING ${JJ}),
      lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(hashtextextended(${p.lockKey}, 0)) AS held),
      ev AS (
        INSERT INTO ${s}.job_events (job_id, event_seq, org_id, type, status, payload, occurred_at)
        SELECT u.job_id, u.last_event_seq, u.org_id, 'job.started', 'running',
          json_build_object('attempt', u.attempt, 'worker_id', ${p.worker}::text), ${p.now}::bigint
        FROM u CROSS JOIN lock
        RETURNING job_id, position),
      note AS (SELECT pg_notify(${p.channel}, MAX(position)::text) AS sent FROM ev HAVING COUNT(*) > 0)`;
  const text = {
    // One round trip: role and org are both GUCs, set for this transaction only.
    setTenant: `SELECT set_config('role', $1, true), set_config('upshift.org_id', $2, true)`,
    // The commit-order position lock, taken first by every batch that touches jobs (lock order,
    // see PgGroupCommit); the statements that append events take it again (a no-op then).
    // Same round trip, transaction-local: no sequential scans or merge joins for the batch's
    // statements. Each of them touches a known set of jobs (by key, or through jobs_claim), and
    // its prepared plan is cached per connection from the first executions — on a fresh schema
    // while the table is tiny, when a scan of the whole table looks cheapest. Unchecked, that
    // plan stays while the table grows: the claim's UPDATE scanned every job once per claim
    // (10 ms at 3,000 jobs, under this lock). With both off, key probes are the only plans left
    // (see docs/postgres.md, "Plans that do not depend on statistics").
    positionLock: POSITION_LOCK,
    // The position lock and the first tenant switch of a batch in one statement (one
    // statement less per job-touching transaction; at a few hundred jobs/s nearly every
    // transaction is one tenant's). The lock comes first: SELECT evaluates left to right.
    positionLockAsTenant: `${POSITION_LOCK}, set_config('role', $2, true), set_config('upshift.org_id', $3, true)`,
    setInternal: `SELECT set_config('role', $1, true), set_config('upshift.org_id', '', true)`,
    // readyOrgs walks jobs_claim in org order (one descent per org). Before the table has
    // statistics (a fresh schema, or autovacuum behind) the planner estimates a handful of
    // queued rows and prefers a bitmap scan of every queued row plus a sort: ~7 ms at 10,000
    // queued instead of ~0.1 ms. Transaction-local, like the role.
    setInternalOrdered: `SELECT set_config('role', $1, true), set_config('upshift.org_id', '', true), set_config('enable_bitmapscan', 'off', true)`,
    // The position lock is taken by the first statement that appends events and held until
    // COMMIT. MATERIALIZED + the cross join make it run before the first row is produced, so
    // before the first identity value is drawn. NOTIFY carries only the newest position.
    insertEvents: `WITH lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(hashtextextended($8, 0)) AS held),
      ins AS (
        INSERT INTO ${s}.job_events (job_id, event_seq, org_id, type, status, payload, occurred_at)
        SELECT u.job_id, u.event_seq, u.org_id, u.type, u.status, u.payload, u.occurred_at
        FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::json[], $7::bigint[])
          AS u(job_id, event_seq, org_id, type, status, payload, occurred_at)
          CROSS JOIN lock
        RETURNING position, job_id, event_seq),
      note AS (SELECT pg_notify($9, MAX(position)::text) AS sent FROM ins)
      SELECT ins.position, ins.job_id, ins.event_seq FROM ins CROSS JOIN note`,

    // Submits of one org: the jobs and their job.queued events in one statement (events under
    // the position lock, as in claim). Rows skipped by ON CONFLICT (same idempotency key) get no event.
    insertJobs: `WITH ins AS (
        INSERT INTO ${s}.jobs (job_id, org_id, analyzer, input, status, attempt, max_attempts, priority,
          idempotency_key, request_hash, created_at, run_at, trace_context, last_event_seq)
        SELECT u.job_id, $1, u.analyzer, u.input, 'queued', 1, u.max_attempts, u.priority, u.idempotency_key, u.request_hash,
          u.created_at, u.run_at, u.trace_context, 1
        FROM unnest($2::text[], $3::text[], $4::json[], $5::int[], $6::int[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::text[])
          AS u(job_id, analyzer, input, max_attempts, priority, idempotency_key, request_hash, created_at, run_at, trace_context)
        ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING job_id, org_id, analyzer, priority, max_attempts, run_at, created_at),
      lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(hashtextextended($12, 0)) AS held),
      ev AS (
        INSERT INTO ${s}.job_events (job_id, event_seq, org_id, type, status, payload, occurred_at)
        SELECT ins.job_id, 1, ins.org_id, 'job.queued', 'queued',
          json_build_object('analyzer', ins.analyzer, 'priority', ins.priority, 'max_attempts', ins.max_attempts, 'run_at', ins.run_at),
          ins.created_at
        FROM ins CROSS JOIN lock
        RETURNING job_id, position),
      note AS (SELECT pg_notify($13, MAX(position)::text) AS sent FROM ev HAVING COUNT(*) > 0)
      SELECT ev.job_id, ev.position FROM ev CROSS JOIN note`,
    jobsByIdempotencyKey: `SELECT ${J} FROM ${s}.jobs WHERE org_id = $1 AND idempotency_key = ANY($2::text[])`,

    // Claim and completion are one statement each, job.started / job.completed included: the
    // events are inserted in the statement, under the position lock (taken by the cross join
    // before the first identity value, see insertEvents), so the batch can pipeline COMMIT
    // right behind it. $8: position lock key, $9: NOTIFY channel. No NOTIFY when nothing moved.
    claim: `WITH picked AS (
        SELECT org_id, job_id FROM ${s}.jobs
        WHERE org_id = $1 AND status = 'queued' AND run_at <= $2 AND ($3::text[] IS NULL OR analyzer = ANY($3::text[]))
        ORDER BY priority DESC, run_at, job_id
        LIMIT $4
        FOR UPDATE SKIP LOCKED),
      ${toRunning({ now: '$2', token: '$5', expires: '$6', worker: '$7', lockKey: '$8', channel: '$9' })}
      SELECT ${jobCols('u')}, ev.position AS event_position FROM u JOIN ev ON ev.job_id = u.job_id CROSS JOIN note`,

    // The claim restricted to named jobs of one org (BullMQ dispatch; $1 repeats the org per
    // name), one row per name in order: the claimed job with its event position, or — for the others — the row as this
    // statement's snapshot saw it (status, run_at; null when missing), which tells gone,
    // not_due and busy (locked by another writer: SKIP LOCKED) apart without a second read.
    // Every name is one primary-key probe: the org comes from the unnest (a constant org lets
    // the planner walk the org's whole key range and hash-join the names: measured, the
    // statement then cost milliseconds per claim), and the status guard is spelled so it does
    // not match the partial jobs_claim index (docs/postgres.md, "Plans that do not depend on statistics").
    claimById: `WITH asked AS (SELECT r.org_id, r.job_id, r.n FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS r(org_id, job_id, n)),
      picked AS (
        SELECT j.org_id, j.job_id FROM ${s}.jobs j JOIN asked ON j.org_id = asked.org_id AND j.job_id = asked.job_id
        WHERE (j.status || '') = 'queued' AND j.run_at <= $3
        ORDER BY j.job_id
        FOR UPDATE OF j SKIP LOCKED),
      ${toRunning({ now: '$3', token: '$4', expires: '$5', worker: '$6', lockKey: '$7', channel: '$8' })}
      SELECT asked.job_id AS asked_job_id, seen.status AS seen_status, seen.run_at AS seen_run_at,
        ${jobCols('u')}, ev.position AS event_position
      FROM asked
      LEFT JOIN ${s}.jobs seen ON seen.org_id = asked.org_id AND seen.job_id = asked.job_id AND (seen.status || '') <> ''
      LEFT JOIN u ON u.job_id = asked.job_id
      LEFT JOIN ev ON ev.job_id = asked.job_id
      LEFT JOIN note ON true
      ORDER BY asked.n`,

    // The jobs are found by primary key, one index probe per completion, whatever the table
    // statistics say: the org comes from the unnest (not a constant the planner could scan
    // the whole org by) and the status guard is spelled so it does not match the partial
    // jobs_running index. Without statistics (a fresh table, autovacuum behind) the planner
    // otherwise walks every running job of the org per batch: 12 ms instead of 0.7 ms at
    // 8,000 running, 100 ms+ at the bench's worst.
    // The outbox entries of the completions (in-app + subscribed endpoints) in the same
    // statement; $10: in-app entry ids, $11: finished_at as ISO-8601 (the notification data),
    // $12: inline in-app delivery (then also the notifications, ids in $13).
    completeJobs: `WITH u AS (
        UPDATE ${s}.jobs j SET status = 'completed', result_id = i.result_id, finished_at = i.now, progress_fraction = 1,
          error = NULL, lease_token = NULL, lease_expires_at = NULL, last_event_seq = j.last_event_seq + 1
        FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[], array_fill($1::text, ARRAY[cardinality($2::text[])]))
          AS i(job_id, attempt, token, result_id, now, org_id)
        WHERE j.org_id = i.org_id AND j.job_id = i.job_id AND (j.status || '') = 'running' AND j.attempt = i.attempt AND j.lease_token = i.token
        RETURNING ${JJ}),
      r AS (
        INSERT INTO ${s}.job_results (result_id, job_id, org_id, kind, chunk_key, seq, payload, created_at)
        SELECT u.result_id, u.job_id, u.org_id, 'final', NULL, u.partial_count + 1, p.payload, u.finished_at
        FROM u JOIN unnest($2::text[], $7::json[]) AS p(job_id, payload) ON p.job_id = u.job_id),
      c AS (SELECT n.entry_id, n.notification_id, u.org_id, u.job_id, 'async.job.completed'::text AS type,
          jsonb_build_object('job_id', u.job_id, 'org_id', u.org_id, 'status', 'completed'::text, 'analyzer', u.analyzer,
            'result_id', u.result_id, 'error', NULL::jsonb, 'finished_at', n.finished_iso) AS payload,
          u.finished_at AS occurred_at, u.finished_at AS now
        FROM u JOIN unnest($2::text[], $10::text[], $11::text[], $13::text[]) AS n(job_id, entry_id, finished_iso, notification_id)
          ON n.job_id = u.job_id),
      ob AS (${outboxInsertFrom(s, 'c', '$12::boolean')}),
      nt AS (${notificationInsertFrom(s, 'c', '$12::boolean')}),
      lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(hashtextextended($8, 0)) AS held),
      ev AS (
        INSERT INTO ${s}.job_events (job_id, event_seq, org_id, type, status, payload, occurred_at)
        SELECT u.job_id, u.last_event_seq, u.org_id, 'job.completed', 'completed',
          json_build_object('result_id', u.result_id, 'attempt', u.attempt), u.finished_at
        FROM u CROSS JOIN lock
        RETURNING job_id, position),
      note AS (SELECT pg_notify($9, MAX(position)::text) AS sent FROM ev HAVING COUNT(*) > 0)
      SELECT ${jobCols('u')}, ev.position AS event_position FROM u JOIN ev ON ev.job_id = u.job_id CROSS JOIN note`,

    // Writers lock and read the rows, decide in JS (core transition table), then write back.
    lockJobs: `SELECT ${J} FROM ${s}.jobs WHERE org_id = $1 AND job_id = ANY($2::text[]) ORDER BY job_id FOR UPDATE`,
    writeBack: `UPDATE ${s}.jobs j SET status = u.status, attempt = u.attempt, run_at = u.run_at,
        progress_fraction = u.progress_fraction, progress_message = u.progress_message, started_at = u.started_at,
        finished_at = u.finished_at, cancel_requested_at = u.cancel_requested_at, result_id = u.result_id,
        partial_count = u.partial_count, error = u.error, lease_token = u.lease_token, lease_expires_at = u.lease_expires_at,
        worker_id = u.worker_id, last_event_seq = u.last_event_seq
      FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[], $6::float8[], $7::text[], $8::bigint[], $9::bigint[],
          $10::bigint[], $11::text[], $12::int[], $13::jsonb[], $14::text[], $15::bigint[], $16::text[], $17::int[])
        AS u(org_id, job_id, status, attempt, run_at, progress_fraction, progress_message, started_at, finished_at,
          cancel_requested_at, result_id, partial_count, error, lease_token, lease_expires_at, worker_id, last_event_seq)
      WHERE j.org_id = u.org_id AND j.job_id = u.job_id`,
    insertResults: `INSERT INTO ${s}.job_results (result_id, job_id, org_id, kind, chunk_key, seq, payload, created_at)
      SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::json[], $8::bigint[])`,
    resultsByChunk: `SELECT result_id, job_id, org_id, kind, chunk_key, seq, payload, created_at FROM ${s}.job_results
      WHERE org_id = $1 AND job_id = ANY($2::text[]) AND chunk_key = ANY($3::text[])`,
    expiredLeases: `SELECT ${J} FROM ${s}.jobs WHERE status = 'running' AND lease_expires_at < $1
      ORDER BY lease_expires_at, job_id LIMIT $2 FOR UPDATE SKIP LOCKED`,

    jobByOrg: `SELECT ${J} FROM ${s}.jobs WHERE org_id = $1 AND job_id = $2`,
    listJobs: `SELECT ${J} FROM ${s}.jobs WHERE org_id = $1 AND ${LIST}`,
    listQueued: `SELECT ${J} FROM ${s}.jobs WHERE org_id = $1 AND status = 'queued' AND ${LIST}`,
    listRunning: `SELECT ${J} FROM ${s}.jobs WHERE org_id = $1 AND status = 'running' AND ${LIST}`,
    listCompleted: `SELECT ${J} FROM ${s}.jobs WHERE org_id = $1 AND status = 'completed' AND ${LIST}`,
    listFailed: `SELECT ${J} FROM ${s}.jobs WHERE org_id = $1 AND status = 'failed' AND ${LIST}`,
    listCanceled: `SELECT ${J} FROM ${s}.jobs WHERE org_id = $1 AND status = 'canceled' AND ${LIST}`,
    listEvents: `SELECT position, job_id, event_seq, org_id, type, status, payload, occurred_at FROM ${s}.job_events
      WHERE job_id = $2 AND org_id = $1 AND event_seq > $3 ORDER BY event_seq LIMIT $4`,
    listOrgEvents: `SELECT position, job_id, event_seq, org_id, type, status, payload, occurred_at FROM ${s}.job_events
      WHERE position > $2 AND position <= $3 AND org_id = $1 ORDER BY position LIMIT $4`,
    eventsAfter: `SELECT position, job_id, event_seq, org_id, type, status, payload, occurred_at FROM ${s}.job_events
      WHERE position > $1 ORDER BY position LIMIT $2`,
    maxPosition: `SELECT COALESCE(MAX(position), 0)::bigint AS position FROM ${s}.job_events`,
    listResults: `SELECT result_id, job_id, org_id, kind, chunk_key, seq, payload, created_at FROM ${s}.job_results
      WHERE org_id = $1 AND job_id = $2 ORDER BY seq`,
    resultByOrg: `SELECT result_id, job_id, org_id, kind, chunk_key, seq, payload, created_at FROM ${s}.job_results
      WHERE org_id = $1 AND result_id = $2`,
    latestResult: `SELECT result_id, job_id, org_id, kind, chunk_key, seq, payload, created_at FROM ${s}.job_results
      WHERE org_id = $1 AND job_id = $2 ORDER BY kind = 'final' DESC, seq DESC LIMIT 1`,
    removedResult: `SELECT result_id, job_id, org_id, removed_at FROM ${s}.removed_results WHERE org_id = $1 AND result_id = $2`,

    // Loose index scan over jobs_claim: one index descent per distinct org, however long the backlog.
    readyOrgs: `WITH RECURSIVE ready(org_id) AS (
        (SELECT org_id FROM ${s}.jobs WHERE status = 'queued' AND run_at <= $1
           AND ($2::text[] IS NULL OR analyzer = ANY($2::text[])) ORDER BY org_id LIMIT 1)
        UNION ALL
        SELECT (SELECT j.org_id FROM ${s}.jobs j WHERE j.status = 'queued' AND j.org_id > r.org_id AND j.run_at <= $1
                  AND ($2::text[] IS NULL OR j.analyzer = ANY($2::text[])) ORDER BY j.org_id LIMIT 1)
        FROM ready r WHERE r.org_id IS NOT NULL)
      SELECT r.org_id, (SELECT COUNT(*) FROM ${s}.jobs c WHERE c.status = 'running' AND c.org_id = r.org_id)::int AS running
      FROM ready r WHERE r.org_id IS NOT NULL`,
    staleCancels: `SELECT ${J} FROM ${s}.jobs WHERE status = 'running' AND cancel_requested_at IS NOT NULL AND cancel_requested_at < $1
      ORDER BY cancel_requested_at, job_id LIMIT $2`,
    queueStats: `SELECT (SELECT COUNT(*) FROM ${s}.jobs WHERE status = 'queued')::int AS queued,
        (SELECT COUNT(*) FROM ${s}.jobs WHERE status = 'running')::int AS running,
        (SELECT MIN(run_at) FROM ${s}.jobs WHERE status = 'queued' AND run_at <= $1) AS oldest`,

    insertApiKey: `INSERT INTO ${s}.api_keys (key_id, org_id, hash, label, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)`,
    apiKeyByHash: `SELECT key_id, org_id, hash, label, created_at, revoked_at FROM ${s}.api_keys WHERE hash = $1`,
    revokeApiKey: `UPDATE ${s}.api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE key_id = $1 RETURNING key_id`,
    listApiKeys: `SELECT key_id, org_id, hash, label, created_at, revoked_at FROM ${s}.api_keys ORDER BY created_at, key_id`,
    listApiKeysByOrg: `SELECT key_id, org_id, hash, label, created_at, revoked_at FROM ${s}.api_keys WHERE org_id = $1 ORDER BY created_at, key_id`,

    ...buildDeliverySql(s),
    ...buildRetentionSql(s),
  };
  type Key = keyof typeof text;
  // Prepared statement names are per connection; the schema is part of the name because one
  // process may run stores on several schemas over the same server (tests do).
  const tag = createHash('sha256').update(schema).digest('hex').slice(0, 12);
  const names = Object.fromEntries(Object.keys(text).map((k) => [k, `ups_${tag}_${k}`])) as Record<Key, string>;
  return { ...text, names };
}

export type PgSql = ReturnType<typeof buildSql>;
