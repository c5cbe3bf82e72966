import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import pg from 'pg';
import { createPostgresJobStore } from '../../src/adapters/store/postgres/postgresJobStore.js';

/**
 * External services for *.int/e2e tests. When a service is unreachable: under CI=true the
 * suite FAILS (a green CI must mean the suite ran); elsewhere it is skipped with a loud banner.
 * Use at top level: `const pgUrl = await requirePostgres(); describe.skipIf(!pgUrl)(…)`.
 */
export const POSTGRES_TEST_URL = process.env.UPSHIFT_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_TEST_URL = process.env.UPSHIFT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

const isCi = (): boolean => /^(true|1)$/i.test(process.env.CI ?? '');

function unavailable(what: string, url: string, why: string): null {
  const safe = url.replace(/\/\/[^@/]*@/, '//***@');
  const msg = `${what} is not reachable at ${safe} (${why})`;
  if (isCi()) throw new Error(`${msg}; CI=true, so the suites that need it fail instead of being skipped`);
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!!! SKIPPING ${what} TESTS: ${msg}\n!!! Start it or set the test URL; under CI=true this fails.\n${bar}\n`);
  return null;
}

/** The PostgreSQL test URL if the server answers a query, else null (or a throw under CI). */
export async function requirePostgres(): Promise<string | null> {
  const client = new pg.Client({ connectionString: POSTGRES_TEST_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return POSTGRES_TEST_URL;
  } catch (e) {
    return unavailable('PostgreSQL', POSTGRES_TEST_URL, e instanceof Error ? e.message : String(e));
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The Redis test URL if the server answers PING, else null (or a throw under CI). */
export async function requireRedis(): Promise<string | null> {
  const u = new URL(REDIS_TEST_URL);
  const ok = await new Promise<string | true>((resolve) => {
    const sock = createConnection({ host: u.hostname, port: Number(u.port || 6379) });
    const done = (r: string | true): void => {
      sock.destroy();
      resolve(r);
    };
    sock.setTimeout(3000, () => done('timeout'));
    sock.on('error', (e) => done(e.message));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => done(d.toString().startsWith('+PONG') || d.toString().startsWith('-NOAUTH') ? true : `unexpected reply ${d.toString().trim()}`));
  });
  return ok === true ? REDIS_TEST_URL : unavailable('Redis', REDIS_TEST_URL, ok);
}

/**
 * A local program a suite needs (e.g. PostgreSQL's initdb for a private cluster): true if the
 * file exists, else false with the loud banner — or a throw under CI=true, like the services.
 */
export function requireProgram(what: string, path: string): boolean {
  return existsSync(path) || unavailable(what, path, 'file not found') !== null;
}

/** A fresh schema name for one test (file): `upshift_t_<random>`. */
export const testSchemaName = (): string => `upshift_t_${randomBytes(6).toString('hex')}`;

/** Drops a test schema and everything in it. */
export async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema.replace(/"/g, '""')}" CASCADE`);
  } finally {
    await client.end();
  }
}

/**
 * A PostgreSQL store on a fresh schema of its own (the store conformance suites want an empty
 * store per test); `cleanup` closes it and drops the schema.
 */
export function freshPostgresStore(url: string, poolSize = 4): { store: ReturnType<typeof createPostgresJobStore>; schema: string; cleanup: () => Promise<void> } {
  const schema = testSchemaName();
  const store = createPostgresJobStore({ url, schema, poolSize });
  return {
    store,
    schema,
    cleanup: async () => {
      await store.close();
      await dropSchema(url, schema);
    },
  };
}

