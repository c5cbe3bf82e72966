import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createPostgresJobStore } from '../../src/adapters/store/postgres/postgresJobStore.js';
import { runCli } from '../../src/cli/main.js';
import { asOrgId, newJobId, newResultId } from '../../src/core/ids.js';
import { retentionStoreContract } from '../contracts/retentionStore.contract.js';
import { dropSchema, freshPostgresStore, requirePostgres, testSchemaName } from '../helpers/services.js';

const url = await requirePostgres();

/** Every table of the schema: row count and a digest of its rows in a total order. */
async function fingerprint(schema: string): Promise<string> {
  const c = new pg.Client({ connectionString: url! });
  await c.connect();
  try {
    const tables = (await c.query<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`, [schema])).rows.map((r) => r.t);
    const out: Record<string, unknown> = {};
    for (const t of tables) {
      const q = `SELECT COUNT(*)::int AS n, md5(COALESCE(string_agg(x::text, '|' ORDER BY x::text), '')) AS digest FROM "${schema}"."${t}" x`;
      out[t] = (await c.query(q)).rows[0];
    }
    return JSON.stringify(out);
  } finally {
    await c.end();
  }
}

describe.skipIf(!url)('PostgreSQL retention', () => {
  retentionStoreContract('postgres', async () => {
    const { store, schema, cleanup } = freshPostgresStore(url!);
    return {
      store,
      cleanup,
      clearFinishedAt: async (orgId, jobId) => {
        const c = new pg.Client({ connectionString: url! });
        await c.connect();
        try {
          await c.query(`UPDATE "${schema}".jobs SET finished_at = NULL WHERE org_id = $1 AND job_id = $2`, [orgId, jobId]);
        } finally {
          await c.end();
        }
      },
      fingerprint: () => fingerprint(schema),
    };
  });
});

describe.skipIf(!url)('upshift retention --database postgres://…', () => {
  const schema = testSchemaName();
  const dir = mkdtempSync(join(tmpdir(), 'upshift-pg-retention-'));
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await dropSchema(url!, schema);
  });

  async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const out = new PassThrough();
    const err = new PassThrough();
    let stdout = '';
    let stderr = '';
    out.on('data', (d: Buffer) => (stdout += d.toString()));
    err.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await runCli(args, { env: { UPSHIFT_DATABASE_SCHEMA: schema }, stdout: out, stderr: err });
    return { code, stdout, stderr };
  }

  it('dry run, then a live run deleting exactly that, then nothing left; 410 data kept for the own org', async () => {
    const at = Date.UTC(2026, 0, 1);
    const org = asOrgId('acme');
    const store = createPostgresJobStore({ url: url!, schema, poolSize: 2 });
    const resultIds: string[] = [];
    try {
      // Never migrated: the CLI refuses instead of creating the schema.
      const unmigrated = await cli(['retention', '--database', url!, '--results-ttl-seconds', '60', '--events-ttl-seconds', '60']);
      expect(unmigrated.code).not.toBe(0);
      expect(unmigrated.stderr).toMatch(/migrate/);
      await store.migrate();
      for (let i = 0; i < 3; i++) {
        const { job } = await store.submitJob({ jobId: newJobId(at), orgId: org, analyzer: 'noop', input: i, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now: at });
        const [c] = await store.claimJobs({ orgId: org, limit: 1, workerId: 'w', now: at, leaseMs: 1000, analyzers: null });
        const lease = { orgId: org, jobId: job.jobId, attempt: 1, leaseToken: c!.leaseToken };
        resultIds.push((await store.recordPartial(lease, 'c', { i }, at)).result.resultId);
        const resultId = newResultId(Date.now());
        resultIds.push(resultId);
        await store.finishJob(lease, { status: 'completed', resultId, payload: { i } }, at);
      }
    } finally {
      await store.close();
    }
    const now = new Date(at + 3_600_000).toISOString();
    const args = ['retention', '--database', url!, '--results-ttl-seconds', '60', '--events-ttl-seconds', '60', '--now', now, '--batch-size', '2', '--max-rows-per-batch', '3'];
    const dry = await cli([...args, '--dry-run']);
    expect(dry.stderr).toBe('');
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dry_run: true, terminal_job_count: 3, results: { delete_count: 6 }, events: { delete_count: 12 } });
    const report = join(dir, 'report.json');
    const live = await cli([...args, '--output-json', report]);
    expect(live.code).toBe(0);
    expect(JSON.parse(readFileSync(report, 'utf8'))).toMatchObject({ dry_run: false, results: { delete_count: 6, kept_count: 0 }, events: { delete_count: 12, kept_count: 0 } });
    const again = await cli(args);
    expect(JSON.parse(again.stdout)).toMatchObject({ results: { delete_count: 0 }, events: { delete_count: 0 } });
    const check = createPostgresJobStore({ url: url!, schema, poolSize: 2 });
    try {
      for (const id of resultIds) {
        expect(await check.getResult(org, id as never)).toBeUndefined();
        expect((await check.getRemovedResult(org, id as never))?.resultId).toBe(id);
        expect(await check.getRemovedResult(asOrgId('other'), id as never)).toBeUndefined();
      }
    } finally {
      await check.close();
    }
  });
});
