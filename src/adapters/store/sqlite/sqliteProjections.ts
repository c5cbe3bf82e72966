import type { Database, Statement } from 'better-sqlite3';
import { UpshiftError } from '../../../core/errors.js';
import { asOrgId, type OrgId } from '../../../core/ids.js';
import type { TerminalStatus } from '../../../core/jobState.js';
import type { ProjectionCheckpoint, ProjectionEvent, SeedJob } from '../../../core/projection.js';
import type { ProjectionCommit, ProjectionStore } from '../../../ports/projectionStore.js';
import { refuseAfterRetention, toCheckpoint, toFacts, toProjectionEvent, type CheckpointRow, type EventRow, type FactsRow } from '../projectionRows.js';
import { readAsync } from './sqliteErrors.js';

/**
 * ProjectionStore on the SQLite store: reads run on the store's reading connection, the
 * commit is a write op of the store's single writer (`projectionCommit` in sqliteWriteOps.ts),
 * so it serialises with every other write and its compare-and-set runs under the write lock.
 * A snapshot is one read transaction on the reading connection (WAL: a stable view while the
 * writer goes on). The job hot path is untouched: nothing here runs inside a job write.
 */
const TERMINAL = `('job.completed', 'job.failed', 'job.canceled')`;

// Events with their job's immutable facts. `orphan`: the job's log no longer starts at event_seq 1
// (retention is deleting it) — checked only for snapshots (rebuilds): the live runner reads events
// long before retention may touch them (see docs/projections.md "Retention"), and the probe is
// a third of the read's cost. Raw rows, in this column order (rowOfRaw).
const eventsSql = (orphan: boolean): string => `SELECT e.position, e.org_id, e.job_id, e.event_seq, e.type, e.occurred_at, j.analyzer,
    CASE WHEN e.type = 'job.canceled' THEN json_extract(e.payload, '$.reason') END AS cancel_reason,
    CASE WHEN e.type IN ${TERMINAL} THEN j.started_at END AS started_at,
    CASE WHEN e.type IN ${TERMINAL} THEN j.finished_at END AS finished_at,
    ${orphan ? 'e.event_seq > 1 AND NOT EXISTS (SELECT 1 FROM job_events f WHERE f.job_id = e.job_id AND f.event_seq = 1)' : '0'} AS orphan
  FROM job_events e JOIN jobs j ON j.org_id = e.org_id AND j.job_id = e.job_id
  WHERE e.position > @after AND e.position <= @upTo AND (@org IS NULL OR e.org_id = @org)
  ORDER BY e.position LIMIT @limit`;

type RawEvent = [number, string, string, number, EventRow['type'], number, string, string | null, number | null, number | null, number];
const rowOfRaw = (r: RawEvent): EventRow => ({
  position: r[0], org_id: r[1], job_id: r[2], event_seq: r[3], type: r[4], occurred_at: r[5], analyzer: r[6], cancel_reason: r[7], started_at: r[8], finished_at: r[9], orphan: r[10],
});

const SQL = {
  head: `SELECT COALESCE(MAX(position), 0) FROM job_events`,
  eventsDeleted: `SELECT COALESCE(MAX(position), 0) FROM store_watermarks WHERE name = 'events_deleted_through'`,
  checkpoint: `SELECT position, version, lease_owner, lease_expires_at, updated_at FROM projection_offsets WHERE projection = ?`,
  liveEvents: eventsSql(false),
  snapshotEvents: eventsSql(true),
  statesOf: `SELECT org_id, state FROM projection_states WHERE projection = ? AND org_id IN (SELECT value FROM json_each(?))`,
  pendingOrgs: `SELECT DISTINCT org_id FROM job_events WHERE position > @after AND (@org IS NULL OR org_id = @org)`,
  allStates: `SELECT org_id, state FROM projection_states WHERE projection = @name AND (@org IS NULL OR org_id = @org)`,
  tenantState: `SELECT state FROM projection_states WHERE projection = ? AND org_id = ?`,
  pending: `SELECT COUNT(*) FROM (SELECT 1 FROM job_events WHERE position > ? AND org_id = ? LIMIT ?)`,
  seed: `SELECT j.org_id, j.job_id, j.analyzer, j.status, j.started_at, j.finished_at FROM jobs j
    WHERE j.status IN ('completed', 'failed', 'canceled') AND (@org IS NULL OR j.org_id = @org)
      AND NOT EXISTS (SELECT 1 FROM job_events f WHERE f.job_id = j.job_id AND f.event_seq = 1)`,
  jobs: `SELECT org_id, job_id, analyzer, status, started_at, finished_at FROM jobs WHERE (@org IS NULL OR org_id = @org)`,
  tenantJobs: `SELECT org_id, job_id, analyzer, status, started_at, finished_at FROM jobs WHERE org_id = ?`,
} as const;

