import { Queue } from 'bullmq';
import pg from 'pg';

/**
 * Which Upshift a server scenario (http, sse) runs against: the server process
 * (serverProcess.ts) gets the environment of its system from here.
 *   upshift-embedded         SQLite file in a temp dir (serverProcess.ts's default)
 *   upshift-postgres         the local PostgreSQL (BENCH_PG_URL), store dispatch, a schema of its own
 *   upshift-postgres-bullmq  the same with BullMQ dispatch on BENCH_REDIS_URL (queue dispatch-<schema>)
 * PostgreSQL schemas are named `bench_up_<pid>_<ms>` like upshiftPostgres.ts's, so a run killed
 * before its cleanup is removed by the next PostgreSQL run (its removeOrphans).
 */
export const SERVER_SYSTEMS = ['upshift-embedded', 'upshift-postgres', 'upshift-postgres-bullmq'] as const;
export type ServerSystem = (typeof SERVER_SYSTEMS)[number];

export interface ServerSystemEnv {
  readonly system: ServerSystem;
  readonly env: Record<string, string>;
  /** Drops the schema and the BullMQ queue (no-op for embedded). */
  cleanup(): Promise<void>;
}

export function serverSystemFromEnv(): ServerSystem {
  const s = process.env.BENCH_SERVER_SYSTEM ?? 'upshift-embedded';
  if (!(SERVER_SYSTEMS as readonly string[]).includes(s)) throw new Error(`BENCH_SERVER_SYSTEM: unknown system ${s}; known: ${SERVER_SYSTEMS.join(', ')}`);
  return s as ServerSystem;
}

export function serverSystemEnv(system: ServerSystem): ServerSystemEnv {
  if (system === 'upshift-embedded') return { system, env: {}, cleanup: async () => undefined };
  const url = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const schema = `bench_up_${process.pid}_${Date.now()}`;
  const bullmq = system === 'upshift-postgres-bullmq';
  return {
    system,
    env: {
      UPSHIFT_DATABASE_URL: url,
      UPSHIFT_DATABASE_SCHEMA: schema,
      ...(bullmq ? { UPSHIFT_DISPATCH_MODE: 'bullmq', UPSHIFT_REDIS_URL: redisUrl } : { UPSHIFT_DISPATCH_MODE: 'store' }),
    },
    async cleanup() {
      if (bullmq) {
        const queue = new Queue(`dispatch-${schema}`, { connection: { url: redisUrl, connectTimeout: 2_000, maxRetriesPerRequest: 1 }, prefix: 'upshift' });
        await queue.obliterate({ force: true }).catch(() => undefined);
        await queue.close().catch(() => undefined);
      }
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      try {
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await admin.end();
      }
    },
  };
}
