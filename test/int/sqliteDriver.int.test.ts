import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { loadSqliteDriver, sqliteDriverPackage } from '../../src/adapters/store/sqlite/sqliteDriver.js';
import { toStoreError } from '../../src/adapters/store/sqlite/sqliteErrors.js';

const require = createRequire(import.meta.url);

describe('SQLite driver loader', () => {
  it('picks better-sqlite3 12 below Node 22 and 13 (the better-sqlite3-v13 alias) from Node 22 on', () => {
    expect(sqliteDriverPackage('20.19.0')).toBe('better-sqlite3');
    expect(sqliteDriverPackage('21.7.3')).toBe('better-sqlite3');
    expect(sqliteDriverPackage('22.0.0')).toBe('better-sqlite3-v13');
    expect(sqliteDriverPackage('24.21.0')).toBe('better-sqlite3-v13');
  });

  it('loads the major this Node needs, and it works', () => {
    const Database = loadSqliteDriver();
    expect(loadSqliteDriver()).toBe(Database);
    const pkg = sqliteDriverPackage();
    const version = (require(`${pkg}/package.json`) as { version: string }).version;
    expect(version.split('.')[0]).toBe(Number(process.versions.node.split('.')[0]) >= 22 ? '13' : '12');
    const db = new Database(':memory:');
    try {
      expect(db.prepare('SELECT 40 + 2 AS v').get()).toEqual({ v: 42 });
    } finally {
      db.close();
    }
  });

  it("maps the loaded driver's SqliteError to catalogue codes", () => {
    const Database = loadSqliteDriver();
    const db = new Database(':memory:');
    try {
      db.exec('CREATE TABLE t (k TEXT PRIMARY KEY)');
      db.exec("INSERT INTO t VALUES ('a')");
      let thrown: unknown;
      try {
        db.exec("INSERT INTO t VALUES ('a')");
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(Database.SqliteError);
      expect(toStoreError(thrown).code).toBe('STORE_CONFLICT');
    } finally {
      db.close();
    }
  });
});
