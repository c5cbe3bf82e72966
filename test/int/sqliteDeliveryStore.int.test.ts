import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSqliteDriver } from '../../src/adapters/store/sqlite/sqliteDriver.js';

// The driver users get on this Node (better-sqlite3 12 on Node 20, 13 on Node >= 22).
const Database = loadSqliteDriver();
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DELIVERY_QUERY_SQL } from '../../src/adapters/store/sqlite/sqliteDeliveryQueries.js';
import { createSqliteJobStore } from '../../src/adapters/store/sqlite/sqliteJobStore.js';
import { asOrgId, newJobId, newResultId, newToken } from '../../src/core/ids.js';
import { outboxEntryId } from '../../src/core/notifications.js';
import { deliveryStoreContract, type DeliveryTestStore } from '../contracts/deliveryStore.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'upshift-delivery-'));
let n = 0;
const freshFile = (): string => join(dir, `store-${process.pid}-${++n}.db`);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

deliveryStoreContract('sqlite', async ({ inAppDelivery }) => {
  const store = createSqliteJobStore({ file: freshFile(), inAppDelivery });
  return { store, cleanup: () => store.close() };
});

describe('SQLite delivery specifics', () => {
  const open: DeliveryTestStore[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });
  const T0 = Date.UTC(2026, 0, 1);
  const org = asOrgId('org-a');

  async function completedJob(file: string, inAppDelivery: 'outbox' | 'inline' = 'outbox'): Promise<{ store: DeliveryTestStore; jobId: string }> {
    const store = createSqliteJobStore({ file, inAppDelivery });
    open.push(store);
    await store.migrate();
    await store.createWebhookEndpoint({ endpointId: newToken('whe_'), orgId: org, url: 'https://example.com/h', description: null, eventTypes: ['async.job.completed'], secret: 'whsec_eA==', now: T0 });
    const { job } = await store.submitJob({ jobId: newJobId(T0), orgId: org, analyzer: 'noop', input: 1, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now: T0 });
    const [c] = await store.claimJobs({ orgId: org, limit: 1, workerId: 'w', now: T0, leaseMs: 1000, analyzers: null });
    await store.finishJob({ orgId: org, jobId: c!.jobId, attempt: c!.attempt, leaseToken: c!.leaseToken }, { status: 'completed', resultId: newResultId(Date.now()), payload: 1 }, T0);
    return { store, jobId: job.jobId };
  }

  it('the outbox rows commit with the terminal transition, and a replayed insert adds nothing', async () => {
    const file = freshFile();
    const { jobId } = await completedJob(file);
    const db = new Database(file);
    try {
      const rows = db.prepare('SELECT entry_id, channel, kind, status FROM notification_outbox WHERE job_id = ? ORDER BY kind').all(jobId) as Array<{ entry_id: string; channel: string }>;
      expect(rows.map((r) => r.channel)).toEqual(['in_app', expect.stringMatching(/^webhook:whe_/)]);
      expect(rows[0]!.entry_id).toBe(outboxEntryId(jobId, 'async.job.completed', 'in_app'));
      // Replay the exact insert the terminal write ran: the dedupe key keeps it out.
      const insert = db.prepare(DELIVERY_QUERY_SQL.insertEntry!);
      const replay = insert.run(rows[0]!.entry_id, org, jobId, 'async.job.completed', 'in_app', 'in_app', null, '{}', T0, T0, T0, T0);
      expect(replay.changes).toBe(0);
      // Even under another entry id, the UNIQUE (job_id, type, channel) constraint holds.
      const other = insert.run('msg_other', org, jobId, 'async.job.completed', 'in_app', 'in_app', null, '{}', T0, T0, T0, T0);
      expect(other.changes).toBe(0);
      expect(db.prepare('SELECT COUNT(*) AS n FROM notification_outbox WHERE job_id = ?').get(jobId)).toEqual({ n: 2 });
    } finally {
      db.close();
    }
  });

  it('inline: the notification commits with the transition and no in-app entry is written (webhooks still are)', async () => {
    const file = freshFile();
    const { jobId } = await completedJob(file, 'inline');
    const db = new Database(file, { readonly: true });
    try {
      const rows = db.prepare('SELECT channel, status, attempts, delivered_at, last_attempt_at FROM notification_outbox WHERE job_id = ? ORDER BY kind').all(jobId);
      expect(rows).toEqual([{ channel: expect.stringMatching(/^webhook:whe_/), status: 'pending', attempts: 0, delivered_at: null, last_attempt_at: null }]);
      expect(db.prepare('SELECT COUNT(*) AS n, MIN(created_at) AS at FROM notifications WHERE job_id = ?').get(jobId)).toEqual({ n: 1, at: T0 });
    } finally {
      db.close();
    }
  });

  it('hot delivery queries use their indexes (no scan of the outbox or inbox history)', async () => {
    const file = freshFile();
    await completedJob(file);
    const db = new Database(file, { readonly: true });
    try {
      const plan = (name: string): string => {
        const sql = DELIVERY_QUERY_SQL[name]!;
        const named = Object.fromEntries([...sql.matchAll(/@(\w+)/g)].map((m) => [m[1], null]));
        const stmt = db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
        const rows = (Object.keys(named).length > 0 ? stmt.all(named) : stmt.all(...(sql.match(/\?/g) ?? []).map(() => null))) as Array<{ detail: string }>;
        return rows.map((r) => r.detail).join(' | ');
      };
      const expectations: Record<string, RegExp> = {
        subscribedEndpoints: /SEARCH webhook_endpoints USING INDEX webhook_endpoints_org \(org_id=\?\)/,
        dueEntries: /SEARCH o USING INDEX notification_outbox_due \(kind=\? AND next_attempt_at<\?\)/,
        pendingInAppBefore: /SEARCH notification_outbox USING INDEX notification_outbox_due \(kind=\?\)/,
        entryById: /SEARCH notification_outbox USING INDEX sqlite_autoindex_notification_outbox_1 \(entry_id=\?\)/,
        inbox: /SEARCH notifications USING INDEX notifications_inbox \(org_id=\?/,
        inboxUnread: /SEARCH notifications USING INDEX notifications_unread \(org_id=\?/,
        jobNotifications: /SEARCH notifications USING INDEX sqlite_autoindex_notifications_2 \(job_id=\?\)/,
        deliveries: /SEARCH notification_outbox USING INDEX notification_outbox_endpoint \(org_id=\? AND endpoint_id=\?/,
      };
      for (const [name, re] of Object.entries(expectations)) expect(plan(name), name).toMatch(re);
    } finally {
      db.close();
    }
  });

  it('a store reopened after a crash (no clean close) still has the committed entries', async () => {
    const file = freshFile();
    const { jobId } = await completedJob(file);
    // Simulates a process that died after COMMIT: a second connection sees the rows.
    const again = createSqliteJobStore({ file });
    open.push(again);
    await again.migrate();
    const entries = await again.claimOutbox({ kind: 'in_app', now: T0, limit: 10, leaseMs: 1000 });
    expect(entries.map((e) => e.jobId)).toEqual([jobId]);
  });
});
