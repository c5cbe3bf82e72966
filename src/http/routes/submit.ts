import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { SubmitRequest } from '../../app/jobService.js';
import { UpshiftError } from '../../core/errors.js';
import type { OrgId } from '../../core/ids.js';
import type { Job } from '../../core/job.js';
import { orgOf, TENANT_CONFIG, type RouteContext } from '../context.js';
import { jobUrl, toAccepted } from '../presenters.js';
import { problemResponses, SubmitAccepted, SubmitBody, submitBodyContent, SubmitHeaders, SubmitQuery, UPLOAD_CONTENT_TYPES } from '../schemas.js';
import { randomUploadName, receiveUpload, UploadBody } from '../upload.js';

/**
 * POST /analyze/jobs — async submit, with a JSON body or a raw dataset upload. The submit
 * logic is shared with the legacy POST /analyze.
 */

/** Raw upload content types: the parser passes the request stream through unread. */
export function registerUploadParsers(scope: FastifyInstance): void {
  for (const ct of UPLOAD_CONTENT_TYPES) {
    scope.addContentTypeParser(ct, (_request, payload, done) => done(null, new UploadBody(payload, ct)));
  }
}

export interface SubmitQueryLike {
  readonly analyzer?: string | undefined;
  readonly format?: 'csv' | 'ndjson' | undefined;
  readonly priority?: number | undefined;
  readonly max_attempts?: number | undefined;
}

/** Submits the request's job (JSON or upload). Same key + same body → the same job. */
export async function submitFromRequest(request: FastifyRequest, ctx: RouteContext, query: SubmitQueryLike): Promise<{ job: Job; created: boolean }> {
  const org = orgOf(request);
  const rawKey = request.headers['idempotency-key'];
  const idempotencyKey = typeof rawKey === 'string' ? rawKey : null;
  // Set by the telemetry hook: the request's server span, or a valid incoming traceparent.
  const traceContext = request.upshiftTraceContext;
  const body = request.body;

  if (body instanceof UploadBody) return submitUpload(request, ctx, org, body, query, idempotencyKey, traceContext);
  if (body === undefined || body === null || typeof body !== 'object') {
    throw new UpshiftError('VALIDATION_FAILED', 'send a JSON body {analyzer, input} (or a dataset upload)', {
      details: { errors: [{ in: 'body', field: 'body', message: 'is required' }] },
    });
  }
  const b = body as SubmitBody;
  return ctx.service.submit(org, {
    analyzer: b.analyzer,
    input: b.input,
    ...(b.priority !== undefined && { priority: b.priority }),
    ...(b.max_attempts !== undefined && { maxAttempts: b.max_attempts }),
    idempotencyKey,
    traceContext,
  });
}

async function submitUpload(
  request: FastifyRequest,
  ctx: RouteContext,
  org: OrgId,
  upload: UploadBody,
  query: SubmitQueryLike,
  idempotencyKey: string | null,
  traceContext: string | null,
): Promise<{ job: Job; created: boolean }> {
  if (query.analyzer === undefined) {
    throw new UpshiftError('VALIDATION_FAILED', 'a dataset upload needs ?analyzer=<name>', {
      details: { errors: [{ in: 'querystring', field: 'analyzer', message: 'is required for an upload' }] },
    });
  }
  ctx.registry.get(query.analyzer); // ANALYZER_NOT_FOUND before reading a byte
  const format = query.format ?? formatOf(upload.mediaType);
  if (format === null) {
    throw new UpshiftError('VALIDATION_FAILED', 'an application/octet-stream upload needs ?format=csv|ndjson', {
      details: { errors: [{ in: 'querystring', field: 'format', message: 'is required for application/octet-stream' }] },
    });
  }
  const limit = ctx.config.http.uploadLimitBytes;
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    throw new UpshiftError('BODY_TOO_LARGE', `upload exceeds the limit of ${limit} bytes`, { details: { limit_bytes: limit } });
  }
  const received = await receiveUpload(upload, {
    // One folder per tenant: the dataset-profile analyzer only reads files of its own org.
    dir: join(ctx.config.dataDir, 'uploads', org),
    limitBytes: limit,
    // With a key, the same content under the same key maps to the same file, so a replay
    // is "the same body" for the idempotency check; without one, every upload is new.
    fileName: (sha) =>
      idempotencyKey === null
        ? randomUploadName(format)
        : `upk_${createHash('sha256').update(`${org}\0${idempotencyKey}\0${sha}`).digest('hex').slice(0, 40)}.${format}`,
  });
  const req: SubmitRequest = {
    analyzer: query.analyzer,
    input: { format, file: received.path },
    ...(query.priority !== undefined && { priority: query.priority }),
    ...(query.max_attempts !== undefined && { maxAttempts: query.max_attempts }),
    idempotencyKey,
    traceContext,
  };
  try {
    return await ctx.service.submit(org, req);
  } catch (e) {
    await rm(received.path, { force: true });
    throw e;
  }
}

function formatOf(mediaType: string): 'csv' | 'ndjson' | null {
  if (mediaType === 'text/csv') return 'csv';
  if (mediaType === 'application/x-ndjson') return 'ndjson';
  return null;
}

export function sendAccepted(reply: FastifyReply, r: { job: Job; created: boolean }): FastifyReply {
  reply.code(202).header('location', jobUrl(r.job.jobId));
  if (!r.created) reply.header('idempotent-replayed', 'true');
  return reply.send(toAccepted(r.job));
}

export function submitRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post<{ Querystring: SubmitQuery }>(
    '/analyze/jobs',
    {
      config: TENANT_CONFIG,
      schema: {
        tags: ['jobs'],
        summary: 'Submit a job',
        description:
          'Queues a job and answers 202 at once. JSON body `{analyzer, input}`, or a raw dataset upload ' +
          '(`text/csv`, `application/x-ndjson`, `application/octet-stream` with `?analyzer=` and `?format=`) streamed to disk; ' +
          'the job input then is `{format, file}`. With `Idempotency-Key`, the same key and body return the same job ' +
          '(`Idempotent-Replayed: true`); a different body answers 409 IDEMPOTENCY_CONFLICT.',
        headers: SubmitHeaders,
        querystring: SubmitQuery,
        body: { content: submitBodyContent(SubmitBody) },
        response: {
          202: { ...SubmitAccepted, description: 'accepted; `Location` names the job' },
          ...problemResponses,
        },
      },
    },
    async (request, reply) => sendAccepted(reply, await submitFromRequest(request, ctx, request.query)),
  );
}
