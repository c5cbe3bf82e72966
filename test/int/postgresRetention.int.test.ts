import pg from 'pg';
import { describe } from 'vitest';
import { createPostgresJobStore } from '../../src/adapters/store/postgres/postgresJobStore.js';
import { retentionStoreContract } from '../contracts/retentionStore.contract.js';
import { dropSchema, requirePostgres, testSchemaName } from '../helpers/services.js';

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
    const schema = testSchemaName();
    const store = createPostgresJobStore({ url: url!, schema, poolSize: 4 });
    return {
      store,
      cleanup: async () => {
        await store.close();
        await dropSchema(url!, schema);
      },
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
