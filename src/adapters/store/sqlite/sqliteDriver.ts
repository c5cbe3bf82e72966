import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { UpshiftError } from '../../../core/errors.js';

/**
 * The better-sqlite3 constructor (with `.SqliteError`), typed by @types/better-sqlite3: the
 * 12.x API, which 13.x keeps.
 */
export type SqliteDriver = typeof BetterSqlite3;

/**
 * Which better-sqlite3 this Node runs. Two majors, because neither works everywhere:
 * - 12.x (`better-sqlite3`, built by its install script) is ObjectWrap-based; built against
 *   Node 24's headers it aborts the process (`Assertion failed: (env) != nullptr`) when a
 *   statement is garbage-collected (WiseLibs/better-sqlite3#1515, closed without a fix).
 * - 13.x (the alias `better-sqlite3-v13`, an optionalDependency) uses node-addon-api and ships
 *   prebuilt binaries, but needs Node >= 22 and segfaults on Node 20. npm skips it when
 *   installing with Node < 22 (an optional dependency whose `engines` does not match).
 */
export function sqliteDriverPackage(nodeVersion: string = process.versions.node): 'better-sqlite3' | 'better-sqlite3-v13' {
  return Number(nodeVersion.split('.')[0]) >= 22 ? 'better-sqlite3-v13' : 'better-sqlite3';
}

const requireDriver = createRequire(import.meta.url);
let loaded: SqliteDriver | undefined;

/**
 * Loads (once) the better-sqlite3 this Node needs and checks that its native addon works by
 * opening an in-memory database: better-sqlite3 loads the addon lazily, so a missing or
 * wrong-ABI binary would otherwise first show as an obscure error at the first open.
 * Throws STORE_UNAVAILABLE saying what to run when the driver is missing or broken.
 */
export function loadSqliteDriver(): SqliteDriver {
  if (loaded) return loaded;
  const pkg = sqliteDriverPackage();
  const node = `Node ${process.versions.node}`;
  let Database: SqliteDriver;
  try {
    Database = requireDriver(pkg) as SqliteDriver;
  } catch (e) {
    const fix =
      pkg === 'better-sqlite3-v13'
        ? 'It is an optional dependency that npm skips when installing with Node < 22, or with ' +
          '--omit=optional: run `npm install` (or `npm ci`) again with this Node version.'
        : 'Run `npm install` (or `npm ci`).';
    throw new UpshiftError('STORE_UNAVAILABLE', `the SQLite store needs the npm package ${pkg} on ${node}, and it cannot be loaded (${message(e)}). ${fix}`, { cause: e });
  }
  try {
    new Database(':memory:').close();
  } catch (e) {
    const fix =
      pkg === 'better-sqlite3-v13'
        ? 'Reinstall it with this Node version (`npm ci`); on a platform without a prebuilt binary, ' +
          'build it: `cd node_modules/better-sqlite3-v13 && npx node-gyp rebuild --release`.'
        : 'Rebuild it for this Node version: `npm rebuild better-sqlite3`.';
    throw new UpshiftError('STORE_UNAVAILABLE', `the native addon of ${pkg} (the SQLite driver for ${node}) does not load: ${message(e)}. ${fix}`, { cause: e });
  }
  loaded = Database;
  return Database;
}

function message(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}
