import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkPgInvariants, MISSING_IN_APP_SQL } from '../../bench/chaos/pgInvariants.js';
import { loadConfig } from '../../src/config/config.js';
import { parseOrgId } from '../../src/core/ids.js';
import { createUpshift, type Upshift } from '../../src/main.js';
import { dropSchema, requirePostgres, testSchemaName } from '../helpers/services.js';

/**
 * The scale-mode chaos checker (bench/chaos/pgInvariants.ts) on a real PostgreSQL store: a run
 * of Upshift in PostgreSQL mode passes every invariant, and each kind of damage the chaos run
 * looks for is reported (so the checker can fail).
 */
const url = await requirePostgres();
const schema = testSchemaName();
const org = parseOrgId('acme');
let up: Upshift | undefined;
let client: pg.Client | undefined;
let dir = '';
let canceledId = '';

describe.skipIf(!url)('chaos invariants on PostgreSQL', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'upshift-chaos-pg-'));
    const config = loadConfig({}, { UPSHIFT_DATABASE_URL: url as string, UPSHIFT_DATABASE_SCHEMA: schema, UPSHIFT_DATA_DIR: dir, UPSHIFT_LOG_LEVEL: 'error', UPSHIFT_POLL_MS: '50', UPSHIFT_NOTIFICATIONS_POLL_MS: '50' });
    up = await createUpshift({ config, http: false });
    // Canceled before the worker starts: a job submitted while it runs can finish (2 ms) before
    // the cancel arrives, and then the store has no canceled job to damage.
    const canceled = await up.service.submit(org, { analyzer: 'sleep', input: { ms: 2, steps: 1 } });
    canceledId = canceled.job.jobId;
    await up.service.cancel(org, canceled.job.jobId);
    await up.start();
    for (let i = 0; i < 12; i++) await up.service.submit(org, { analyzer: 'sleep', input: { ms: 2, steps: 1 + (i % 3) } });
    client = new pg.Client({ connectionString: url as string, options: `-c search_path=${schema}` });
    await client.connect();
    const end = Date.now() + 30_000;
    for (;;) {
      const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM jobs WHERE status NOT IN ('completed','failed','canceled')`);
      const missing = (await client.query<{ n: number }>(MISSING_IN_APP_SQL)).rows[0]?.n;
      if (rows[0]?.n === 0 && missing === 0) break;
      if (Date.now() > end) throw new Error('jobs or notifications not done within 30 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    await up.close();
    up = undefined;
  }, 60_000);

  afterAll(async () => {
    await up?.close();
    await client?.end();
    if (url) await dropSchema(url, schema);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const failing = async () => (await checkPgInvariants(client as pg.Client)).filter((v) => v.count > 0).map((v) => v.name);

  it('an undamaged run passes every invariant', async () => {
    expect(await failing()).toEqual([]);
  });

  it('reports a missing partial event, a second terminal event and a missing notification', async () => {
    const c = client as pg.Client;
    await c.query('BEGIN');
    try {
      const { rows } = await c.query<{ job_id: string; event_seq: number }>(`SELECT job_id, event_seq FROM job_events WHERE type = 'job.partial' ORDER BY position LIMIT 1`);
      const victim = rows[0] as { job_id: string; event_seq: number };
      await c.query(`DELETE FROM job_events WHERE job_id = $1 AND event_seq = $2`, [victim.job_id, victim.event_seq]);
      const other = (await c.query<{ job_id: string; org_id: string; last_event_seq: number }>(`SELECT job_id, org_id, last_event_seq FROM jobs WHERE status = 'completed' AND job_id <> $1 LIMIT 1`, [victim.job_id])).rows[0];
      await c.query(`INSERT INTO job_events (job_id, event_seq, org_id, type, status, payload, occurred_at) VALUES ($1, $2, $3, 'job.failed', 'failed', '{}', 0)`, [other?.job_id, (other?.last_event_seq ?? 0) + 1, other?.org_id]);
      const status = (await c.query<{ status: string }>(`SELECT status FROM jobs WHERE job_id = $1`, [canceledId])).rows[0]?.status;
      expect(status).toBe('canceled');
      const deleted = await c.query(`DELETE FROM notifications WHERE job_id = $1 AND channel = 'in_app'`, [canceledId]);
      expect(deleted.rowCount).toBe(1);
      expect(await failing()).toEqual(
        expect.arrayContaining([
          'event_seq gap-free 1..n (= last_event_seq)',
          'at most one terminal event per job',
          'partial results = job.partial events (= partial_count)',
          'exactly one in-app notification per terminal job (type matches)',
        ]),
      );
    } finally {
      await c.query('ROLLBACK');
    }
    expect(await failing()).toEqual([]);
  });
});
