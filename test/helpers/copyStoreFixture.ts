import { loadConfig, type ConfigKey } from '../../src/config/config.js';
import { asJobId, asOrgId } from '../../src/core/ids.js';
import { createUpshift, type Upshift } from '../../src/main.js';
import { silentLogger } from '../../src/ports/logger.js';
import { startReceiver } from './webhookReceiver.js';

/** An in-process Upshift on an existing store (SQLite file or PostgreSQL schema), no HTTP unless asked. */
export async function openApp(database: string, overrides: Partial<Record<ConfigKey, string>> = {}, http = false): Promise<Upshift> {
  const config = loadConfig(
    {},
    {
      UPSHIFT_HOST: '127.0.0.1',
      UPSHIFT_PORT: '0',
      UPSHIFT_DATABASE_URL: database,
      UPSHIFT_POLL_MS: '20',
      UPSHIFT_LOG_LEVEL: 'silent',
      UPSHIFT_WORKER_CONCURRENCY: '64',
      UPSHIFT_SHUTDOWN_GRACE_MS: '2000',
      UPSHIFT_CANCEL_GRACE_MS: '200',
      UPSHIFT_BACKOFF_BASE_MS: '20',
      UPSHIFT_BACKOFF_MAX_MS: '50',
      UPSHIFT_NOTIFICATIONS_POLL_MS: '50',
      UPSHIFT_WEBHOOK_ALLOW_PRIVATE: 'true',
      UPSHIFT_WEBHOOK_TIMEOUT_MS: '500',
      UPSHIFT_WEBHOOK_BACKOFF_BASE_MS: '60000',
      ...overrides,
    },
  );
  const app = await createUpshift({ config, http, logger: silentLogger });
  await app.start();
  return app;
}

const until = async (cond: () => Promise<boolean>, timeoutMs: number): Promise<void> => {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`fixture: condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

/**
 * A realistic embedded store built by the real runtime (worker, dispatcher, retention) on
 * `file`: per org API keys (one revoked), completed jobs with partials and progress, failed
 * jobs (permanent, and retryable ones that ran out of attempts), canceled running jobs, queued
 * and queued-then-canceled jobs, retention tombstones (removed results), in-app notifications
 * (some read), webhook endpoints with delivered and failing deliveries, a deleted endpoint.
 * About 7 events per completed job: queued, started, 3 partials, progress, completed.
 */
export async function buildEmbeddedStore(file: string, orgs: readonly string[], jobsPerOrg: number): Promise<void> {
  const receiver = await startReceiver();
  let app = await openApp(`sqlite:${file}`);
  try {
    for (const [i, org] of orgs.entries()) {
      const o = asOrgId(org);
      const keys = [await app.apiKeys.create(o, `ci-${org}`), await app.apiKeys.create(o, null)];
      await app.apiKeys.revoke((keys[1] as { keyId: string }).keyId);
      if (i === 0) {
        const { secret } = await app.notifications.createWebhook(o, { url: receiver.url, eventTypes: ['async.job.failed', 'async.job.canceled'], description: 'ops' });
        receiver.setSecret(secret);
      }
      if (i === 1) {
        // Nobody listens there: deliveries fail and wait for their retry (last_error set).
        await app.notifications.createWebhook(o, { url: 'http://127.0.0.1:9/down', eventTypes: ['async.job.failed'] });
        const gone = await app.notifications.createWebhook(o, { url: 'http://127.0.0.1:9/gone', eventTypes: ['async.job.failed'] });
        await app.notifications.deleteWebhook(o, gone.endpoint.endpointId);
      }
    }
    // Wave 1: jobs whose results retention removes (tombstones answer 410 on their permalinks).
    await submitAll(app, orgs, 40, () => ({ analyzer: 'sleep', input: { ms: 0, steps: 2 } }));
    await quiesce(app);
    await app.runRetention({ resultsTtlMs: 0, eventsTtlMs: 10 * 365 * 86_400_000, dryRun: false });

    // Wave 2, the bulk: a realistic mix per org.
    await submitAll(app, orgs, jobsPerOrg, (n) => {
      const r = n % 40;
      if (r === 0 || r === 20) return { analyzer: 'sleep', input: { ms: 1, fail: 'permanent' } };
      if (r === 1) return { analyzer: 'sleep', input: { ms: 1, fail: 'retryable' }, maxAttempts: 2 };
      if (r === 2) return { analyzer: 'sleep', input: { ms: 60_000, steps: 1000 }, cancel: true };
      return { analyzer: 'sleep', input: { ms: 0, steps: 3 }, priority: n % 3 };
    });
    await quiesce(app);
    // Read a third of every inbox.
    for (const org of orgs) {
      const page = await app.notifications.inbox(asOrgId(org), { unreadOnly: false, limit: 200 });
      for (const n of page.items.filter((_, k) => k % 3 === 0)) await app.notifications.markRead(asOrgId(org), n.notificationId);
    }
    await app.close();
    // Queued work: no worker and no dispatcher, so these stay queued (some canceled while queued).
    app = await openApp(`sqlite:${file}`, { UPSHIFT_WORKER_ENABLED: 'false', UPSHIFT_NOTIFICATIONS_ENABLED: 'false' });
    await submitAll(app, orgs, 30, (n) => ({ analyzer: 'sleep', input: { ms: 5 }, cancel: n % 3 === 0 }));
  } finally {
    await app.close();
    await receiver.close();
  }
}

interface Spec {
  readonly analyzer: string;
  readonly input: unknown;
  readonly priority?: number;
  readonly maxAttempts?: number;
  readonly cancel?: boolean;
}

/** Submits in chunks of 500 per org; jobs marked `cancel` are canceled right after their chunk (running or still queued). */
export async function submitAll(app: Upshift, orgs: readonly string[], perOrg: number, spec: (n: number) => Spec): Promise<void> {
  const CHUNK = 500;
  for (let start = 0; start < perOrg; start += CHUNK) {
    const toCancel: [string, string][] = [];
    await Promise.all(
      orgs.flatMap((org) =>
        Array.from({ length: Math.min(CHUNK, perOrg - start) }, async (_, k) => {
          const s = spec(start + k);
          const { job } = await app.service.submit(asOrgId(org), {
            analyzer: s.analyzer,
            input: s.input,
            ...(s.priority !== undefined && { priority: s.priority }),
            ...(s.maxAttempts !== undefined && { maxAttempts: s.maxAttempts }),
          });
          if (s.cancel) toCancel.push([org, job.jobId]);
        }),
      ),
    );
    await Promise.all(toCancel.map(([org, jobId]) => app.service.cancel(asOrgId(org), asJobId(jobId))));
  }
}

/** Every job terminal (or long-running, waiting for its cancel) and the in-app outbox drained. */
async function quiesce(app: Upshift): Promise<void> {
  await until(async () => {
    const q = await app.store.queueStats(Date.now());
    return q.queued === 0 && q.running === 0;
  }, 60_000);
  await until(async () => (await app.deliveries.countTerminalWithoutInApp(Date.now())) === 0, 60_000);
}
