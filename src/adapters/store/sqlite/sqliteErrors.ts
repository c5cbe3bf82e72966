import { UpshiftError, coerceError } from '../../../core/errors.js';
import { loadSqliteDriver } from './sqliteDriver.js';

/**
 * Translates whatever an SQLite call threw into a catalogue error, so callers see the same
 * codes from every store adapter. UpshiftErrors (our own guards) pass through unchanged.
 */
export function toStoreError(e: unknown): UpshiftError {
  if (e instanceof UpshiftError) return e;
  if (e instanceof loadSqliteDriver().SqliteError) {
    const code = e.code;
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      return new UpshiftError('STORE_UNAVAILABLE', 'the SQLite database is busy (locked by another writer)', { cause: e });
    }
    if (code.startsWith('SQLITE_CONSTRAINT')) {
      return new UpshiftError('STORE_CONFLICT', `SQLite constraint violated: ${e.message}`, { cause: e });
    }
    if (/no such (table|column)/.test(e.message)) {
      return new UpshiftError('STORE_NOT_MIGRATED', 'the SQLite schema is missing or older than this code; run `upshift migrate`', { cause: e });
    }
    return new UpshiftError('STORE_UNAVAILABLE', `SQLite error ${code}: ${e.message}`, { cause: e });
  }
  const err = coerceError(e);
  // better-sqlite3 throws a TypeError for calls on a closed connection.
  if (/database connection is not open/i.test(err.message)) {
    return new UpshiftError('STORE_UNAVAILABLE', 'the SQLite store is closed', { cause: err });
  }
  return new UpshiftError('INTERNAL', err.message, { cause: err });
}

/** Runs a synchronous read and returns it as a promise, with errors translated. */
export function readAsync<T>(read: () => T): Promise<T> {
  try {
    return Promise.resolve(read());
  } catch (e) {
    return Promise.reject(toStoreError(e));
  }
}
