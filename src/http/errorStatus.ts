import type { ErrorCode } from '../core/errors.js';

/**
 * The HTTP status answered for each catalogue code (`application/problem+json`).
 * `docs/errors.md` documents the same table; `test/unit/errorsDoc.unit.test.ts` fails when
 * the two disagree. Being a `Record<ErrorCode, number>`, a new catalogue code does not
 * compile until it gets a status here.
 */
export const HTTP_STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = Object.freeze({
  VALIDATION_FAILED: 400,
  BODY_MALFORMED: 400,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  CURSOR_INVALID: 400,
  // A malformed id is a client error about the request's shape, not an existence answer:
  // it says nothing about which well-formed ids exist, so 400 leaks nothing.
  ID_INVALID: 400,
  ROUTE_NOT_FOUND: 404,
  TENANT_MISSING: 400,
  TENANT_INVALID: 400,
  // Headers that disagree, or a credential of another org: either way not allowed for this org.
  TENANT_MISMATCH: 403,
  AUTH_REQUIRED: 401,
  AUTH_INVALID: 401,
  AUTH_TOKEN_EXPIRED: 401,
  AUTH_TOKEN_INVALID: 401,
  // Not the caller's fault and not ours to hide as 500: retry once the IdP answers again.
  AUTH_JWKS_UNAVAILABLE: 503,
  RATE_LIMITED: 429,
  JOB_NOT_FOUND: 404,
  JOB_INVALID_TRANSITION: 409,
  JOB_LEASE_LOST: 409,
  JOB_NOT_TERMINAL: 409,
  RESULT_NOT_FOUND: 404,
  RESULT_GONE: 410,
  NOTIFICATION_NOT_FOUND: 404,
  WEBHOOK_NOT_FOUND: 404,
  WEBHOOK_DELIVERY_NOT_FOUND: 404,
  // The request is well-formed, but the URL it names cannot be accepted as a target.
  WEBHOOK_URL_INVALID: 422,
  WEBHOOK_URL_FORBIDDEN: 422,
  IDEMPOTENCY_CONFLICT: 409,
  ANALYZER_NOT_FOUND: 422,
  ANALYZER_INPUT_INVALID: 422,
  ANALYZER_FAILED: 422,
  ANALYZER_TIMEOUT: 504,
  JOB_CANCELED: 409,
  LEASE_EXPIRED: 500,
  STORE_UNAVAILABLE: 503,
  QUEUE_UNAVAILABLE: 503,
  STORE_CONFLICT: 409,
  STORE_SCHEMA_TOO_NEW: 503,
  STORE_NOT_MIGRATED: 503,
  // Internal to projection runners and rebuilds; never caused by a request.
  PROJECTION_CONFLICT: 409,
  CONFIG_INVALID: 500,
  SHUTTING_DOWN: 503,
  INTERNAL: 500,
});

/** Status for a code; unknown input (e.g. a code from a newer peer) answers 500. */
export function httpStatusFor(code: ErrorCode): number {
  return HTTP_STATUS_BY_CODE[code] ?? 500;
}
