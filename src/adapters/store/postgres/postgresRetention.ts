import type pg from 'pg';
import { asJobId, asOrgId } from '../../../core/ids.js';
import { isTerminal, type JobStatus, type TerminalStatus } from '../../../core/jobState.js';
import type { JobKey, PurgeCommand, RetentionStore, TerminalJobStats } from '../../../ports/retentionStore.js';
import type { Op } from './postgresGroupCommit.js';
import type { PgSql } from './postgresSql.js';

type Query = <R extends pg.QueryResultRow>(name: keyof PgSql['names'], values: unknown[]) => Promise<R[]>;

export interface PgRetentionAccess {
  write<T>(op: Op<null, T>): Promise<T>;
  internalRead<T>(run: (q: Query) => Promise<T>): Promise<T>;
}

interface ScanRow {
  org_id: string;
  job_id: string;
  status: JobStatus;
  finished_at: number | null;
  results: number | null;
  events: number | null;
  notifications: number | null;
}

interface PlanRow {
  ord: number;
  finished_at: number;
  results: number;
  events: number;
  inbox: number;
  outbox: number;
}

/**
 * RetentionStore on the PostgreSQL store: a scan is one read; a purge is one group-commit op
 * of two statements (plan, then delete), so each call is one short transaction that deletes
 * at most `maxRows` rows.
 */
export function createPostgresRetentionMethods({ write, internalRead }: PgRetentionAccess): RetentionStore {
  return {
    scanTerminalJobs: (after, limit) =>
      internalRead(async (q) => {
        const n = Math.max(1, Math.floor(limit));
        // ('', '') sorts before every key: org ids are never empty.
        const rows = await q<ScanRow>('retentionScan', [after?.orgId ?? '', after?.jobId ?? '', n]);
        const jobs: TerminalJobStats[] = [];
        for (const r of rows) {
          if (!isTerminal(r.status)) continue;
          jobs.push({
            orgId: asOrgId(r.org_id),
            jobId: asJobId(r.job_id),
            status: r.status as TerminalStatus,
            finishedAt: r.finished_at,
            resultCount: r.results ?? 0,
            eventCount: r.events ?? 0,
            notificationCount: r.notifications ?? 0,
          });
        }
        const last = rows.at(-1);
        const next: JobKey | null = rows.length < n || !last ? null : { orgId: asOrgId(last.org_id), jobId: asJobId(last.job_id) };
        return { jobs, examined: rows.length, next };
      }),

    purgeJobData: (cmd) =>
      write({
        key: null,
        // Deletes only rows of terminal jobs, which no other op changes: nothing to order against.
        jobs: [],
        input: null,
        exec: async (tx) => {
          tx.asInternal();
          const budget = Math.max(1, Math.floor(cmd.maxRows));
          const keys = cmd.jobs;
          const plan = await tx.query<PlanRow>('retentionPlan', [keys.map((k) => k.orgId), keys.map((k) => k.jobId), budget + 1]);
          const { deletes, jobsDone } = planPurge(cmd, budget, new Map(plan.map((p) => [p.ord - 1, p])));
          if (deletes.length === 0) return [{ ok: true, value: { resultsDeleted: 0, eventsDeleted: 0, notificationsDeleted: 0, jobsDone } }];
          const [r] = await tx.query<{ results: number; events: number; notifications: number }>(
            'retentionPurge',
            [
              deletes.map((d) => d.key.orgId),
              deletes.map((d) => d.key.jobId),
              deletes.map((d) => d.results),
              deletes.map((d) => d.events),
              cmd.now,
              deletes.map((d) => d.inbox),
              deletes.map((d) => d.outbox),
            ],
            true,
          );
          const value = { resultsDeleted: r?.results ?? 0, eventsDeleted: r?.events ?? 0, notificationsDeleted: r?.notifications ?? 0, jobsDone };
          return [{ ok: true, value }];
        },
      }),
  };
}

interface PlannedDelete {
  readonly key: JobKey;
  readonly results: number;
  readonly events: number;
  readonly inbox: number;
  readonly outbox: number;
}

/**
 * Spends the row budget over the jobs in list order — results, events, inbox entries, settled
 * outbox entries — exactly as the SQLite adapter does: a job whose rows used up the budget is
 * not counted as done (more may be left; the next call finds out). Jobs without an eligible
 * row are done.
 */
function planPurge(cmd: PurgeCommand, budget: number, byIndex: ReadonlyMap<number, PlanRow>): { deletes: PlannedDelete[]; jobsDone: number } {
  const deletes: PlannedDelete[] = [];
  let left = budget;
  let jobsDone = 0;
  for (let i = 0; i < cmd.jobs.length; i++) {
    const row = byIndex.get(i);
    if (row) {
      const results = row.finished_at <= cmd.resultsCutoff ? Math.min(row.results, left) : 0;
      left -= results;
      const events = left > 0 && row.finished_at <= cmd.eventsCutoff ? Math.min(row.events, left) : 0;
      left -= events;
      const notify = cmd.notificationsCutoff !== null && row.finished_at <= cmd.notificationsCutoff;
      const inbox = left > 0 && notify ? Math.min(row.inbox, left) : 0;
      left -= inbox;
      const outbox = left > 0 && notify ? Math.min(row.outbox, left) : 0;
      left -= outbox;
      if (results + events + inbox + outbox > 0) deletes.push({ key: cmd.jobs[i] as JobKey, results, events, inbox, outbox });
      if (left === 0) break;
    }
    jobsDone++;
  }
  return { deletes, jobsDone };
}
