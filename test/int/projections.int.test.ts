import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe } from 'vitest';
import { createSqliteJobStore } from '../../src/adapters/store/sqlite/sqliteJobStore.js';
import { projectionStoreContract } from '../contracts/projectionStore.contract.js';
import { freshPostgresStore, requirePostgres } from '../helpers/services.js';

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
    const { store, cleanup } = freshPostgresStore(url!);
    return { store, cleanup };
  });
});
