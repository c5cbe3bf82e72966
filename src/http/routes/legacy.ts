import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { isTerminal } from '../../core/jobState.js';
import { UpshiftError } from '../../core/errors.js';
import type { Job } from '../../core/job.js';
import type { OrgId } from '../../core/ids.js';
import { orgOf, TENANT_CONFIG, type RouteContext } from '../context.js';
import { jobUrl } from '../presenters.js';
import { LegacyHeaders, LegacyQuery, LegacyResponse, LegacySubmitBody, problemResponses, SubmitAccepted, submitBodyContent } from '../schemas.js';
import { sendAccepted, submitFromRequest } from './submit.js';

/**
 * The legacy synchronous POST /analyze: runs the analyzer as a job and answers with its final
 * result inline. Additive: the job is recorded like any other, and `Prefer: respond-async`
 * (or `?mode=async`) turns it into the async submit.
 */

type WaitEnd = 'timeout' | 'disconnect' | 'shutdown';

export function legacyRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post<{ Querystring: LegacyQuery }>(
    '/analyze',
    {
      config: { ...TENANT_CONFIG, longRunning: true },
      schema: {
        tags: ['legacy'],
        summary: 'Run an analyzer synchronously (legacy contract)',
        description:
          'Submits a job and waits for it: 200 with the final result; a failed job → 422 ANALYZER_FAILED, a canceled one → ' +
          '409 JOB_CANCELED, no result within the sync timeout → 504 ANALYZER_TIMEOUT (the job keeps running); every problem ' +
          'carries `job_id` and `status_url`. `Prefer: respond-async` or `?mode=async` answers 202 like POST /analyze/jobs; so does ' +
          'every request of a tenant with the feature flag `legacy_async_default` on, unless it asks `?mode=sync`.',
        headers: LegacyHeaders,
        querystring: LegacyQuery,
        body: { content: submitBodyContent(LegacySubmitBody) },
        response: {
          200: LegacyResponse,
          202: { ...SubmitAccepted, description: 'with Prefer: respond-async or ?mode=async' },
          ...problemResponses,
        },
      },
    },
    async (request, reply) => {
      const prefer = request.headers.prefer;
      const org = orgOf(request);
      const askedAsync = request.query.mode === 'async' || (typeof prefer === 'string' && /(^|[,;\s])respond-async\b/i.test(prefer));
      // Feature flag legacy_async_default: async unless the request insists on waiting (?mode=sync).
      const wantsAsync = askedAsync || (request.query.mode !== 'sync' && ctx.flags.decide('legacy_async_default', org).on);
      const submitted = await submitFromRequest(request, ctx, request.query);
      if (wantsAsync) return sendAccepted(reply, submitted);

      const { job, end } = await waitForJob(ctx, org, submitted.job, reply.raw);
      const ref = { job_id: job.jobId, status_url: jobUrl(job.jobId), job_status: job.status };
      switch (job.status) {
        case 'completed': {
          if (job.resultId === null) throw new UpshiftError('INTERNAL', `completed job ${job.jobId} has no result`);
          const p = await ctx.service.permalink(org, job.resultId, 'exact');
          return reply.code(200).send({ job_id: job.jobId, result_id: p.resultId, status: 'completed', result: p.result.payload });
        }
        case 'failed':
          throw new UpshiftError('ANALYZER_FAILED', `analyzer "${job.analyzer}" failed: ${job.error?.message ?? 'unknown error'}`, {
            details: { ...ref, error: job.error },
          });
        case 'canceled':
          throw new UpshiftError('JOB_CANCELED', `job ${job.jobId} was canceled`, { details: ref });
        default:
      }
      if (end === 'shutdown') {
        reply.header('connection', 'close');
        throw new UpshiftError('SHUTTING_DOWN', `the server is shutting down; job ${job.jobId} continues, poll status_url`, { details: ref });
      }
      // timeout (or a client that left, which never reads this)
      throw new UpshiftError('ANALYZER_TIMEOUT', `no result within ${ctx.config.http.syncTimeoutMs} ms; job ${job.jobId} continues, poll status_url`, {
        details: ref,
      });
    },
  );
}

/** Waits until terminal, the sync timeout, client disconnect or server shutdown. */
async function waitForJob(
  ctx: RouteContext,
  org: OrgId,
  job: Job,
  res: ServerResponse,
): Promise<{ job: Job; end: WaitEnd | null }> {
  if (isTerminal(job.status)) return { job, end: null };
  return ctx.open.track(async (shutdown) => {
    const ac = new AbortController();
    let end: WaitEnd | null = null;
    const stop = (why: WaitEnd) => {
      end ??= why;
      ac.abort(why);
    };
    const timer = setTimeout(() => stop('timeout'), ctx.config.http.syncTimeoutMs);
    const onClose = () => {
      if (!res.writableEnded) stop('disconnect');
    };
    const onShutdown = () => stop('shutdown');
    res.on('close', onClose);
    shutdown.addEventListener('abort', onShutdown);
    if (shutdown.aborted) onShutdown();
    try {
      const final = await ctx.service.waitForTerminal(org, job.jobId, ac.signal);
      return { job: final, end: isTerminal(final.status) ? null : end };
    } finally {
      clearTimeout(timer);
      res.off('close', onClose);
      shutdown.removeEventListener('abort', onShutdown);
    }
  });
}
