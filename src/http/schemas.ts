import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { EVENT_TYPES } from '../core/events.js';
import { JOB_STATUSES } from '../core/jobState.js';

/**
 * Request and response schemas of the HTTP API (TypeBox → JSON Schema). They drive request
 * validation, fast response serialization and the OpenAPI document, so they are the contract.
 * Nullable scalars use JSON Schema type arrays (fast to serialize, valid OpenAPI 3.1).
 */

const nullable = <T>(type: 'string' | 'integer' | 'number', extra: Record<string, unknown> = {}) =>
  Type.Unsafe<T | null>({ type: [type, 'null'], ...extra });
const stringEnum = <T extends string>(values: readonly T[], extra: Record<string, unknown> = {}) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], ...extra });

const Timestamp = Type.String({ format: 'date-time', description: 'ISO-8601 UTC timestamp' });
const NullableTimestamp = nullable<string>('string', { format: 'date-time' });
/** Any JSON value (serialized with JSON.stringify). */
const AnyJson = Type.Unsafe<unknown>({ description: 'any JSON value' });

export const JOB_ID_PATTERN = '^job_[0-9a-hjkmnp-tv-z]{26}$';
export const RESULT_ID_PATTERN = '^res_[0-9a-hjkmnp-tv-z]{26}$';
export const JobStatusSchema = stringEnum(JOB_STATUSES);
export const UPLOAD_FORMATS = ['csv', 'ndjson'] as const;

// ---------------------------------------------------------------- requests

export const JobParams = Type.Object({
  job_id: Type.String({ pattern: JOB_ID_PATTERN, description: 'job id (`job_` + 26 base32 chars)' }),
});
export type JobParams = Static<typeof JobParams>;

export const ResultParams = Type.Object({
  result_id: Type.String({ pattern: RESULT_ID_PATTERN, description: 'result id (`res_` + 26 base32 chars)' }),
});
export type ResultParams = Static<typeof ResultParams>;

export const TenantHeaders = Type.Object({
  'x-org-id': Type.Optional(Type.String({ description: 'Tenant (org) id. Optional with an API key; must then name the key\'s org.' })),
  'x-tenant-id': Type.Optional(Type.String({ description: 'Alias of X-Org-Id. If both are sent they must agree.' })),
});

const submitBodyProps = {
  analyzer: Type.String({ minLength: 1, maxLength: 128, description: 'registered analyzer name' }),
  input: Type.Unsafe<unknown>({ description: 'analyzer input (any JSON), validated against the analyzer input schema' }),
  priority: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000, description: 'higher runs first within the org (default 0)' })),
  max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'attempts before the job fails (default per analyzer/config)' })),
};
export const SubmitBody = Type.Object(submitBodyProps, { additionalProperties: false });
export type SubmitBody = Static<typeof SubmitBody>;
/** The legacy route ignores unknown members: old clients may send fields we never read. */
export const LegacySubmitBody = Type.Object(submitBodyProps, { additionalProperties: true });

export const UPLOAD_CONTENT_TYPES = ['text/csv', 'application/x-ndjson', 'application/octet-stream'] as const;
const UploadBodySchema = Type.String({ format: 'binary', description: 'dataset file, streamed to disk (requires ?analyzer=, ?format= for octet-stream)' });

/** Body schema by content type: JSON submits, or a raw dataset upload. */
export function submitBodyContent(json: TSchema): Record<string, { schema: TSchema }> {
  const content: Record<string, { schema: TSchema }> = { 'application/json': { schema: json } };
  for (const ct of UPLOAD_CONTENT_TYPES) content[ct] = { schema: UploadBodySchema };
  return content;
}

export const SubmitHeaders = Type.Object({
  ...TenantHeaders.properties,
  'idempotency-key': Type.Optional(
    Type.String({ pattern: '^[\\x21-\\x7e]{1,255}$', description: '1–255 visible ASCII characters; same key + same body → same job' }),
  ),
});

export const SubmitQuery = Type.Object({
  analyzer: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'analyzer for a file upload' })),
  format: Type.Optional(stringEnum(UPLOAD_FORMATS, { description: 'dataset format of an upload (default from Content-Type)' })),
  priority: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000, description: 'priority of an upload job' })),
  max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'max attempts of an upload job' })),
});
export type SubmitQuery = Static<typeof SubmitQuery>;

export const LegacyQuery = Type.Object({
  ...SubmitQuery.properties,
  mode: Type.Optional(stringEnum(['sync', 'async'] as const, { description: '`async` behaves like `Prefer: respond-async`' })),
});
export type LegacyQuery = Static<typeof LegacyQuery>;

export const LegacyHeaders = Type.Object({
  ...SubmitHeaders.properties,
  prefer: Type.Optional(Type.String({ description: '`respond-async` answers 202 with the job reference instead of waiting' })),
});

export const ListQuery = Type.Object({
  status: Type.Optional(JobStatusSchema),
  analyzer: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  created_after: Type.Optional(Type.String({ maxLength: 64, description: 'ISO-8601 timestamp (exclusive lower bound)' })),
  created_before: Type.Optional(Type.String({ maxLength: 64, description: 'ISO-8601 timestamp (exclusive upper bound)' })),
  cursor: Type.Optional(Type.String({ maxLength: 512, description: '`next_cursor` of the previous page' })),
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
});
export type ListQuery = Static<typeof ListQuery>;

