import type pg from 'pg';
import { UpshiftError } from '../../../core/errors.js';
import { asOrgId, type OrgId } from '../../../core/ids.js';
import type { TerminalStatus } from '../../../core/jobState.js';
import type { ProjectionCheckpoint, SeedJob } from '../../../core/projection.js';
import type { ProjectionStore } from '../../../ports/projectionStore.js';
import { NO_CHECKPOINT, refuseAfterRetention, toCheckpoint, toFacts, toProjectionEvent, type CheckpointRow, type EventRow, type FactsRow } from '../projectionRows.js';
import { ident, withPooledTransaction, type PgNames } from './postgresConnection.js';

/**
 * ProjectionStore on PostgreSQL. Runs its own short transactions on the store's pool (not the
 * group commit: nothing here belongs in a job's transaction). Cross-tenant work runs as the
 * internal role; tenant reads as the application role with the org setting, so RLS binds them.
 *
 * Exactly-once: the commit locks the projection's offset row (`FOR UPDATE`) before it checks the
 * version, so two runners (or a runner and a rebuild) serialise on it and the second one sees
 * the first one's version and gives up (PROJECTION_CONFLICT). Positions are commit order
 * (docs/postgres.md), so "events after P" never misses one that commits later.
 */
const TERMINAL = `('job.completed', 'job.failed', 'job.canceled')`;
const PAGE = 1000;
const UNBOUNDED = Number.MAX_SAFE_INTEGER;

