import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPool, resolveNames } from '../../src/adapters/store/postgres/postgresConnection.js';
import { createPostgresJobStore } from '../../src/adapters/store/postgres/postgresJobStore.js';
import { applyMigrations, loadMigrations } from '../../src/adapters/store/postgres/postgresMigrator.js';
import { buildSql } from '../../src/adapters/store/postgres/postgresSql.js';
import { asOrgId, newJobId, newResultId, newToken } from '../../src/core/ids.js';
import { notificationIdOf, outboxEntryId } from '../../src/core/notifications.js';
import { deliveryStoreContract, type DeliveryTestStore } from '../contracts/deliveryStore.contract.js';
import { dropSchema, requirePostgres, testSchemaName } from '../helpers/services.js';

const url = await requirePostgres();

describe.skipIf(!url)('PostgreSQL delivery store', () => {
  // A fresh schema per test (the contract wants an empty store each time), dropped afterwards.
  deliveryStoreContract('postgres', async ({ inAppDelivery }) => {
    const schema = testSchemaName();
    const store = createPostgresJobStore({ url: url!, schema, poolSize: 4, inAppDelivery });
    return {
      store,
      cleanup: async () => {
        await store.close();
        await dropSchema(url!, schema);
      },
    };
  });
});

describe.skipIf(!url)('PostgreSQL delivery specifics', () => {
  const T0 = Date.UTC(2026, 0, 1);
  const org = asOrgId('org-a');
  const schema = testSchemaName();
  let store: DeliveryTestStore;
  let admin: pg.Client;
  beforeAll(async () => {
    store = createPostgresJobStore({ url: url!, schema, poolSize: 4 });
    await store.migrate();
    admin = new pg.Client({ connectionString: url! });
    await admin.connect();
  });
  afterEach(async () => {
    await admin.query(`RESET enable_seqscan`);
  });
  afterAll(async () => {
    await store?.close();
    await admin?.end();
    await dropSchema(url!, schema);
  });

  const completedJob = async (): Promise<string> => {
    const { job } = await store.submitJob({ jobId: newJobId(T0), orgId: org, analyzer: 'noop', input: 1, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now: T0 });
    const [c] = await store.claimJobs({ orgId: org, limit: 1, workerId: 'w', now: T0, leaseMs: 1000, analyzers: null });
    await store.finishJob({ orgId: org, jobId: c!.jobId, attempt: c!.attempt, leaseToken: c!.leaseToken }, { status: 'completed', resultId: newResultId(Date.now()), payload: 1 }, T0);
    return job.jobId;
  };

  it('the outbox rows commit with the completion, and a replayed insert adds nothing', async () => {
    await store.createWebhookEndpoint({ endpointId: newToken('whe_'), orgId: org, url: 'https://example.com/h', description: null, eventTypes: ['async.job.completed'], secret: 'whsec_eA==', now: T0 });
    const jobId = await completedJob();
    const rows = (await admin.query(`SELECT entry_id, channel, payload FROM "${schema}".notification_outbox WHERE job_id = $1 ORDER BY kind`, [jobId])).rows;
    expect(rows.map((r) => r.channel)).toEqual(['in_app', expect.stringMatching(/^webhook:whe_/)]);
    expect(rows[0].entry_id).toBe(outboxEntryId(jobId, 'async.job.completed', 'in_app'));
    expect(rows[1].entry_id).toBe(outboxEntryId(jobId, 'async.job.completed', rows[1].channel));
    expect(rows[0].payload).toEqual({ job_id: jobId, org_id: org, status: 'completed', analyzer: 'noop', result_id: expect.stringMatching(/^res_/), error: null, finished_at: new Date(T0).toISOString() });
    // Replay the exact insert the generic terminal path runs: the dedupe key keeps it out,
    // even under another entry id.
    const sql = buildSql(schema);
    await admin.query('BEGIN');
    try {
      for (const id of [rows[0].entry_id, 'msg_other']) {
        const r = await admin.query(sql.insertOutbox, [[id], [org], [jobId], ['async.job.completed'], ['{}'], [T0], [T0], false, ['ntf_x']]);
        expect(r.rowCount).toBe(0);
      }
    } finally {
      await admin.query('ROLLBACK');
    }
    expect(Number((await admin.query(`SELECT count(*) AS n FROM "${schema}".notification_outbox WHERE job_id = $1`, [jobId])).rows[0].n)).toBe(2);
  });

  it('inline in-app delivery: the notification is the delivery record, no in-app outbox row (both terminal paths)', async () => {
    const inlineSchema = testSchemaName();
    const inline = createPostgresJobStore({ url: url!, schema: inlineSchema, poolSize: 2, inAppDelivery: 'inline' });
    try {
      await inline.migrate();
      await inline.createWebhookEndpoint({ endpointId: newToken('whe_'), orgId: org, url: 'https://example.com/h', description: null, eventTypes: ['async.job.completed', 'async.job.failed'], secret: 'whsec_eA==', now: T0 });
      const ids: string[] = [];
      for (const outcome of [{ status: 'completed' as const, resultId: newResultId(Date.now()), payload: 1 }, { status: 'failed' as const, error: { code: 'E', message: 'x' } }]) {
        const { job } = await inline.submitJob({ jobId: newJobId(T0 + ids.length), orgId: org, analyzer: 'noop', input: 1, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now: T0 });
        const [c] = await inline.claimJobsById({ jobs: [{ orgId: org, jobId: job.jobId }], workerId: 'w', now: T0, leaseMs: 1000 });
        if (c?.kind !== 'claimed') throw new Error('not claimed');
        await inline.finishJob({ orgId: org, jobId: job.jobId, attempt: 1, leaseToken: c.job.leaseToken }, outcome, T0 + 1);
        ids.push(job.jobId);
      }
      for (const jobId of ids) {
        const outbox = (await admin.query(`SELECT channel, status FROM "${inlineSchema}".notification_outbox WHERE job_id = $1`, [jobId])).rows;
        expect(outbox).toEqual([{ channel: expect.stringMatching(/^webhook:whe_/), status: 'pending' }]);
        const notes = (await admin.query(`SELECT channel, created_at FROM "${inlineSchema}".notifications WHERE job_id = $1`, [jobId])).rows;
        expect(notes).toEqual([{ channel: 'in_app', created_at: String(T0 + 1) }]);
      }
    } finally {
      await inline.close();
      await dropSchema(url!, inlineSchema);
    }
  });

  it('notification data keeps its key order through jsonb (same bytes as from the SQLite store)', async () => {
    const jobId = await completedJob();
    const [e] = (await store.claimOutbox({ kind: 'in_app', now: T0 + 1, limit: 100, leaseMs: 1000 })).filter((x) => x.jobId === jobId);
    const order = ['job_id', 'org_id', 'status', 'analyzer', 'result_id', 'error', 'finished_at'];
    expect(Object.keys(e!.data as object)).toEqual(order);
    const n = await store.completeInApp(e!, T0 + 2);
    expect(Object.keys(n.payload as object)).toEqual(order);
    const [listed] = await store.listJobNotifications(org, n.jobId, 'in_app', 1);
    expect(JSON.stringify(listed!.payload)).toBe(JSON.stringify(e!.data));
  });

  it('hot delivery statements use their indexes', async () => {
    await admin.query(`SET enable_seqscan = off`);
    const sql = buildSql(schema);
    const plan = async (text: string, values: unknown[]): Promise<string> =>
      (await admin.query(`EXPLAIN ${text}`, values)).rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(await plan(sql.claimOutbox, ['in_app', T0, 10, T0, 't'])).toMatch(/notification_outbox_due/);
    expect(await plan(sql.pendingInAppBefore, [T0])).toMatch(/notification_outbox_due/);
    expect(await plan(sql.inbox, [org, T0, '~', 10])).toMatch(/notifications_inbox/);
    expect(await plan(sql.inboxUnread, [org, T0, '~', 10])).toMatch(/notifications_unread/);
    expect(await plan(sql.deliveries, [org, 'whe_x', null, T0, '~', 10])).toMatch(/notification_outbox_endpoint/);
    // No index on the inbox's job_id (0014): a job's notifications are its three primary keys.
    expect(await plan(sql.jobNotifications, [org, 'job_x', 'in_app', 10])).toMatch(/Index Scan using notifications_pkey on notifications[^\n]*\n\s*Index Cond: \(notification_id = n_key\.id\)/);
    // Retention counts and deletes a job's inbox rows the same way.
    for (const [text, values] of [
      [sql.retentionScan, ['', '', 10]],
      [sql.retentionPlan, [[org], ['job_x'], 10]],
      [sql.retentionPurge, [[org], ['job_x'], [1], [1], T0, [1], [1]]],
    ] as const) {
      const p = await plan(text, [...values]);
      expect(p).toMatch(/Index Scan using notifications_pkey on notifications/);
      expect(p).not.toMatch(/notifications_inbox|notifications_unread/);
    }
    const indexes = await admin.query(`SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'notifications' ORDER BY 1`, [schema]);
    expect(indexes.rows.map((r) => r.indexname)).toEqual(['notifications_inbox', 'notifications_pkey', 'notifications_unread']);
  });

  it('an inbox row must carry the id its job and type spell (0014), which is what dedupes it', async () => {
    const jobId = newJobId(T0);
    const insert = (id: string, type: string, channel = 'in_app') =>
      admin.query(`INSERT INTO "${schema}".notifications (notification_id, org_id, job_id, type, channel, payload, created_at) VALUES ($1, $2, $3, $4, $5, '{}', $6)`, [id, org, jobId, type, channel, T0]);
    const types = ['async.job.completed', 'async.job.failed', 'async.job.canceled'] as const;
    // The CHECK spells the same rule as notificationIdOf, for every type.
    for (const type of types) await insert(notificationIdOf(jobId, type), type);
    await expect(insert(notificationIdOf(jobId, 'async.job.completed'), 'async.job.completed')).rejects.toMatchObject({ code: '23505' });
    await expect(insert(`${notificationIdOf(jobId, 'async.job.completed')}2`, 'async.job.completed')).rejects.toMatchObject({ code: '23514' });
    await expect(insert(notificationIdOf(jobId, 'async.job.failed'), 'async.job.completed')).rejects.toMatchObject({ code: '23514' });
    await expect(insert(notificationIdOf(newJobId(T0), 'async.job.completed'), 'async.job.completed', 'webhook:whe_x')).rejects.toMatchObject({ code: '23514' });
    // A job's notifications come back through its ids.
    const listed = await store.listJobNotifications(org, jobId, 'in_app', 10);
    expect(listed.map((n) => n.type).sort()).toEqual([...types].sort());
    expect(await store.listJobNotifications(asOrgId('org-b'), jobId, 'in_app', 10)).toEqual([]);
  });
});

