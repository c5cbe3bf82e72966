import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { POSTGRES_TEST_URL } from './services.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The e2e-postgres project's database (see below); absent in other projects. */
    upshiftPostgresUrl?: string;
  }
}

/**
 * globalSetup of the e2e-postgres project: one fresh database per run whose default
 * collation is ICU en-US — what `initdb` and managed services give most installs — rather
 * than the C collation of the shared `test` database, so the HTTP suites also catch code that
 * relies on byte order of text. Each server still gets its own schema in it
 * (test/helpers/server.ts). Dropped at the end of the run.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const name = `upshift_t_e2e_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_TEST_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8' TEMPLATE template0`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_TEST_URL);
  url.pathname = `/${name}`;
  project.provide('upshiftPostgresUrl', url.toString());
  return async () => {
    const c = new pg.Client({ connectionString: POSTGRES_TEST_URL });
    await c.connect();
    try {
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await c.end();
    }
  };
}
