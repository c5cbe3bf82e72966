import { createConnection } from 'node:net';
import { defineConfig } from 'vitest/config';

// The HTTP suites that run a second time on PostgreSQL (issue 4: "the HTTP test suite runs
// green against PostgreSQL"): same files, UPSHIFT_TEST_STORE=postgres (test/helpers/server.ts).
const HTTP_SUITES = ['httpContract', 'httpBadInput', 'notificationsApi', 'retentionHttp', 'webhooks', 'projectionsHttp'].map((f) => `test/e2e/${f}.e2e.test.ts`);

/**
 * Whether the PostgreSQL test server accepts connections. Like requirePostgres(): when it does
 * not, the PostgreSQL project is left out with a loud banner, except under CI=true, where it
 * stays in and fails.
 */
async function postgresProject(): Promise<boolean> {
  const u = new URL(process.env.UPSHIFT_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test');
  const ok = await new Promise<boolean>((resolve) => {
    const sock = createConnection({ host: u.hostname, port: Number(u.port || 5432) });
    const done = (r: boolean): void => {
      sock.destroy();
      resolve(r);
    };
    sock.setTimeout(3000, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => done(true));
  });
  if (ok || /^(true|1)$/i.test(process.env.CI ?? '')) return true;
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!!! SKIPPING the e2e-postgres project (HTTP suites on PostgreSQL): nothing listens at ${u.host}\n${bar}\n`);
  return false;
}

// Three tiers (STYLE.md §5): unit = no I/O, int = real SQLite file / PostgreSQL / Redis,
// e2e = real HTTP server and processes. Each file runs in its own forked process.
export default defineConfig(async () => ({
  test: {
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/**/*.unit.test.ts'] } },
      { extends: true, test: { name: 'int', include: ['test/**/*.int.test.ts'] } },
      { extends: true, test: { name: 'e2e', include: ['test/**/*.e2e.test.ts'], testTimeout: 120_000 } },
      ...((await postgresProject())
        ? [
            {
              extends: true,
              test: {
                name: 'e2e-postgres',
                include: HTTP_SUITES,
                testTimeout: 120_000,
                env: { UPSHIFT_TEST_STORE: 'postgres' },
                // A database of its own with a non-C (ICU en-US) default collation.
                globalSetup: ['test/helpers/postgresDatabase.setup.ts'],
              },
            },
          ]
        : []),
    ],
  },
}));
