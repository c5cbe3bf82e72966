import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { api, startServer, type ServerProc } from '../helpers/proc.js';
import { startReceiver, type Receiver } from '../helpers/webhookReceiver.js';
import { loadSqliteDriver } from '../../src/adapters/store/sqlite/sqliteDriver.js';

interface JobView { job_id: string; status: string }
interface Delivery { delivery_id: string; job_id: string; status: string; attempts: number }

const TERMINAL = ['async.job.completed', 'async.job.failed', 'async.job.canceled'];
const dir = mkdtempSync(join(tmpdir(), 'upshift-notify-crash-'));
const dbFile = join(dir, 'upshift.db');
const env = {
  UPSHIFT_DATABASE_URL: `sqlite:${dbFile}`,
  UPSHIFT_DATA_DIR: dir,
  UPSHIFT_LEASE_MS: '1500',
  UPSHIFT_HEARTBEAT_MS: '300',
  UPSHIFT_POLL_MS: '100',
  UPSHIFT_NOTIFICATIONS_POLL_MS: '100',
  UPSHIFT_WEBHOOK_ALLOW_PRIVATE: 'true',
  UPSHIFT_WEBHOOK_TIMEOUT_MS: '1000',
  UPSHIFT_WEBHOOK_BACKOFF_BASE_MS: '100',
  UPSHIFT_WEBHOOK_BACKOFF_MAX_MS: '300',
};
const procs: ServerProc[] = [];
let receiver: Receiver | undefined;
afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await receiver?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function until<T>(fn: () => Promise<T | null | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function kill9(p: ServerProc): Promise<void> {
  p.child.kill('SIGKILL');
  expect(await p.exited).toBe('SIGKILL');
}

/** What the store holds, read straight from the SQLite file. */
function storeRows() {
  // The driver this Node runs (better-sqlite3 13 on Node >= 22), as the store loads it.
  const Database = loadSqliteDriver();
  const db = new Database(dbFile, { readonly: true });
  try {
    return {
      terminalJobs: (db.prepare(`SELECT job_id FROM jobs WHERE status IN ('completed', 'failed', 'canceled')`).all() as { job_id: string }[]).map((r) => r.job_id),
      notifications: db.prepare(`SELECT job_id, type, COUNT(*) AS n FROM notifications GROUP BY job_id, type`).all() as { job_id: string; type: string; n: number }[],
      outbox: db.prepare(`SELECT job_id, type, channel, status, COUNT(*) AS n FROM notification_outbox GROUP BY job_id, type, channel`).all() as { job_id: string; type: string; channel: string; status: string; n: number }[],
    };
  } finally {
    db.close();
  }
}

describe('kill -9 between a terminal commit and its delivery', () => {
  it('after a restart the in-app notification and the webhook arrive, exactly once per dedupe key', async () => {
    receiver = await startReceiver();
    // Delivery off: terminal transitions commit their outbox entries, nothing is delivered.
    const first = await startServer({ ...env, UPSHIFT_NOTIFICATIONS_ENABLED: 'false' });
    procs.push(first);
    const hook = await api<{ webhook_id: string; secret: string }>(first.url, '/webhooks', { body: { url: receiver.url, event_types: TERMINAL } });
    expect(hook.status).toBe(201);
    receiver.setSecret(hook.body.secret);
    const jobs: string[] = [];
    for (let i = 0; i < 5; i++) jobs.push((await api<JobView>(first.url, '/analyze/jobs', { body: { analyzer: 'noop', input: i } })).body.job_id);
    for (const id of jobs) await until(async () => (await api<JobView>(first.url, `/analyze/jobs/${id}`)).body.status === 'completed');
    const pending = await api<{ deliveries: Delivery[] }>(first.url, `/webhooks/${hook.body.webhook_id}/deliveries`);
    expect(pending.body.deliveries.map((d) => [d.status, d.attempts])).toEqual(jobs.map(() => ['pending', 0]));
    expect((await api<{ notifications: unknown[] }>(first.url, '/notifications')).body.notifications).toEqual([]);
    await kill9(first);
    expect(receiver.received).toEqual([]);
    const before = storeRows();
    expect(before.notifications).toEqual([]);
    expect(before.outbox).toHaveLength(10); // one in_app + one webhook entry per job
    expect(before.outbox.every((r) => r.status === 'pending' && r.n === 1)).toBe(true);

    const second = await startServer(env);
    procs.push(second);
    for (const id of jobs) {
      const n = await until(async () => (await api<{ notifications: { type: string }[] }>(second.url, `/analyze/jobs/${id}/notifications`)).body.notifications);
      expect(n.map((x) => x.type)).toEqual(['async.job.completed']);
    }
    await until(async () => receiver!.successes().size === jobs.length);
    await until(async () => (await api<{ deliveries: Delivery[] }>(second.url, `/webhooks/${hook.body.webhook_id}/deliveries`)).body.deliveries.every((d) => d.status === 'delivered'));
    await new Promise((r) => setTimeout(r, 300));
    expect([...receiver.successes().values()]).toEqual(jobs.map(() => 1));
    expect(receiver.received.every((r) => r.verified)).toBe(true);
    const after = storeRows();
    expect(after.notifications.map((r) => r.n)).toEqual(jobs.map(() => 1));
    expect(after.outbox.every((r) => r.status === 'delivered' && r.n === 1)).toBe(true);

    // --- kill -9 while deliveries are in flight -------------------------------------------
    receiver.setMode('hang'); // every webhook attempt is in flight until the process dies
    const burst = await Promise.all(Array.from({ length: 40 }, (_, i) => api<JobView>(second.url, '/analyze/jobs', { body: { analyzer: 'noop', input: `b${i}` } })));
    const burstIds = burst.map((b) => b.body.job_id);
    await until(async () => receiver!.hangingCount >= 5);
    await kill9(second);

    receiver.setMode('ok');
    const third = await startServer(env);
    procs.push(third);
    const all = [...jobs, ...burstIds];
    for (const id of burstIds) await until(async () => ['completed', 'failed', 'canceled'].includes((await api<JobView>(third.url, `/analyze/jobs/${id}`)).body.status));
    for (const id of all) await until(async () => (await api<{ notifications: unknown[] }>(third.url, `/analyze/jobs/${id}/notifications`)).body.notifications.length === 1);
    // In-flight attempts cut short by the crash are retried once their claim lease runs out.
    await until(async () => {
      const ds = (await api<{ deliveries: Delivery[] }>(third.url, `/webhooks/${hook.body.webhook_id}/deliveries?limit=200`)).body.deliveries;
      return ds.length === all.length && ds.every((d) => d.status === 'delivered');
    }, 30_000);
    await new Promise((r) => setTimeout(r, 300));

    // Store: exactly one in-app notification per job and one delivered entry per dedupe key:
    // the first 5 jobs (delivery off) have an in_app and a webhook entry, the burst (in-app
    // written inline, with no outbox entry) only its webhook entry.
    const rows = storeRows();
    expect(new Set(rows.terminalJobs)).toEqual(new Set(all));
    expect(rows.notifications).toHaveLength(all.length);
    expect(rows.notifications.every((r) => r.n === 1)).toBe(true);
    expect(rows.outbox).toHaveLength(jobs.length + all.length);
    expect(rows.outbox.every((r) => r.status === 'delivered' && r.n === 1)).toBe(true);

    // Receiver: every event arrived; de-duplicated by webhook-id it is exactly one per job.
    // (An attempt that reached the receiver but whose outcome was not recorded may be sent
    // again after a crash — at-least-once — always with the same webhook-id.)
    const deliveries = (await api<{ deliveries: Delivery[] }>(third.url, `/webhooks/${hook.body.webhook_id}/deliveries?limit=200`)).body.deliveries;
    const successes = receiver.successes();
    expect(new Set(successes.keys())).toEqual(new Set(deliveries.map((d) => d.delivery_id)));
    const byJob = new Map(receiver.received.filter((r) => r.status === 200).map((r) => [r.payload!.data.job_id as string, r.id]));
    expect(new Set(byJob.keys())).toEqual(new Set(all));
    expect(receiver.received.every((r) => r.verified)).toBe(true);
    // Only the first phase's ids were answered 2xx in a process that then died after recording
    // them, so none of those may repeat.
    for (const id of jobs) expect(successes.get(byJob.get(id)!)).toBe(1);

    third.child.kill('SIGTERM');
    expect(await third.exited).toBe(0);
  });
});