export const EventsQuery = Type.Object({
  after_seq: Type.Integer({ minimum: 0, default: 0, description: 'return events with event_seq > after_seq' }),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
});
export type EventsQuery = Static<typeof EventsQuery>;

export const StreamQuery = Type.Object({
  after_seq: Type.Optional(Type.Integer({ minimum: 0, description: 'resume point when no Last-Event-ID header is sent' })),
});
export type StreamQuery = Static<typeof StreamQuery>;

export const StreamHeaders = Type.Object({
  ...TenantHeaders.properties,
  'last-event-id': Type.Optional(Type.String({ pattern: '^\\d{1,15}$', description: 'event_seq of the last event received; the stream resumes after it' })),
});

export const OrgStreamQuery = Type.Object({
  after_position: Type.Optional(
    Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'resume point (an event position) when no Last-Event-ID header is sent; without either, the stream starts with the events committed from now on' }),
  ),
});
export type OrgStreamQuery = Static<typeof OrgStreamQuery>;

export const OrgStreamHeaders = Type.Object({
  ...TenantHeaders.properties,
  'last-event-id': Type.Optional(Type.String({ pattern: '^\\d{1,15}$', description: 'position of the last event received; the stream resumes after it' })),
});

export const PermalinkQuery = Type.Object({
  view: Type.Unsafe<'latest' | 'exact'>({ type: 'string', enum: ['latest', 'exact'], default: 'exact' }),
});
export type PermalinkQuery = Static<typeof PermalinkQuery>;

// ---------------------------------------------------------------- responses

export const JobErrorSchema = Type.Object({ code: Type.String(), message: Type.String() });

export const JobSchema = Type.Object(
  {
    job_id: Type.String(),
    analyzer: Type.String(),
    status: JobStatusSchema,
    attempt: Type.Integer(),
    max_attempts: Type.Integer(),
    priority: Type.Integer(),
    progress: Type.Object({ fraction: Type.Number({ minimum: 0, maximum: 1 }), message: nullable<string>('string') }),
    idempotency_key: nullable<string>('string'),
    created_at: Timestamp,
    started_at: NullableTimestamp,
    finished_at: NullableTimestamp,
    cancel_requested_at: NullableTimestamp,
    result_id: nullable<string>('string', { description: 'latest result (final if any, else newest partial)' }),
    partial_count: Type.Integer(),
    error: Type.Union([JobErrorSchema, Type.Null()]),
    status_url: Type.String(),
    events_url: Type.String(),
    stream_url: Type.String(),
    results_url: Type.String(),
  },
);
export type JobJson = Static<typeof JobSchema>;

export const CancelResponse = Type.Object({
  ...JobSchema.properties,
  cancel: stringEnum(['canceled', 'requested', 'noop'] as const, {
    description: 'canceled: the job is canceled; requested: running, the worker is aborting it; noop: it had already finished',
  }),
});

export const SubmitAccepted = Type.Object({
  job_id: Type.String(),
  status: JobStatusSchema,
  status_url: Type.String(),
  events_url: Type.String(),
  stream_url: Type.String(),
});
export type SubmitAccepted = Static<typeof SubmitAccepted>;

export const JobList = Type.Object({
  jobs: Type.Array(JobSchema),
  next_cursor: nullable<string>('string', { description: 'pass as `cursor` for the next (older) page; null at the end' }),
});

export const EventSchema = Type.Object({
  job_id: Type.String(),
  event_seq: Type.Integer(),
  type: stringEnum(EVENT_TYPES),
  status: JobStatusSchema,
  payload: AnyJson,
  occurred_at: Timestamp,
  position: Type.Integer(),
});
export type EventJson = Static<typeof EventSchema>;

export const EventList = Type.Object({
  job_id: Type.String(),
  events: Type.Array(EventSchema),
  next_after_seq: Type.Integer({ description: 'pass as `after_seq` to continue (the last event_seq returned, or the given after_seq)' }),
});

export const ResultSchema = Type.Object({
  result_id: Type.String(),
  kind: stringEnum(['partial', 'final'] as const),
  chunk_key: nullable<string>('string'),
  seq: Type.Integer(),
  payload: AnyJson,
  created_at: Timestamp,
});
export type ResultJson = Static<typeof ResultSchema>;

export const ResultList = Type.Object({ job_id: Type.String(), results: Type.Array(ResultSchema) });

export const PermalinkResponse = Type.Object({
  result_id: Type.String({ description: 'the resolved result' }),
  requested_result_id: Type.String(),
  projection_mode: stringEnum(['latest', 'exact'] as const),
  job_id: Type.String(),
  kind: stringEnum(['partial', 'final'] as const),
  chunk_key: nullable<string>('string'),
  seq: Type.Integer(),
  payload: AnyJson,
  created_at: Timestamp,
  job_status: JobStatusSchema,
});

export const LegacyResponse = Type.Object({
  job_id: Type.String(),
  result_id: Type.String(),
  status: Type.Literal('completed'),
  result: AnyJson,
});

export const HealthResponse = Type.Object({ status: Type.Literal('ok') });
export const ReadyResponse = Type.Object({ status: Type.Literal('ready'), checks: Type.Record(Type.String(), Type.String()) });

/** RFC 9457 problem details; extra members (job_id, errors, …) depend on the code. */
export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String(),
    instance: Type.String(),
  },
  { additionalProperties: true, description: 'application/problem+json' },
);

/** Error responses every route may answer (documented once, serialized with extras). */
export const problemResponses = { '4xx': ProblemSchema, '5xx': ProblemSchema } as const;