function sqlFor(schema: string) {
  const s = ident(schema);
  return {
    head: `SELECT COALESCE(MAX(position), 0)::bigint AS head FROM ${s}.job_events`,
    eventsDeleted: `SELECT COALESCE(MAX(position), 0)::bigint AS position FROM ${s}.store_watermarks WHERE name = 'events_deleted_through'`,
    checkpoint: `SELECT position, version, lease_owner, lease_expires_at, updated_at FROM ${s}.projection_offsets WHERE projection = $1`,
// Orphan check (see the SQLite adapter): snapshots (rebuilds) only.
    liveEvents: `SELECT e.position, e.org_id, e.job_id, e.event_seq, e.type, e.occurred_at, j.analyzer,
        CASE WHEN e.type = 'job.canceled' THEN e.payload->>'reason' END AS cancel_reason,
        CASE WHEN e.type IN ${TERMINAL} THEN j.started_at END AS started_at,
        CASE WHEN e.type IN ${TERMINAL} THEN j.finished_at END AS finished_at,
        false AS orphan
      FROM ${s}.job_events e JOIN ${s}.jobs j ON j.org_id = e.org_id AND j.job_id = e.job_id
      WHERE e.position > $1 AND e.position <= $2 AND ($3::text IS NULL OR e.org_id = $3)
      ORDER BY e.position LIMIT $4`,
    snapshotEvents: `SELECT e.position, e.org_id, e.job_id, e.event_seq, e.type, e.occurred_at, j.analyzer,
        CASE WHEN e.type = 'job.canceled' THEN e.payload->>'reason' END AS cancel_reason,
        CASE WHEN e.type IN ${TERMINAL} THEN j.started_at END AS started_at,
        CASE WHEN e.type IN ${TERMINAL} THEN j.finished_at END AS finished_at,
        (e.event_seq > 1 AND NOT EXISTS (SELECT 1 FROM ${s}.job_events f WHERE f.job_id = e.job_id AND f.event_seq = 1)) AS orphan
      FROM ${s}.job_events e JOIN ${s}.jobs j ON j.org_id = e.org_id AND j.job_id = e.job_id
      WHERE e.position > $1 AND e.position <= $2 AND ($3::text IS NULL OR e.org_id = $3)
      ORDER BY e.position LIMIT $4`,
    statesOf: `SELECT org_id, state::text AS state FROM ${s}.projection_states WHERE projection = $1 AND org_id = ANY($2::text[])`,
    pendingOrgs: `SELECT DISTINCT org_id FROM ${s}.job_events WHERE position > $1 AND ($2::text IS NULL OR org_id = $2)`,
    allStates: `SELECT org_id, state::text AS state FROM ${s}.projection_states WHERE projection = $1 AND ($2::text IS NULL OR org_id = $2)`,
    tenantState: `SELECT state::text AS state FROM ${s}.projection_states WHERE projection = $1 AND org_id = $2`,
    pending: `SELECT COUNT(*)::bigint AS n FROM (SELECT 1 FROM ${s}.job_events WHERE position > $1 AND org_id = $2 LIMIT $3) p`,
    // Keyset pages over the job key; seed = terminal jobs whose log lost its first event.
    seed: `SELECT j.org_id, j.job_id, j.analyzer, j.status, j.started_at, j.finished_at FROM ${s}.jobs j
      WHERE j.status IN ('completed', 'failed', 'canceled') AND ($1::text IS NULL OR j.org_id = $1)
        AND (j.org_id, j.job_id) > ($2, $3)
        AND NOT EXISTS (SELECT 1 FROM ${s}.job_events f WHERE f.job_id = j.job_id AND f.event_seq = 1)
      ORDER BY j.org_id, j.job_id LIMIT $4`,
    jobs: `SELECT org_id, job_id, analyzer, status, started_at, finished_at FROM ${s}.jobs
      WHERE ($1::text IS NULL OR org_id = $1) AND (org_id, job_id) > ($2, $3) ORDER BY org_id, job_id LIMIT $4`,
    lockOffset: `SELECT version FROM ${s}.projection_offsets WHERE projection = $1 FOR UPDATE`,
    ensureOffset: `INSERT INTO ${s}.projection_offsets (projection) VALUES ($1) ON CONFLICT (projection) DO NOTHING`,
    deleteAll: `DELETE FROM ${s}.projection_states WHERE projection = $1`,
    upsertStates: `INSERT INTO ${s}.projection_states (projection, org_id, state, updated_at)
      SELECT $1, o, st::jsonb, $4 FROM unnest($2::text[], $3::text[]) AS u(o, st)
      ON CONFLICT (projection, org_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
    setOffset: `UPDATE ${s}.projection_offsets SET position = $2, version = $3, lease_owner = $4, lease_expires_at = $5, updated_at = $6
      WHERE projection = $1`,
  };
}

type Role = { kind: 'internal' } | { kind: 'tenant'; org: string };
type Run = <R extends pg.QueryResultRow>(text: string, values: unknown[]) => Promise<R[]>;

export interface PgProjectionDeps {
  readonly pool: pg.Pool;
  readonly names: PgNames;
  readonly isClosed: () => boolean;
}

export function createPostgresProjections({ pool, names, isClosed }: PgProjectionDeps): ProjectionStore {
  const sql = sqlFor(names.schema);

  /** One transaction as `role`; `begin` picks the isolation (snapshots: REPEATABLE READ READ ONLY). */
  async function tx<T>(role: Role, body: (run: Run) => Promise<T>, begin = 'BEGIN'): Promise<T> {
    if (isClosed()) throw new UpshiftError('STORE_UNAVAILABLE', 'the PostgreSQL store is closed');
    return withPooledTransaction(pool, async (client) => {
      await client.query(begin);
      if (role.kind === 'internal') await client.query(`SELECT set_config('role', $1, true), set_config('upshift.org_id', '', true)`, [names.internalRole]);
      else await client.query(`SELECT set_config('role', $1, true), set_config('upshift.org_id', $2, true)`, [names.appRole, role.org]);
      const run: Run = async (text, values) => (await client.query(text, values)).rows;
      const out = await body(run);
      await client.query('COMMIT');
      return out;
    });
  }


  const internal = <T>(body: (run: Run) => Promise<T>): Promise<T> => tx({ kind: 'internal' }, body);
  const checkpointOf = async (run: Run, name: string): Promise<ProjectionCheckpoint> => {
    const [row] = await run<CheckpointRow>(sql.checkpoint, [name]);
    return row ? toCheckpoint(row) : NO_CHECKPOINT;
  };
  const headOf = async (run: Run): Promise<number> => Number((await run<{ head: number }>(sql.head, []))[0]?.head ?? 0);
  const deletedThroughOf = async (run: Run): Promise<number> => Number((await run<{ position: number }>(sql.eventsDeleted, []))[0]?.position ?? 0);

  /** Keyset pages of job rows (seed or source) inside the caller's transaction. */
  async function pagesOfJobs(run: Run, text: string, org: OrgId | null, visit: (rows: FactsRow[]) => void): Promise<void> {
    let after: [string, string] = ['', ''];
    for (;;) {
      const rows = await run<FactsRow>(text, [org, after[0], after[1], PAGE]);
      if (rows.length === 0) return;
      visit(rows);
      const last = rows.at(-1) as FactsRow;
      after = [last.org_id, last.job_id];
      if (rows.length < PAGE) return;
    }
  }

  return {
    headPosition: () => internal(headOf),
    eventsDeletedThrough: () => internal(deletedThroughOf),
    readCheckpoint: (name) => internal((run) => checkpointOf(run, name)),
    readProjectionEvents: (after, limit) =>
      internal(async (run) => (await run<EventRow>(sql.liveEvents, [after, UNBOUNDED, null, Math.max(1, Math.floor(limit))])).map(toProjectionEvent)),
    readStates: (name, orgs) =>
      internal(async (run) => {
        const rows = await run<{ org_id: string; state: string }>(sql.statesOf, [name, [...orgs]]);
        return new Map(rows.map((r) => [asOrgId(r.org_id), r.state]));
      }),
    commitProjection: (cmd) =>
      internal(async (run) => {
        await run(sql.ensureOffset, [cmd.name]);
        const [row] = await run<{ version: number }>(sql.lockOffset, [cmd.name]);
        const current = Number(row?.version ?? 0);
        if (current !== cmd.expectedVersion) {
          throw new UpshiftError('PROJECTION_CONFLICT', `projection ${cmd.name} moved on (version ${current}, expected ${cmd.expectedVersion})`, {
            details: { projection: cmd.name },
          });
        }
        if (cmd.readFrom !== undefined) refuseAfterRetention(cmd, await deletedThroughOf(run));
        if (cmd.replaceAll) await run(sql.deleteAll, [cmd.name]);
        if (cmd.states.length > 0) {
          await run(sql.upsertStates, [cmd.name, cmd.states.map((s) => s.orgId), cmd.states.map((s) => s.state), cmd.now]);
        }
        const version = current + 1;
        await run(sql.setOffset, [cmd.name, cmd.position, version, cmd.leaseOwner, cmd.leaseExpiresAt, cmd.now]);
        return { position: cmd.position, version, leaseOwner: cmd.leaseOwner, leaseExpiresAt: cmd.leaseExpiresAt, updatedAt: cmd.now };
      }),
    readTenantProjection: (name, orgId, maxPending) =>
      tx(
        { kind: 'tenant', org: orgId },
        async (run) => {
          const [row] = await run<{ state: string }>(sql.tenantState, [name, orgId]);
          const cp = await checkpointOf(run, name);
          const [p] = await run<{ n: number }>(sql.pending, [cp.position, orgId, Math.max(0, Math.floor(maxPending))]);
          return { state: row?.state ?? null, checkpoint: cp, pendingEvents: Number(p?.n ?? 0) };
        },
        // One snapshot: under READ COMMITTED a runner's commit between the state and the checkpoint
        // read would pair an old state with the new checkpoint (and report it up to date).
        'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
      ),
    scanProjectionSnapshot: (req, visit) =>
      tx(
        { kind: 'internal' },
        async (run) => {
          const h = await headOf(run);
          const cp = await checkpointOf(run, req.name);
          const org = req.orgId;
          if (visit.pendingOrgs) {
            const rows = await run<{ org_id: string }>(sql.pendingOrgs, [cp.position, org]);
            visit.pendingOrgs(new Set(rows.map((r) => asOrgId(r.org_id))));
          }
          if (visit.states) {
            const rows = await run<{ org_id: string; state: string }>(sql.allStates, [req.name, org]);
            visit.states(new Map(rows.map((r) => [asOrgId(r.org_id), r.state])));
          }
          if (visit.seed) {
            const v = visit.seed;
            await pagesOfJobs(run, sql.seed, org, (rows) => v(rows.map((r) => ({ ...toFacts(r), status: r.status as TerminalStatus }) as SeedJob)));
          }
          if (visit.events) {
            const upTo = req.eventsUpTo === 'head' ? h : cp.position;
            let after = 0;
            for (;;) {
              const page = (await run<EventRow>(sql.snapshotEvents, [after, upTo, org, PAGE])).map(toProjectionEvent);
              if (page.length === 0) break;
              visit.events(page);
              after = page[page.length - 1]?.position ?? after;
            }
          }
          if (visit.jobs) {
            const v = visit.jobs;
            await pagesOfJobs(run, sql.jobs, org, (rows) => v(rows.map(toFacts)));
          }
          return { head: h, checkpoint: cp };
        },
        // One snapshot for every statement: states, seeds, events and source rows agree.
        'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
      ),
    scanTenantJobs: (orgId, visit) =>
      tx({ kind: 'tenant', org: orgId }, async (run) => {
        await pagesOfJobs(run, sql.jobs, orgId, (rows) => visit(rows.map(toFacts)));
      }),
  };
}
