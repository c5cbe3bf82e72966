import { isTerminal, type TerminalStatus } from '../../../core/jobState.js';
import { IN_APP_CHANNEL, notificationData, notificationIdOf, notificationTypeOf, outboxEntryId } from '../../../core/notifications.js';
import type { JobRow } from './postgresRows.js';
import type { Tx } from './postgresTx.js';

/**
 * Writes the outbox entries of the terminal transitions among `rows` (rows as written back by
 * the same transaction, so the entries commit — or roll back — with the transition): one
 * `in_app` entry each (with inline in-app delivery the notification instead), plus one per
 * enabled endpoint of the org subscribed to the type, which the statement looks up itself. Rows that
 * are not terminal are skipped. Runs as the tenant of the rows (RLS checks every row; the
 * caller switches to it). Completions of the one-statement path write theirs inside
 * `completeJobs` instead.
 */
export async function writeOutbox(tx: Tx, rows: readonly JobRow[]): Promise<void> {
  const terminal = rows.filter((r): r is JobRow & { status: TerminalStatus } => isTerminal(r.status));
  if (terminal.length === 0) return;
  const entries = terminal.map((r) => {
    const status = r.status;
    const type = notificationTypeOf(status);
    // finished_at is the transition time on every terminal path.
    const at = r.finished_at as number;
    const data = notificationData({ jobId: r.job_id, orgId: r.org_id, status, analyzer: r.analyzer, resultId: r.result_id, error: r.error, finishedAt: at });
    return {
      entryId: outboxEntryId(r.job_id, type, IN_APP_CHANNEL),
      notificationId: notificationIdOf(r.job_id, type),
      orgId: r.org_id,
      jobId: r.job_id,
      type,
      payload: JSON.stringify(data),
      at,
    };
  });
  await tx.query('insertOutbox', [
    entries.map((e) => e.entryId),
    entries.map((e) => e.orgId),
    entries.map((e) => e.jobId),
    entries.map((e) => e.type),
    entries.map((e) => e.payload),
    entries.map((e) => e.at),
    entries.map((e) => e.at),
    tx.inlineInApp,
    entries.map((e) => e.notificationId),
  ]);
}
