import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { loadSqliteDriver } from '../../src/adapters/store/sqlite/sqliteDriver.js';
import { createSqliteJobStore } from '../../src/adapters/store/sqlite/sqliteJobStore.js';
import { retentionStoreContract } from '../contracts/retentionStore.contract.js';
import { sqliteFingerprint } from '../helpers/sqliteFingerprint.js';

const dir = mkdtempSync(join(tmpdir(), 'upshift-retention-'));
let n = 0;

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

retentionStoreContract('sqlite', async () => {
  const file = join(dir, `store-${process.pid}-${++n}.db`);
  const store = createSqliteJobStore({ file });
  return {
    store,
    cleanup: () => store.close(),
    clearFinishedAt: async (orgId, jobId) => {
      const Database = loadSqliteDriver();
      const db = new Database(file);
      try {
        db.prepare('UPDATE jobs SET finished_at = NULL WHERE org_id = ? AND job_id = ?').run(orgId, jobId);
      } finally {
        db.close();
      }
    },
    fingerprint: async () => JSON.stringify(sqliteFingerprint(file)),
  };
});
