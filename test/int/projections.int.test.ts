import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe } from 'vitest';
import { createPostgresJobStore } from '../../src/adapters/store/postgres/postgresJobStore.js';
import { createSqliteJobStore } from '../../src/adapters/store/sqlite/sqliteJobStore.js';
import { projectionStoreContract } from '../contracts/projectionStore.contract.js';
import { dropSchema, requirePostgres, testSchemaName } from '../helpers/services.js';

const url = await requirePostgres();
const dir = mkdtempSync(join(tmpdir(), 'upshift-projections-'));
let n = 0;

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

projectionStoreContract('sqlite (writer thread)', async () => {
  const store = createSqliteJobStore({ file: join(dir, `store-${process.pid}-${++n}.db`), writer: 'thread' });
  return { store, cleanup: () => store.close() };
});

projectionStoreContract('sqlite (inline writer)', async () => {
  const store = createSqliteJobStore({ file: join(dir, `store-${process.pid}-${++n}.db`), writer: 'inline' });
  return { store, cleanup: () => store.close() };
});

describe.skipIf(!url)('postgres', () => {
  projectionStoreContract('postgres', async () => {
    const schema = testSchemaName();
    const store = createPostgresJobStore({ url: url!, schema, poolSize: 4 });
    return {
      store,
      cleanup: async () => {
        await store.close();
        await dropSchema(url!, schema);
      },
    };
  });
});
