import type { FastifyReply, FastifyRequest } from 'fastify';
import { coerceError, ERROR_CATALOGUE, isUpshiftError, UpshiftError, type ErrorCode } from '../core/errors.js';
import type { Logger } from '../ports/logger.js';
import { httpStatusFor } from './errorStatus.js';

/**
 * RFC 9457 problem details. Every error the API answers goes through `toProblem`, which maps
 * catalogue codes via HTTP_STATUS_BY_CODE and Fastify's own errors (parsing, validation,
 * limits) onto catalogue codes, so a client only ever matches on `code`.
 */

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface ProblemBody {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: ErrorCode;
  readonly instance: string;
  readonly [extra: string]: unknown;
}

export interface Problem {
  readonly status: number;
  readonly body: ProblemBody;
  readonly headers: Record<string, string>;
  /** Set for 5xx: the error to log (never sent to the client). */
  readonly internal: Error | null;
}

export const problemTypeUri = (code: ErrorCode): string => `https://upshift.dev/errors/${code.toLowerCase().replaceAll('_', '-')}`;

/** `JOB_NOT_FOUND` → `Job not found`. */
export const problemTitle = (code: ErrorCode): string => {
  const words = code.toLowerCase().split('_').join(' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
};

interface FastifyLikeError {
  code?: unknown;
  statusCode?: unknown;
  validation?: unknown;
  validationContext?: unknown;
  message?: unknown;
}

interface AjvLikeError {
  instancePath?: string;
  message?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

/** Ajv errors → `[{in, field, message}]` naming the failing member. */
export function validationErrors(validation: readonly AjvLikeError[], part: string): { in: string; field: string; message: string }[] {
  return validation.map((v) => {
    let path = v.instancePath ?? '';
    const missing = v.params?.missingProperty;
    if (v.keyword === 'required' && typeof missing === 'string') path += '/' + missing;
    const additional = v.params?.additionalProperty;
    if (v.keyword === 'additionalProperties' && typeof additional === 'string') path += '/' + additional;
    const field = path.replace(/^\//, '').replaceAll('/', '.') || part;
    return { in: part, field, message: v.message ?? 'is invalid' };
  });
}

function fromFastifyError(err: FastifyLikeError): UpshiftError | null {
  if (Array.isArray(err.validation)) {
    const part = typeof err.validationContext === 'string' ? err.validationContext : 'request';
    const errors = validationErrors(err.validation as AjvLikeError[], part);
    const summary = errors.map((e) => `${e.in}${e.field === e.in ? '' : '.' + e.field} ${e.message}`).join('; ');
    // Path parameters here are all ids: a malformed one is an id error, not a schema error.
    if (part === 'params') return new UpshiftError('ID_INVALID', `malformed id in path: ${summary}`, { details: { errors } });
    return new UpshiftError('VALIDATION_FAILED', `request is invalid: ${summary}`, { details: { errors } });
  }
  const code = typeof err.code === 'string' ? err.code : '';
  switch (code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new UpshiftError('BODY_MALFORMED', 'request body is not valid JSON');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new UpshiftError('BODY_MALFORMED', 'request body length does not match Content-Length');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new UpshiftError('BODY_TOO_LARGE', 'request body exceeds the size limit');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return new UpshiftError('UNSUPPORTED_MEDIA_TYPE', 'this route does not accept the request content type');
    case 'FST_ERR_BAD_URL':
      return new UpshiftError('VALIDATION_FAILED', 'the request URL is malformed');
    case 'FST_ERR_NOT_FOUND':
      return new UpshiftError('ROUTE_NOT_FOUND', 'no route matches the method and path');
    default:
  }
  // secure-json-parse and friends: a client error Fastify already classified.
  const status = typeof err.statusCode === 'number' ? err.statusCode : 0;
  if (status === 413) return new UpshiftError('BODY_TOO_LARGE', 'request body exceeds the size limit');
  if (status === 415) return new UpshiftError('UNSUPPORTED_MEDIA_TYPE', 'this route does not accept the request content type');
  if (status === 400 && err instanceof SyntaxError) return new UpshiftError('BODY_MALFORMED', 'request body is not valid JSON');
  if (status >= 400 && status < 500) return new UpshiftError('VALIDATION_FAILED', 'the request is invalid');
  return null;
}

export function toProblem(error: unknown, instance: string): Problem {
  const upshift = isUpshiftError(error) ? error : fromFastifyError((error ?? {}) as FastifyLikeError);
  if (!upshift) {
    const internal = coerceError(error);
    return { status: 500, body: body('INTERNAL', ERROR_CATALOGUE.INTERNAL, instance, undefined), headers: {}, internal };
  }
  const status = httpStatusFor(upshift.code);
  // Server-side failures carry no internals to the client; their message goes to the log.
  const detail = status >= 500 && upshift.code !== 'ANALYZER_TIMEOUT' && upshift.code !== 'SHUTTING_DOWN' ? ERROR_CATALOGUE[upshift.code] : upshift.message;
  const headers: Record<string, string> = {};
  if (status === 401) headers['www-authenticate'] = 'Bearer';
  const retryAfter = upshift.details?.retry_after_seconds;
  if (typeof retryAfter === 'number') headers['retry-after'] = String(retryAfter);
  // 504/503 answers that are part of the contract (sync timeout, shutdown) are not faults.
  const expected = upshift.code === 'ANALYZER_TIMEOUT' || upshift.code === 'SHUTTING_DOWN';
  return { status, body: body(upshift.code, detail, instance, upshift.details), headers, internal: status >= 500 && !expected ? upshift : null };
}

function body(code: ErrorCode, detail: string, instance: string, details: Readonly<Record<string, unknown>> | undefined): ProblemBody {
  return {
    ...details,
    type: problemTypeUri(code),
    title: problemTitle(code),
    status: httpStatusFor(code),
    detail,
    code,
    instance,
  };
}

export const requestPath = (request: FastifyRequest): string => {
  const url = request.url;
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
};

/** Sends `error` as problem+json; logs 5xx with the request context (never headers). */
export function sendProblem(request: FastifyRequest, reply: FastifyReply, error: unknown, logger: Logger): FastifyReply {
  const p = toProblem(error, requestPath(request));
  if (p.internal) {
    logger.error(
      { err: p.internal, code: p.body.code, req_id: request.id, method: request.method, route: request.routeOptions.url ?? requestPath(request), status: p.status },
      'request failed',
    );
  }
  return reply.code(p.status).headers(p.headers).type(PROBLEM_CONTENT_TYPE).send(p.body);
}
