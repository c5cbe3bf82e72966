import pg from 'pg';
import { UpshiftError } from '../../../core/errors.js';
import { isConnectionError, toStoreError } from './postgresErrors.js';

/** Names of the objects one store instance works with (schema, roles, NOTIFY channel). */
export interface PgNames {
  readonly schema: string;
  /** Tenant-bound work runs as this role: it owns nothing, so row-level security binds it. */
  readonly appRole: string;
  /** Cross-tenant internals run as this role (a permissive policy grants it every row). */
  readonly internalRole: string;
  /** NOTIFY channel carrying the newest committed event position. */
  readonly channel: string;
  /**
   * NOTIFY channel carrying the org of a committed webhook endpoint change (create, update,
   * delete): every process's notification dispatcher re-reads which orgs have endpoints.
   */
  readonly endpointsChannel: string;
}

const IDENT_RE = /^[a-z_][a-z0-9_]{0,62}$/;

export function resolveNames(opts: { schema?: string; appRole?: string; internalRole?: string }): PgNames {
  const schema = opts.schema ?? 'upshift';
  const appRole = opts.appRole ?? 'upshift_app';
  const internalRole = opts.internalRole ?? 'upshift_internal';
  for (const [key, v] of Object.entries({ schema, appRole, internalRole })) {
    if (!IDENT_RE.test(v)) throw new UpshiftError('CONFIG_INVALID', `PostgreSQL ${key} must match ${IDENT_RE.source}, got ${JSON.stringify(v)}`);
  }
  if (appRole === internalRole) throw new UpshiftError('CONFIG_INVALID', 'the application and internal PostgreSQL roles must differ');
  // Channel names are identifiers (at most 63 bytes): the endpoints channel keeps its suffix.
  return { schema, appRole, internalRole, channel: `${schema}_events`.slice(0, 63), endpointsChannel: `${schema.slice(0, 53)}_endpoints` };
}

/** Identifiers are validated by resolveNames; quoting keeps them literal anyway. */
export const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/**
 * bigint columns (epoch-ms timestamps, positions) as JS numbers: every value the store writes
 * is a safe integer. Scoped to our pools, so other pg users in the process are unaffected.
 */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20 && format !== 'binary' ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * Pipeline mode: queries queued on one client are written without waiting for the previous
 * reply, so a transaction's fire-and-forget statements (BEGIN, role switch) cost no round trip.
 */
export function createPool(url: string, max: number, applicationName: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    pipeline: true,
    types,
    application_name: applicationName,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
  });
  // A checked-out client whose connection dies (PostgreSQL restarted, backend terminated)
  // emits 'error' on itself — the pool only listens on idle clients — and an 'error' event
  // without a listener kills the process. The failure already reaches the caller through
  // the rejected query, and the caller releases the client as broken.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/**
 * Checks out a pooled client for one transaction that `body` opens (BEGIN, role switch, …) and
 * commits, pipelined as it likes. On a throw: ROLLBACK unless the connection itself failed, and
 * the error mapped to the store's (toStoreError). The client goes back to the pool, or is
 * destroyed when its connection or the ROLLBACK failed: the pool never hands out a dead
 * connection or one still inside a transaction.
 */
export async function withPooledTransaction<T>(pool: pg.Pool, body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (e) {
    throw toStoreError(e);
  }
  let broken = false;
  try {
    return await body(client);
  } catch (e) {
    broken = isConnectionError(e);
    if (!broken) await client.query('ROLLBACK').catch(() => (broken = true));
    throw toStoreError(e);
  } finally {
    client.release(broken);
  }
}

export function createClient(url: string, applicationName: string, opts: { readonly pipeline?: boolean } = {}): pg.Client {
  return new pg.Client({ connectionString: url, types, application_name: applicationName, connectionTimeoutMillis: 10_000, keepAlive: true, pipeline: opts.pipeline === true });
}

interface Corkable {
  cork(): void;
  uncork(): void;
}

/**
 * Pipelined statements sent in one synchronous run (BEGIN, role switch, the statement) leave
 * in one write instead of one syscall each: the socket is corked until the next tick. Uses the
 * client's socket (`connection.stream`, not part of pg's typed API); without one it is a no-op.
 */
export function corkUntilNextTick(client: pg.ClientBase): void {
  const holder = client as unknown as { connection?: { stream?: Partial<Corkable> }; __upshiftCorked?: boolean };
  const stream = holder.connection?.stream;
  if (holder.__upshiftCorked || typeof stream?.cork !== 'function' || typeof stream.uncork !== 'function') return;
  holder.__upshiftCorked = true;
  stream.cork();
  process.nextTick(() => {
    holder.__upshiftCorked = false;
    (stream as Corkable).uncork();
  });
}
