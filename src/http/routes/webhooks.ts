import type { FastifyInstance } from 'fastify';
import type { NotificationService } from '../../app/notificationService.js';
import { orgOf, TENANT_CONFIG } from '../context.js';
import {
  CreateWebhookBody,
  DeliveriesQuery,
  DeliveryList,
  DeliveryParams,
  DeliverySchema,
  PatchWebhookBody,
  toDeliveryJson,
  toWebhookJson,
  WebhookCreated,
  WebhookList,
  WebhookParams,
  WebhookSchema,
} from '../notificationSchemas.js';
import { problemResponses, TenantHeaders } from '../schemas.js';

const schema = (summary: string, extra: Record<string, unknown>) => ({ tags: ['webhooks'], summary, headers: TenantHeaders, ...extra });

/** Webhook endpoints of the caller's org and their delivery log. The secret is answered once, by POST. */
export function webhookRoutes(app: FastifyInstance, notifications: NotificationService): void {
  app.post<{ Body: CreateWebhookBody }>(
    '/webhooks',
    {
      config: TENANT_CONFIG,
      schema: schema('Create a webhook endpoint (the signing secret is shown only in this answer)', {
        body: CreateWebhookBody,
        response: { 201: WebhookCreated, ...problemResponses },
      }),
    },
    async (request, reply) => {
      const b = request.body;
      const { endpoint, secret } = await notifications.createWebhook(orgOf(request), {
        url: b.url,
        eventTypes: b.event_types,
        ...(b.description !== undefined && { description: b.description }),
      });
      reply.code(201).header('location', `/webhooks/${endpoint.endpointId}`);
      return { ...toWebhookJson(endpoint), secret };
    },
  );

  app.get(
    '/webhooks',
    { config: TENANT_CONFIG, schema: schema('List webhook endpoints', { response: { 200: WebhookList, ...problemResponses } }) },
    async (request) => ({ webhooks: (await notifications.listWebhooks(orgOf(request))).map(toWebhookJson) }),
  );

  app.get<{ Params: WebhookParams }>(
    '/webhooks/:webhook_id',
    { config: TENANT_CONFIG, schema: schema('One webhook endpoint', { params: WebhookParams, response: { 200: WebhookSchema, ...problemResponses } }) },
    async (request) => toWebhookJson(await notifications.getWebhook(orgOf(request), request.params.webhook_id)),
  );

  app.patch<{ Params: WebhookParams; Body: PatchWebhookBody }>(
    '/webhooks/:webhook_id',
    {
      config: TENANT_CONFIG,
      schema: schema('Change url, event types, description or enabled', {
        params: WebhookParams,
        body: PatchWebhookBody,
        response: { 200: WebhookSchema, ...problemResponses },
      }),
    },
    async (request) => {
      const b = request.body;
      const updated = await notifications.updateWebhook(orgOf(request), request.params.webhook_id, {
        ...(b.url !== undefined && { url: b.url }),
        ...(b.event_types !== undefined && { eventTypes: b.event_types }),
        ...(b.description !== undefined && { description: b.description }),
        ...(b.enabled !== undefined && { enabled: b.enabled }),
      });
      return toWebhookJson(updated);
    },
  );

  app.delete<{ Params: WebhookParams }>(
    '/webhooks/:webhook_id',
    {
      config: TENANT_CONFIG,
      schema: schema('Delete a webhook endpoint and its delivery log', {
        params: WebhookParams,
        response: { 204: { type: 'null', description: 'deleted' }, ...problemResponses },
      }),
    },
    async (request, reply) => {
      await notifications.deleteWebhook(orgOf(request), request.params.webhook_id);
      return reply.code(204).send();
    },
  );

  app.get<{ Params: WebhookParams; Querystring: DeliveriesQuery }>(
    '/webhooks/:webhook_id/deliveries',
    {
      config: TENANT_CONFIG,
      schema: schema('Deliveries of an endpoint, newest first', {
        params: WebhookParams,
        querystring: DeliveriesQuery,
        response: { 200: DeliveryList, ...problemResponses },
      }),
    },
    async (request) => {
      const q = request.query;
      const page = await notifications.deliveries(orgOf(request), request.params.webhook_id, {
        ...(q.status !== undefined && { status: q.status }),
        ...(q.cursor !== undefined && { cursor: q.cursor }),
        limit: q.limit,
      });
      return { deliveries: page.items.map(toDeliveryJson), next_cursor: page.nextCursor };
    },
  );

  app.get<{ Params: DeliveryParams }>(
    '/webhooks/:webhook_id/deliveries/:delivery_id',
    { config: TENANT_CONFIG, schema: schema('One delivery', { params: DeliveryParams, response: { 200: DeliverySchema, ...problemResponses } }) },
    async (request) => toDeliveryJson(await notifications.delivery(orgOf(request), request.params.webhook_id, request.params.delivery_id)),
  );

  app.post<{ Params: DeliveryParams }>(
    '/webhooks/:webhook_id/deliveries/:delivery_id/redeliver',
    {
      config: TENANT_CONFIG,
      schema: schema('Send a delivery again (same webhook-id)', {
        params: DeliveryParams,
        response: { 202: DeliverySchema, ...problemResponses },
      }),
    },
    async (request, reply) => {
      const d = await notifications.redeliver(orgOf(request), request.params.webhook_id, request.params.delivery_id);
      reply.code(202);
      return toDeliveryJson(d);
    },
  );
}