describe.skipIf(!url)('PostgreSQL migration 0014 on an inbox written before it', () => {
  const T0 = Date.UTC(2026, 0, 1);
  const org = asOrgId('org-a');
  const schemas: string[] = [];
  afterAll(async () => {
    for (const schema of schemas) await dropSchema(url!, schema);
  });

  /** A schema migrated up to 0013, with `rows` in its inbox (as 0013's code wrote them). */
  const before0014 = async (rows: ReadonlyArray<readonly [id: string, jobId: string, type: string]>) => {
    const schema = testSchemaName();
    schemas.push(schema);
    const names = resolveNames({ schema });
    const pool = createPool(url!, 2, 'upshift-test');
    try {
      await applyMigrations(pool, names, loadMigrations().filter((m) => m.version <= 13));
      for (const [id, jobId, type] of rows) {
        await pool.query(`INSERT INTO "${schema}".notifications (notification_id, org_id, job_id, type, channel, payload, created_at) VALUES ($1, $2, $3, $4, 'in_app', '{}', $5)`, [id, org, jobId, type, T0]);
      }
    } finally {
      await pool.end();
    }
    return schema;
  };
  const constraintsOf = async (schema: string): Promise<string[]> => {
    const c = new pg.Client({ connectionString: url! });
    await c.connect();
    try {
      const r = await c.query(`SELECT conname FROM pg_constraint WHERE conrelid = to_regclass($1) ORDER BY 1`, [`"${schema}".notifications`]);
      return r.rows.map((x: { conname: string }) => x.conname);
    } finally {
      await c.end();
    }
  };

  it('keeps every row, swaps the unique index for the CHECK, and the store reads them by id', async () => {
    const jobs = [newJobId(T0), newJobId(T0 + 1)];
    const schema = await before0014([
      [notificationIdOf(jobs[0]!, 'async.job.completed'), jobs[0]!, 'async.job.completed'],
      [notificationIdOf(jobs[1]!, 'async.job.failed'), jobs[1]!, 'async.job.failed'],
    ]);
    expect(await constraintsOf(schema)).toEqual(['notifications_job_id_type_channel_key', 'notifications_pkey']);
    const store = createPostgresJobStore({ url: url!, schema, poolSize: 2 });
    try {
      await store.migrate();
      expect(await constraintsOf(schema)).toEqual(['notifications_id_spells_key', 'notifications_pkey']);
      expect((await store.listJobNotifications(org, jobs[0]!, 'in_app', 10)).map((n) => n.type)).toEqual(['async.job.completed']);
      expect((await store.listJobNotifications(org, jobs[1]!, 'in_app', 10)).map((n) => n.type)).toEqual(['async.job.failed']);
    } finally {
      await store.close();
    }
  });

  it('refuses, and changes nothing, when a row does not carry the id its job and type spell', async () => {
    const job = newJobId(T0);
    const schema = await before0014([[`ntf_${'x'.repeat(26)}_c`, job, 'async.job.completed']]);
    const store = createPostgresJobStore({ url: url!, schema, poolSize: 2 });
    try {
      await expect(store.migrate()).rejects.toThrow(/notifications_id_spells_key/);
      expect(await constraintsOf(schema)).toEqual(['notifications_job_id_type_channel_key', 'notifications_pkey']);
      const c = new pg.Client({ connectionString: url! });
      await c.connect();
      try {
        const ledger = await c.query(`SELECT MAX(version)::int AS v FROM "${schema}".upshift_migrations`);
        expect(ledger.rows[0].v).toBe(13);
      } finally {
        await c.end();
      }
    } finally {
      await store.close();
    }
  });
});
