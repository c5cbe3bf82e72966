/**
 * The error catalogue: every failure Upshift reports carries one of these stable codes.
 * Core knows no HTTP; `src/http/problem.ts` maps codes to status codes. `docs/errors.md`
 * lists every code, and a unit test fails when the two disagree.
 */
export const ERROR_CATALOGUE = {
  VALIDATION_FAILED: 'The request or input does not match the expected schema.',
  BODY_MALFORMED: 'The request body is not valid JSON (or not valid for its content type).',
  BODY_TOO_LARGE: 'The request body exceeds the configured size limit.',
  UNSUPPORTED_MEDIA_TYPE: 'The request content type is not accepted by this route.',
  CURSOR_INVALID: 'A pagination cursor could not be decoded.',
  ID_INVALID: 'A path or query id is not a well-formed id of the expected kind.',
  ROUTE_NOT_FOUND: 'No route matches the method and path.',
  TENANT_MISSING: 'No tenant context: send X-Org-Id (or X-Tenant-Id).',
  TENANT_INVALID: 'The tenant header is not a valid org id.',
  TENANT_MISMATCH: 'X-Org-Id and X-Tenant-Id disagree, or the credential belongs to another org.',
  AUTH_REQUIRED: 'The server requires credentials and none were sent.',
  AUTH_INVALID: 'The credentials sent are not valid.',
  AUTH_TOKEN_EXPIRED: 'The bearer token (JWT) has expired.',
  AUTH_TOKEN_INVALID: 'The bearer token (JWT) is not valid: malformed, not verifiable with a trusted key, or its claims are not accepted.',
  AUTH_JWKS_UNAVAILABLE: "The identity provider's key set (JWKS) could not be fetched to verify the token.",
  RATE_LIMITED: 'Too many requests for this tenant; retry later.',
  JOB_NOT_FOUND: 'No job with this id exists for this tenant.',
  JOB_INVALID_TRANSITION: 'The job state machine does not allow this transition.',
  JOB_LEASE_LOST: 'The worker no longer holds the lease of this job attempt; its write was discarded.',
  JOB_NOT_TERMINAL: 'The job has not reached a terminal state yet.',
  RESULT_NOT_FOUND: 'No result with this id exists for this tenant.',
  RESULT_GONE: 'The result existed but was removed by retention.',
  NOTIFICATION_NOT_FOUND: 'No notification with this id exists for this tenant.',
  WEBHOOK_NOT_FOUND: 'No webhook endpoint with this id exists for this tenant.',
  WEBHOOK_DELIVERY_NOT_FOUND: 'No delivery with this id exists for this webhook endpoint.',
  WEBHOOK_URL_INVALID: 'The webhook URL is not an absolute http(s) URL with a resolvable host.',
  WEBHOOK_URL_FORBIDDEN: 'The webhook URL points to a private, loopback or link-local address.',
  IDEMPOTENCY_CONFLICT: 'The Idempotency-Key was already used with a different request body.',
  ANALYZER_NOT_FOUND: 'No analyzer with this name is registered.',
  ANALYZER_INPUT_INVALID: 'The input does not match the analyzer input schema.',
  ANALYZER_FAILED: 'The analyzer threw an error.',
  ANALYZER_TIMEOUT: 'The analyzer exceeded its timeout.',
  JOB_CANCELED: 'The job was canceled.',
  LEASE_EXPIRED: 'The worker holding the job stopped heartbeating; the lease expired.',
  STORE_UNAVAILABLE: 'The store could not be reached or is busy.',
  QUEUE_UNAVAILABLE: 'The dispatch queue (Redis) could not be reached.',
  STORE_CONFLICT: 'A uniqueness or integrity constraint of the store was violated.',
  STORE_SCHEMA_TOO_NEW: 'The database was migrated by a newer Upshift version than this one.',
  STORE_NOT_MIGRATED: 'The database schema is older than this code; run `upshift migrate`.',
  PROJECTION_CONFLICT: "A read model's checkpoint moved since it was read (another runner or a rebuild committed first); nothing was written.",
  CONFIG_INVALID: 'A configuration value is invalid.',
  SHUTTING_DOWN: 'The process is shutting down and does not accept this work.',
  INTERNAL: 'An unexpected internal error.',
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export const ERROR_CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

/** The one base error. `details` is safe to show to the tenant that caused it. */
export class UpshiftError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ErrorCode,
    message?: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message ?? ERROR_CATALOGUE[code], options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UpshiftError';
    this.code = code;
    this.details = options?.details;
  }
}

export function isUpshiftError(e: unknown, code?: ErrorCode): e is UpshiftError {
  return e instanceof UpshiftError && (code === undefined || e.code === code);
}

/** Every `catch (e: unknown)` goes through here, so nothing downstream handles non-Errors. */
export function coerceError(e: unknown): Error {
  if (e instanceof Error) return e;
  if (typeof e === 'string') return new Error(e);
  try {
    return new Error(JSON.stringify(e));
  } catch {
    return new Error(String(e));
  }
}
