import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, eventually, startTestServer, type TestServer } from '../helpers/server.js';

interface Notification { notification_id: string; job_id: string; type: string; channel: string; payload: Record<string, unknown>; created_at: string; read_at: string | null }
interface Inbox { notifications: Notification[]; next_cursor: string | null }

/** In-app notification and webhook endpoint API over a real socket, strict SSRF policy. */
describe('notifications and webhooks API', () => {
  let server: TestServer;
  let acme: ReturnType<typeof apiClient>;
  let globex: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    server = await startTestServer({ UPSHIFT_WEBHOOK_ALLOW_PRIVATE: 'false', UPSHIFT_NOTIFICATIONS_POLL_MS: '50' });
    acme = apiClient(server.url, 'acme');
    globex = apiClient(server.url, 'globex');
  });
  afterAll(async () => {
    await server?.close();
  });

  async function terminalJob(api = acme, body: unknown = { analyzer: 'noop', input: { x: 1 } }): Promise<string> {
    const r = await api<{ job_id: string }>('/analyze/jobs', { body });
    expect(r.status).toBe(202);
    return r.body.job_id;
  }
  const notificationsOf = async (jobId: string, api = acme) => api<{ notifications: Notification[]; code?: string }>(`/analyze/jobs/${jobId}/notifications?channel=in_app&limit=20`);

  it('a terminal job gets exactly one in-app notification; another tenant gets 404', async () => {
    const jobId = await terminalJob();
    const n = await eventually(async () => (await notificationsOf(jobId)).body.notifications[0]);
    expect(n).toMatchObject({ job_id: jobId, type: 'async.job.completed', channel: 'in_app', read_at: null });
    expect(n.notification_id).toMatch(/^ntf_/);
    expect(n.payload).toMatchObject({ job_id: jobId, org_id: 'acme', status: 'completed', analyzer: 'noop', error: null });
    expect(typeof n.payload.result_id).toBe('string');
    expect((await notificationsOf(jobId)).body.notifications).toHaveLength(1);
    const other = await notificationsOf(jobId, globex);
    expect(other.status).toBe(404);
    expect(other.body.code).toBe('JOB_NOT_FOUND');
    expect((await acme('/analyze/jobs/job_nope/notifications')).status).toBe(400);
    expect((await acme(`/analyze/jobs/${jobId}/notifications?channel=email`)).body.code).toBe('VALIDATION_FAILED');
  });

  it('failed and canceled jobs notify with their type', async () => {
    const failed = await terminalJob(acme, { analyzer: 'sleep', input: { ms: 1, fail: 'permanent' } });
    const canceled = await terminalJob(acme, { analyzer: 'sleep', input: { ms: 60_000 } });
    await acme(`/analyze/jobs/${canceled}/cancel`, { method: 'POST' });
    const c = await eventually(async () => (await notificationsOf(canceled)).body.notifications[0]);
    expect(c.type).toBe('async.job.canceled');
    const f = await eventually(async () => (await notificationsOf(failed)).body.notifications[0]);
    expect(f.type).toBe('async.job.failed');
    expect(f.payload).toMatchObject({ status: 'failed', error: { code: expect.any(String) } });
  });

  it('inbox: latest first, cursor paging, unread filter, idempotent read, tenant-bound', async () => {
    const jobs: string[] = [];
    for (let i = 0; i < 3; i++) jobs.push(await terminalJob(globex));
    await eventually(async () => (await globex<Inbox>('/notifications?limit=200')).body.notifications.length >= 3);
    const all = (await globex<Inbox>('/notifications?channel=in_app&limit=200')).body.notifications;
    const stamps = all.map((n) => n.created_at);
    expect([...stamps].sort().reverse()).toEqual(stamps);
    const p1 = await globex<Inbox>('/notifications?limit=2');
    expect(p1.body.notifications).toHaveLength(2);
    expect(p1.body.next_cursor).not.toBeNull();
    const p2 = await globex<Inbox>(`/notifications?limit=200&cursor=${p1.body.next_cursor}`);
    expect([...p1.body.notifications, ...p2.body.notifications].map((n) => n.notification_id)).toEqual(all.map((n) => n.notification_id));
    expect((await globex('/notifications?cursor=garbage')).body.code).toBe('CURSOR_INVALID');

    const first = all[0]!;
    expect((await acme(`/notifications/${first.notification_id}/read`, { method: 'POST' })).status).toBe(404);
    const read1 = await globex<Notification>(`/notifications/${first.notification_id}/read`, { method: 'POST' });
    expect(read1.status).toBe(200);
    expect(read1.body.read_at).not.toBeNull();
    const read2 = await globex<Notification>(`/notifications/${first.notification_id}/read`, { method: 'POST' });
    expect(read2.body.read_at).toBe(read1.body.read_at);
    const unread = (await globex<Inbox>('/notifications?unread=true&limit=200')).body.notifications;
    expect(unread.map((n) => n.notification_id)).not.toContain(first.notification_id);
    expect(unread).toHaveLength(all.length - 1);
    const acmeInbox = (await acme<Inbox>('/notifications?limit=200')).body.notifications;
    expect(acmeInbox.some((n) => jobs.includes(n.job_id))).toBe(false);
    expect((await globex('/notifications/ntf_bad/read', { method: 'POST' })).body.code).toBe('ID_INVALID');
  });

  it('webhooks CRUD: secret shown once, tenant-bound, validated', async () => {
    const created = await acme<Record<string, unknown>>('/webhooks', { body: { url: 'https://93.184.216.34/hook', event_types: ['async.job.completed'], description: 'ci' } });
    expect(created.status).toBe(201);
    const id = created.body.webhook_id as string;
    expect(created.headers.get('location')).toBe(`/webhooks/${id}`);
    expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9+/=]{40,}$/);
    expect(created.body).toMatchObject({ url: 'https://93.184.216.34/hook', event_types: ['async.job.completed'], description: 'ci', enabled: true });
    const secret = created.body.secret as string;

    const one = await acme(`/webhooks/${id}`);
    const list = await acme('/webhooks');
    expect(one.status).toBe(200);
    expect(one.text).not.toContain(secret);
    expect(one.text).not.toContain('secret');
    expect(list.text).not.toContain(secret);
    expect(list.body.webhooks.map((w: { webhook_id: string }) => w.webhook_id)).toContain(id);

    for (const [method, path, body] of [
      ['GET', `/webhooks/${id}`, undefined],
      ['PATCH', `/webhooks/${id}`, { enabled: false }],
      ['DELETE', `/webhooks/${id}`, undefined],
      ['GET', `/webhooks/${id}/deliveries`, undefined],
    ] as const) {
      const r = await globex(path, { method, ...(body && { body }) });
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(r.body.code).toBe('WEBHOOK_NOT_FOUND');
    }
    expect((await globex('/webhooks')).body.webhooks).toEqual([]);

    const patched = await acme(`/webhooks/${id}`, { method: 'PATCH', body: { enabled: false, event_types: ['async.job.failed', 'async.job.canceled'] } });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ enabled: false, event_types: ['async.job.failed', 'async.job.canceled'] });
    expect(patched.text).not.toContain(secret);

    const deliveries = await acme(`/webhooks/${id}/deliveries`);
    expect(deliveries.body).toEqual({ deliveries: [], next_cursor: null });
    expect((await acme(`/webhooks/${id}/deliveries/msg_06h0ff331f1qm7hy0dt45366c0_c/redeliver`, { method: 'POST' })).body.code).toBe('WEBHOOK_DELIVERY_NOT_FOUND');

    expect((await acme(`/webhooks/${id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await acme(`/webhooks/${id}`)).status).toBe(404);
    expect((await acme(`/webhooks/${id}`, { method: 'DELETE' })).status).toBe(404);
    expect((await acme('/webhooks/whe_bad')).body.code).toBe('ID_INVALID');
  });

  it('refuses bad and private webhook URLs with 422 and a clear code', async () => {
    const post = (url: unknown, event_types: unknown = ['async.job.completed']) => acme('/webhooks', { body: { url, event_types } });
    for (const url of ['not a url', 'ftp://93.184.216.34/x', 'file:///etc/passwd', 'https://user:pw@93.184.216.34/x']) {
      const r = await post(url);
      expect(r.status, url).toBe(422);
      expect(r.body.code, url).toBe('WEBHOOK_URL_INVALID');
    }
    for (const url of ['http://127.0.0.1:8080/x', 'http://localhost/x', 'http://10.1.2.3/x', 'http://[::1]/x', 'http://169.254.169.254/latest/meta-data', 'http://[::ffff:192.168.0.1]/x', 'http://0.0.0.0/']) {
      const r = await post(url);
      expect(r.status, url).toBe(422);
      expect(r.body.code, url).toBe('WEBHOOK_URL_FORBIDDEN');
      expect(r.headers.get('content-type')).toContain('application/problem+json');
    }
    expect((await post('https://93.184.216.34/x', ['job.completed'])).body.code).toBe('VALIDATION_FAILED');
    expect((await post('https://93.184.216.34/x', [])).body.code).toBe('VALIDATION_FAILED');
    expect((await acme('/webhooks', { body: { url: 'https://93.184.216.34/x', event_types: ['async.job.failed'], secret: 'mine' } })).body.code).toBe('VALIDATION_FAILED');
    const created = await post('https://93.184.216.34/ok');
    const patch = await acme(`/webhooks/${created.body.webhook_id}`, { method: 'PATCH', body: { url: 'http://127.0.0.1/x' } });
    expect(patch.status).toBe(422);
    expect(patch.body.code).toBe('WEBHOOK_URL_FORBIDDEN');
    expect((await acme(`/webhooks/${created.body.webhook_id}`, { method: 'PATCH', body: {} })).body.code).toBe('VALIDATION_FAILED');
    // U+0000 (which PostgreSQL cannot store) is refused the same way on every store.
    const nul = await acme('/webhooks', { body: { url: 'https://93.184.216.34/x', event_types: ['async.job.failed'], description: 'a\u0000b' } });
    expect(nul.status).toBe(400);
    expect(nul.body.code).toBe('VALIDATION_FAILED');
    expect((await acme(`/webhooks/${created.body.webhook_id}`, { method: 'PATCH', body: { description: '\u0000' } })).status).toBe(400);
    expect((await post('https://93.184.216.34/\u0000x')).body.code).toBe('VALIDATION_FAILED');
    expect((await acme(`/webhooks/${created.body.webhook_id}`, { method: 'PATCH', body: { url: 'https://93.184.216.34/\u0000' } })).status).toBe(400);
  });
});

describe('per-tenant in-app rate limit', () => {
  let server: TestServer;
  beforeAll(async () => {
    // 60 per minute: a burst of 60, then one per second — the rest is delayed, not dropped.
    server = await startTestServer({ UPSHIFT_NOTIFICATIONS_IN_APP_RATE_PER_MINUTE: '60', UPSHIFT_NOTIFICATIONS_POLL_MS: '50', UPSHIFT_WORKER_CONCURRENCY: '64' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('delays notifications over the limit and delivers every one of them', async () => {
    const api = apiClient(server.url, 'busy');
    const quiet = apiClient(server.url, 'quiet');
    const jobs = await Promise.all(Array.from({ length: 63 }, (_, i) => api<{ job_id: string }>('/analyze/jobs', { body: { analyzer: 'noop', input: i } })));
    const ids = new Set(jobs.map((j) => j.body.job_id));
    const count = async () => (await api<Inbox>('/notifications?limit=200')).body.notifications.filter((n) => ids.has(n.job_id)).length;
    await eventually(async () => (await count()) >= 60, 10_000);
    // Another tenant is not held back by the busy one.
    const quietJob = (await quiet<{ job_id: string }>('/analyze/jobs', { body: { analyzer: 'noop', input: 0 } })).body.job_id;
    await eventually(async () => (await quiet<{ notifications: unknown[] }>(`/analyze/jobs/${quietJob}/notifications`)).body.notifications.length === 1, 2_000);
    const early = await count();
    expect(early).toBeLessThan(63);
    await eventually(async () => (await count()) === 63, 15_000);
    const notifications = (await api<Inbox>('/notifications?limit=200')).body.notifications;
    expect(new Set(notifications.map((n) => n.job_id)).size).toBe(63);
  });
});
