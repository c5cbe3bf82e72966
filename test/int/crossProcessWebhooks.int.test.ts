import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { createUpshift, type Upshift } from '../../src/main.js';
import { apiClient, eventually } from '../helpers/server.js';
import { dropSchema, requirePostgres, testSchemaName } from '../helpers/services.js';
import { startReceiver, type Receiver } from '../helpers/webhookReceiver.js';

const pgUrl = await requirePostgres();

/**
 * Scale-mode topology where the process that changes an endpoint is not the one that delivers:
 * an API instance with notifications off, and a worker instance (no HTTP) that runs the jobs
 * and delivers, with a 60 s fallback poll. Two composition roots on one schema stand in for
 * two processes (each has its own pool, feed and dispatcher).
 */
describe.skipIf(!pgUrl)('webhook endpoint changes reach the dispatchers of other processes (PostgreSQL)', () => {
  const schema = testSchemaName();
  const config = (role: 'api' | 'worker') =>
    loadConfig({
      UPSHIFT_DATABASE_URL: pgUrl!,
      UPSHIFT_DATABASE_SCHEMA: schema,
      UPSHIFT_HOST: '127.0.0.1',
      UPSHIFT_PORT: '0',
      UPSHIFT_LOG_LEVEL: 'silent',
      UPSHIFT_POLL_MS: '20',
      UPSHIFT_WORKER_ENABLED: String(role === 'worker'),
      UPSHIFT_NOTIFICATIONS_ENABLED: String(role === 'worker'),
      UPSHIFT_NOTIFICATIONS_POLL_MS: '60000',
      UPSHIFT_WEBHOOK_ALLOW_PRIVATE: 'true',
      UPSHIFT_WEBHOOK_TIMEOUT_MS: '1000',
    });
  let apiApp: Upshift;
  let workerApp: Upshift;
  let receiver: Receiver;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    apiApp = await createUpshift({ config: config('api') });
    const url = await apiApp.start();
    workerApp = await createUpshift({ config: config('worker'), http: false });
    await workerApp.start();
    receiver = await startReceiver();
    api = apiClient(String(url).replace(/\/$/, ''), 'umbrella');
  });
  afterAll(async () => {
    await workerApp?.close();
    await apiApp?.close();
    await receiver?.close();
    if (pgUrl) await dropSchema(pgUrl, schema);
  });

  const inApp = async (): Promise<number> => (await api<{ notifications: unknown[] }>('/notifications?channel=in_app&limit=50')).body.notifications.length;

  it('an endpoint created through the API process gets its first delivery from the worker process at once, not at its next poll (60 s)', async () => {
    // A job before any endpoint: the worker's dispatcher has read "no org has endpoints".
    await api('/analyze/jobs', { body: { analyzer: 'noop', input: 'before' } });
    await eventually(async () => (await inApp()) === 1);
    expect(workerApp.dispatcher).not.toBeNull();
    expect(apiApp.dispatcher).toBeNull();

    const created = await api('/webhooks', { body: { url: receiver.url, event_types: ['async.job.completed'] } });
    expect(created.status).toBe(201);
    receiver.setSecret(created.body.secret as string);
    const jobId = (await api<{ job_id: string }>('/analyze/jobs', { body: { analyzer: 'noop', input: 'after' } })).body.job_id;
    await eventually(async () => receiver.received.some((r) => r.status === 200 && r.payload?.data.job_id === jobId), 5_000);

    // Disabled through the API process: the worker's dispatcher forgets the org again, and the
    // org's next job starts no delivery.
    expect((await api(`/webhooks/${created.body.webhook_id as string}`, { method: 'PATCH', body: { enabled: false } })).status).toBe(200);
    const count = receiver.received.length;
    await api('/analyze/jobs', { body: { analyzer: 'noop', input: 'disabled' } });
    await eventually(async () => (await inApp()) === 3);
    await new Promise((r) => setTimeout(r, 200));
    expect(receiver.received).toHaveLength(count);
  });
});
