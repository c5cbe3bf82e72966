import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createPool } from '../../src/adapters/store/postgres/postgresConnection.js';
import { requirePostgres } from '../helpers/services.js';

/**
 * A PostgreSQL restart (or a terminated backend) while the store holds a checked-out client must
 * fail that client's queries, not kill the process: found by the scale-mode chaos run, where API
 * processes died of an unhandled 'error' event when PostgreSQL stopped. Only this test's own
 * backend is terminated.
 */
const url = await requirePostgres();

describe.skipIf(!url)('PostgreSQL pool', () => {
  it('a checked-out client whose backend dies fails its query; the process and the pool live on', async () => {
    const pool = createPool(url as string, 2, 'upshift-test-pool');
    const admin = new pg.Client({ connectionString: url as string });
    await admin.connect();
    try {
      const c = await pool.connect();
      const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      const ended = new Promise((r) => c.once('end', r));
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await ended; // the 'error' event has fired by now: without a listener it is an uncaught exception
      await expect(c.query('SELECT 1')).rejects.toThrow();
      c.release(true);
      expect((await pool.query<{ x: number }>('SELECT 1 AS x')).rows[0]?.x).toBe(1);
    } finally {
      await admin.end();
      await pool.end();
    }
  });
});
