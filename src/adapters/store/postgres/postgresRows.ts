import type { JobError, Json } from '../../../core/job.js';
import { JOB_COLUMNS, rowMappers, type EventRowOf, type JobRowOf, type ResultRowOf } from '../storeRows.js';

export { JOB_COLUMNS, toApiKey, toRemovedResult, type ApiKeyRow, type RemovedResultRow } from '../storeRows.js';

/** A jobs row as pg returns it: JSON parsed, bigint as number (see postgresConnection). */
export type JobRow = JobRowOf<Json, JobError>;
export type EventRow = EventRowOf<Json>;
export type ResultRow = ResultRowOf<Json>;

/** `j.job_id, j.org_id, …` for a given table alias. */
export const jobCols = (alias?: string): string => JOB_COLUMNS.map((c) => (alias ? `${alias}.${c}` : c)).join(', ');

/** JSON text for a json/jsonb parameter (never let pg turn a JS array into a Postgres array). */
export const toJsonText = (v: Json): string => JSON.stringify(v) ?? 'null';

// pg hands JSON over parsed; the error is rebuilt so no extra stored key leaks into the domain.
export const { toJob, toClaimedJob, toEvent, toResult } = rowMappers<Json, JobError>(
  (v) => v,
  (e) => ({ code: e.code, message: e.message }),
);
