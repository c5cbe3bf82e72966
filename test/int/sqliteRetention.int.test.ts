import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteCheckpointer } from '../../src/adapters/store/sqlite/sqliteCheckpointer.js';
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

describe('SqliteCheckpointer', () => {
  it('backfills the WAL into the database file from its worker thread, so the next writer rewinds the WAL', async () => {
    const file = join(dir, `checkpointer-${process.pid}.db`);
    const Database = loadSqliteDriver();
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0'); // only the checkpointer may move pages into the file
    db.exec('CREATE TABLE t (x BLOB)');
    const insert = db.prepare('INSERT INTO t (x) VALUES (?)');
    const write = () =>
      db.transaction(() => {
        for (let i = 0; i < 500; i++) insert.run(Buffer.alloc(4000, i % 256));
      })();
    write();
    const before = statSync(file).size;
    const walSize = statSync(`${file}-wal`).size;
    expect(walSize).toBeGreaterThan(2_000_000);
    const checkpointer = new SqliteCheckpointer(file, 5_000);
    try {
      await checkpointer.checkpoint();
      expect(statSync(file).size).toBeGreaterThan(before + 2_000_000);
      // The WAL was fully backfilled: the next write starts it over instead of appending.
      write();
      expect(statSync(`${file}-wal`).size).toBeLessThan(walSize * 1.2); // appending would double it
      await checkpointer.checkpoint();
      write();
      expect(statSync(`${file}-wal`).size).toBeLessThan(walSize * 1.2); // appending would double it
    } finally {
      await checkpointer.close();
      db.close();
    }
    await checkpointer.checkpoint(); // closed: resolves at once, never starts again
  });

  it('resolves pending checkpoints when the worker cannot open the database', async () => {
    const checkpointer = new SqliteCheckpointer(join(dir, 'missing', 'nope.db'), 5_000);
    await checkpointer.checkpoint();
    await checkpointer.close();
  });
});
