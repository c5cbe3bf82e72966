import type { FastifyInstance, FastifyReply } from 'fastify';
import { UpshiftError } from '../../core/errors.js';
import { parseJobId } from '../../core/ids.js';
import { orgOf, TENANT_CONFIG, type RouteContext } from '../context.js';
import { cancelState, toEventJson, toJobJson, toResultJson } from '../presenters.js';
import {
  CancelResponse,
  EventList,
  EventsQuery,
  JobList,
  JobParams,
  JobSchema,
  ListQuery,
  OrgStreamHeaders,
  OrgStreamQuery,
  problemResponses,
  ResultList,
  StreamHeaders,
  StreamQuery,
  TenantHeaders,
} from '../schemas.js';
import { streamJobEvents, streamOrgEvents } from '../sse.js';

/** Both event streams answer text/event-stream, or a problem before the stream starts. */
const SSE_RESPONSES = {
  200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: { type: 'string' } } } },
  ...problemResponses,
};

/** Job reads, event log, live stream, cancel and results: every one bound to the caller's org. */
export function jobRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { service } = ctx;
  /** Hands the connection to an SSE writer, tracked so a shutdown ends it; refused (503) while closing. */
  const openStream = async (reply: FastifyReply, write: Parameters<RouteContext['open']['track']>[0]): Promise<void> => {
    if (ctx.open.isClosing) throw new UpshiftError('SHUTTING_DOWN', 'the server is shutting down');
    reply.hijack();
    await ctx.open.track(write);
  };

  app.get<{ Querystring: ListQuery }>(
    '/analyze/jobs',
    {
      config: TENANT_CONFIG,
      schema: {
        tags: ['jobs'],
        summary: 'List own jobs, newest first',
        headers: TenantHeaders,
        querystring: ListQuery,
        response: { 200: JobList, ...problemResponses },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await service.list(orgOf(request), {
        ...(q.status !== undefined && { status: q.status }),
        ...(q.analyzer !== undefined && { analyzer: q.analyzer }),
        ...(q.created_after !== undefined && { createdAfter: parseTime('created_after', q.created_after) }),
        ...(q.created_before !== undefined && { createdBefore: parseTime('created_before', q.created_before) }),
        ...(q.cursor !== undefined && { cursor: q.cursor }),
        limit: q.limit,
      });
      return { jobs: page.jobs.map(toJobJson), next_cursor: page.nextCursor };
    },
  );

  app.get<{ Params: JobParams }>(
    '/analyze/jobs/:job_id',
    {
      config: TENANT_CONFIG,
      schema: {
        tags: ['jobs'],
        summary: 'Job status, progress, attempt, timestamps, error and latest result id',
        headers: TenantHeaders,
        params: JobParams,
        response: { 200: JobSchema, ...problemResponses },
      },
    },
    async (request) => toJobJson(await service.get(orgOf(request), parseJobId(request.params.job_id))),
  );

  app.get<{ Params: JobParams; Querystring: EventsQuery }>(
    '/analyze/jobs/:job_id/events',
    {
      config: TENANT_CONFIG,
      schema: {
        tags: ['jobs'],
        summary: 'Event log of a job, ascending event_seq',
        headers: TenantHeaders,
        params: JobParams,
        querystring: EventsQuery,
        response: { 200: EventList, ...problemResponses },
      },
    },
    async (request) => {
      const jobId = parseJobId(request.params.job_id);
      const { after_seq: afterSeq, limit } = request.query;
      const events = await service.events(orgOf(request), jobId, afterSeq, limit);
      const last = events[events.length - 1];
      return { job_id: jobId, events: events.map(toEventJson), next_after_seq: last ? last.eventSeq : afterSeq };
    },
  );

  app.get<{ Params: JobParams; Querystring: StreamQuery }>(
    '/analyze/jobs/:job_id/stream',
    {
      config: { ...TENANT_CONFIG, longRunning: true },
      // HEAD would hold the connection open for the job's lifetime without sending anything.
      exposeHeadRoute: false,
      schema: {
        tags: ['jobs'],
        summary: 'Server-Sent Events of the job',
        description:
          'Each event: `id: <event_seq>`, `event: <type>`, `data: <event JSON>`. Resumes after `Last-Event-ID` ' +
          '(or `?after_seq=`) without loss or duplicates; `: ping` comments keep the connection alive; ends after the terminal event.',
        headers: StreamHeaders,
        params: JobParams,
        querystring: StreamQuery,
        response: SSE_RESPONSES,
      },
    },
    async (request, reply) => {
      const org = orgOf(request);
      const jobId = parseJobId(request.params.job_id);
      const lastEventId = request.headers['last-event-id'];
      const afterSeq = typeof lastEventId === 'string' ? Number(lastEventId) : (request.query.after_seq ?? 0);
      await service.get(org, jobId); // 404 as a problem, before the stream starts
      await openStream(reply, (shutdown) =>
        streamJobEvents(reply.raw, { service, orgId: org, jobId, afterSeq, heartbeatMs: ctx.config.http.sseHeartbeatMs, logger: ctx.logger, shutdown }),
      );
    },
  );

  app.get<{ Querystring: OrgStreamQuery }>(
    '/analyze/events/stream',
    {
      config: { ...TENANT_CONFIG, longRunning: true },
      exposeHeadRoute: false,
      schema: {
        tags: ['jobs'],
        summary: "Server-Sent Events of every job of the caller's org",
        description:
          'Each event: `id: <position>`, `event: <type>`, `data: <event JSON>`, in commit order, for all of the org\'s jobs ' +
          '(submits, starts, progress, partials, terminal events). Without `Last-Event-ID` or `?after_position=` it starts with ' +
          'the events committed from now on; with one it first replays the stored events after that position, without loss or ' +
          'duplicates. `: ping` comments keep the connection alive; the stream does not end on its own.',
        headers: OrgStreamHeaders,
        querystring: OrgStreamQuery,
        response: SSE_RESPONSES,
      },
    },
    async (request, reply) => {
      const org = orgOf(request);
      const lastEventId = request.headers['last-event-id'];
      const resume = typeof lastEventId === 'string' ? Number(lastEventId) : (request.query.after_position ?? null);
      // Before the stream starts, so a store failure answers a problem (503), not a silent hang.
      const afterPosition = resume ?? (await service.headPosition());
      await openStream(reply, (shutdown) =>
        streamOrgEvents(reply.raw, { service, orgId: org, afterPosition, announce: resume === null, heartbeatMs: ctx.config.http.sseHeartbeatMs, logger: ctx.logger, shutdown }),
      );
    },
  );

  app.post<{ Params: JobParams }>(
    '/analyze/jobs/:job_id/cancel',
    {
      config: TENANT_CONFIG,
      schema: {
        tags: ['jobs'],
        summary: 'Cancel a job (idempotent)',
        description: 'queued → canceled now; running → cancel requested, the worker aborts; terminal → unchanged.',
        headers: TenantHeaders,
        params: JobParams,
        response: { 200: CancelResponse, ...problemResponses },
      },
    },
    async (request) => {
      const { job } = await service.cancel(orgOf(request), parseJobId(request.params.job_id));
      return { ...toJobJson(job), cancel: cancelState(job) };
    },
  );

  app.get<{ Params: JobParams }>(
    '/analyze/jobs/:job_id/results',
    {
      config: TENANT_CONFIG,
      schema: {
        tags: ['results'],
        summary: 'Partial and final results of a job, ascending seq',
        headers: TenantHeaders,
        params: JobParams,
        response: { 200: ResultList, ...problemResponses },
      },
    },
    async (request) => {
      const jobId = parseJobId(request.params.job_id);
      const results = await service.results(orgOf(request), jobId);
      return { job_id: jobId, results: results.map(toResultJson) };
    },
  );
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

function parseTime(field: string, raw: string): number {
  const ms = ISO_TIME.test(raw) ? Date.parse(raw) : NaN;
  if (!Number.isFinite(ms)) {
    throw new UpshiftError('VALIDATION_FAILED', `${field} must be an ISO-8601 timestamp`, {
      details: { errors: [{ in: 'querystring', field, message: 'must be an ISO-8601 timestamp' }] },
    });
  }
  return ms;
}