const WRITE_SQL = {
  version: `SELECT version FROM projection_offsets WHERE projection = ?`,
  eventsDeleted: `SELECT COALESCE(MAX(position), 0) AS position FROM store_watermarks WHERE name = 'events_deleted_through'`,
  deleteAll: `DELETE FROM projection_states WHERE projection = ?`,
  upsertState: `INSERT INTO projection_states (projection, org_id, state, updated_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (projection, org_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
  setOffset: `INSERT INTO projection_offsets (projection, position, version, lease_owner, lease_expires_at, updated_at)
    VALUES (@name, @position, @version, @owner, @expires, @now)
    ON CONFLICT (projection) DO UPDATE SET position = excluded.position, version = excluded.version,
      lease_owner = excluded.lease_owner, lease_expires_at = excluded.lease_expires_at, updated_at = excluded.updated_at`,
} as const;

const PAGE = 1000;
const UNBOUNDED = Number.MAX_SAFE_INTEGER;

type ReadQueries = { [K in keyof typeof SQL]: Statement };
export type ProjectionWriteQueries = { [K in keyof typeof WRITE_SQL]: Statement };

export const prepareProjectionWrites = (db: Database): ProjectionWriteQueries =>
  Object.fromEntries(Object.entries(WRITE_SQL).map(([k, s]) => [k, db.prepare(s)])) as ProjectionWriteQueries;

/** The commit, under the write lock: compare-and-set on the version before any write. */
export function projectionCommitOp(q: ProjectionWriteQueries, cmd: ProjectionCommit): ProjectionCheckpoint {
  const current = (q.version.get(cmd.name) as { version: number } | undefined)?.version ?? 0;
  if (current !== cmd.expectedVersion) {
    throw new UpshiftError('PROJECTION_CONFLICT', `projection ${cmd.name} moved on (version ${current}, expected ${cmd.expectedVersion})`, {
      details: { projection: cmd.name },
    });
  }
  if (cmd.readFrom !== undefined) refuseAfterRetention(cmd, (q.eventsDeleted.get() as { position: number }).position);
  if (cmd.replaceAll) q.deleteAll.run(cmd.name);
  for (const s of cmd.states) q.upsertState.run(cmd.name, s.orgId, s.state, cmd.now);
  const version = current + 1;
  q.setOffset.run({ name: cmd.name, position: cmd.position, version, owner: cmd.leaseOwner, expires: cmd.leaseExpiresAt, now: cmd.now });
  return { position: cmd.position, version, leaseOwner: cmd.leaseOwner, leaseExpiresAt: cmd.leaseExpiresAt, updatedAt: cmd.now };
}

/** Calls `visit` with pages of at most PAGE rows. */
function inPages<R, T>(rows: IterableIterator<R>, map: (r: R) => T, visit: (page: T[]) => void): void {
  let page: T[] = [];
  for (const r of rows) {
    page.push(map(r));
    if (page.length === PAGE) {
      visit(page);
      page = [];
    }
  }
  if (page.length > 0) visit(page);
}

export interface SqliteProjectionDeps {
  readonly db: Database;
  readonly commit: (cmd: ProjectionCommit) => Promise<ProjectionCheckpoint>;
  readonly assertOpen: () => void;
}

export function createSqliteProjections(deps: SqliteProjectionDeps): ProjectionStore {
  let prepared: ReadQueries | null = null;
  const q = (): ReadQueries => {
    deps.assertOpen();
    if (prepared === null) {
      prepared = Object.fromEntries(Object.entries(SQL).map(([k, s]) => [k, deps.db.prepare(s)])) as ReadQueries;
      prepared.liveEvents.raw(true);
      prepared.snapshotEvents.raw(true);
    }
    return prepared;
  };
  const events = (stmt: Statement, args: { after: number; upTo: number; org: OrgId | null; limit: number }): ProjectionEvent[] =>
    (stmt.all(args) as RawEvent[]).map((r) => toProjectionEvent(rowOfRaw(r)));
  const head = (): number => Number(q().head.pluck().get());
  const checkpoint = (name: string): ProjectionCheckpoint => toCheckpoint(q().checkpoint.get(name) as CheckpointRow | undefined);

  return {
    headPosition: () => readAsync(head),
    eventsDeletedThrough: () => readAsync(() => Number(q().eventsDeleted.pluck().get())),
    readCheckpoint: (name) => readAsync(() => checkpoint(name)),
    readProjectionEvents: (after, limit) =>
      readAsync(() => events(q().liveEvents, { after, upTo: UNBOUNDED, org: null, limit: Math.max(1, Math.floor(limit)) })),
    readStates: (name, orgs) =>
      readAsync(() => {
        const rows = q().statesOf.all(name, JSON.stringify(orgs)) as { org_id: string; state: string }[];
        return new Map(rows.map((r) => [asOrgId(r.org_id), r.state]));
      }),
    commitProjection: (cmd) => deps.commit(cmd),
    readTenantProjection: (name, orgId, maxPending) =>
      readAsync(() =>
        deps.db.transaction(() => {
          const row = q().tenantState.get(name, orgId) as { state: string } | undefined;
          const cp = checkpoint(name);
          const pendingEvents = Number(q().pending.pluck().get(cp.position, orgId, Math.max(0, Math.floor(maxPending))));
          return { state: row?.state ?? null, checkpoint: cp, pendingEvents };
        })(),
      ),
    scanProjectionSnapshot: (req, visit) =>
      readAsync(() =>
        // One read transaction: every statement below sees the same committed state.
        deps.db.transaction(() => {
          const qs = q();
          const h = head();
          const cp = checkpoint(req.name);
          const org: OrgId | null = req.orgId;
          if (visit.pendingOrgs) {
            const rows = qs.pendingOrgs.all({ after: cp.position, org }) as { org_id: string }[];
            visit.pendingOrgs(new Set(rows.map((r) => asOrgId(r.org_id))));
          }
          if (visit.states) {
            const rows = qs.allStates.all({ name: req.name, org }) as { org_id: string; state: string }[];
            visit.states(new Map(rows.map((r) => [asOrgId(r.org_id), r.state])));
          }
          if (visit.seed) {
            const v = visit.seed;
            inPages(qs.seed.iterate({ org }) as IterableIterator<FactsRow>, (r) => ({ ...toFacts(r), status: r.status as TerminalStatus }) as SeedJob, (p) => v(p));
          }
          if (visit.events) {
            const upTo = req.eventsUpTo === 'head' ? h : cp.position;
            let after = 0;
            for (;;) {
              const page = events(qs.snapshotEvents, { after, upTo, org, limit: PAGE });
              if (page.length === 0) break;
              visit.events(page);
              after = (page.at(-1) as ProjectionEvent).position;
            }
          }
          if (visit.jobs) {
            const v = visit.jobs;
            inPages(qs.jobs.iterate({ org }) as IterableIterator<FactsRow>, toFacts, (p) => v(p));
          }
          return { head: h, checkpoint: cp };
        })(),
      ),
    scanTenantJobs: (orgId, visit) =>
      readAsync(() => {
        inPages(q().tenantJobs.iterate(orgId) as IterableIterator<FactsRow>, toFacts, (p) => visit(p));
      }),
  };
}
