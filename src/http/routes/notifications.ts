import type { FastifyInstance } from 'fastify';
import type { NotificationService } from '../../app/notificationService.js';
import { parseJobId } from '../../core/ids.js';
import { orgOf, TENANT_CONFIG } from '../context.js';
import {
  InboxQuery,
  JobNotificationList,
  JobNotificationsQuery,
  NotificationList,
  NotificationParams,
  NotificationSchema,
  toNotificationJson,
} from '../notificationSchemas.js';
import { JobParams, problemResponses, TenantHeaders } from '../schemas.js';

/** In-app notifications: per job, and the tenant inbox. Every route is bound to the caller's org. */
export function notificationRoutes(app: FastifyInstance, notifications: NotificationService): void {
  app.get<{ Params: JobParams; Querystring: JobNotificationsQuery }>(
    '/analyze/jobs/:job_id/notifications',
    {
      config: TENANT_CONFIG,
      schema: {
        tags: ['notifications'],
        summary: 'Notifications of a job, latest first',
        headers: TenantHeaders,
        params: JobParams,
        querystring: JobNotificationsQuery,
        response: { 200: JobNotificationList, ...problemResponses },
      },
    },
    async (request) => {
      const jobId = parseJobId(request.params.job_id);
      const list = await notifications.jobNotifications(orgOf(request), jobId, request.query.channel, request.query.limit);
      return { job_id: jobId, notifications: list.map(toNotificationJson) };
    },
  );

  app.get<{ Querystring: InboxQuery }>(
    '/notifications',
    {
      config: TENANT_CONFIG,
      schema: {
        tags: ['notifications'],
        summary: 'The tenant inbox, latest first',
        headers: TenantHeaders,
        querystring: InboxQuery,
        response: { 200: NotificationList, ...problemResponses },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await notifications.inbox(orgOf(request), { unreadOnly: q.unread, ...(q.cursor !== undefined && { cursor: q.cursor }), limit: q.limit });
      return { notifications: page.items.map(toNotificationJson), next_cursor: page.nextCursor };
    },
  );

  app.post<{ Params: NotificationParams }>(
    '/notifications/:notification_id/read',
    {
      config: TENANT_CONFIG,
      schema: {
        tags: ['notifications'],
        summary: 'Mark a notification read (idempotent)',
        headers: TenantHeaders,
        params: NotificationParams,
        response: { 200: NotificationSchema, ...problemResponses },
      },
    },
    async (request) => toNotificationJson(await notifications.markRead(orgOf(request), request.params.notification_id)),
  );
}
