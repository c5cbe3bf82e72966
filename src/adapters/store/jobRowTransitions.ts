import type { JobStatus } from '../../core/jobState.js';

/** The job-row columns a state change sets, as both stores' row types spell them. */
interface TransitionColumns {
  status: JobStatus;
  result_id: string | null;
  finished_at: number | null;
  progress_fraction: number;
  error: unknown;
  lease_token: string | null;
  lease_expires_at: number | null;
  last_event_seq: number;
}

/**
 * running → completed with `resultId` (the final result), as the row reads after the transition:
 * lease released, progress full, error cleared, the next event's seq reserved. Shared by the
 * SQLite and PostgreSQL adapters, whose rows differ only in how they hold the other columns.
 */
export function completedRow<R extends TransitionColumns>(row: R, resultId: string, now: number): R {
  return {
    ...row,
    status: 'completed',
    result_id: resultId,
    finished_at: now,
    progress_fraction: 1,
    error: null,
    lease_token: null,
    lease_expires_at: null,
    last_event_seq: row.last_event_seq + 1,
  };
}
