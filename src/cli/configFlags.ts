import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig, type Config, type ConfigKey, type Env } from '../config/config.js';
import { isUpshiftError, UpshiftError } from '../core/errors.js';

/**
 * Command-line flags that override configuration keys. A flag wins over the environment,
 * which wins over the default (loadConfig does the layering; flags arrive as overrides).
 * docs/configuration.md lists these in its "CLI flag" column; a unit test checks it.
 */
export interface ConfigFlag {
  /** Commander attribute name of the parsed option. */
  readonly attr: string;
  /** Flag spelling as shown in help and docs, e.g. `--port <port>`. */
  readonly flags: string;
  readonly key: ConfigKey;
  readonly description: string;
}

export const CONFIG_FLAGS: readonly ConfigFlag[] = [
  { attr: 'host', flags: '--host <host>', key: 'UPSHIFT_HOST', description: 'address to bind' },
  { attr: 'port', flags: '--port <port>', key: 'UPSHIFT_PORT', description: 'port to listen on' },
  { attr: 'database', flags: '--database <url>', key: 'UPSHIFT_DATABASE_URL', description: 'sqlite:<path> or postgres://…' },
  { attr: 'dataDir', flags: '--data-dir <dir>', key: 'UPSHIFT_DATA_DIR', description: 'directory for data (and the SQLite file unless --database is given)' },
  { attr: 'analyzers', flags: '--analyzers <modules>', key: 'UPSHIFT_ANALYZERS', description: 'comma-separated analyzer modules to load (./a.js,./b.js)' },
  { attr: 'authMode', flags: '--auth-mode <mode>', key: 'UPSHIFT_AUTH_MODE', description: 'trusted-header, api-key or jwt (jwt: see UPSHIFT_JWT_* in docs/configuration.md)' },
  {
    attr: 'allowTrustedHeaderOnPublicBind',
    flags: '--allow-trusted-header-on-public-bind',
    key: 'UPSHIFT_ALLOW_TRUSTED_HEADER_ON_PUBLIC_BIND',
    description: 'acknowledge trusted-header auth on a non-loopback bind (behind a gateway)',
  },
  { attr: 'concurrency', flags: '--concurrency <n>', key: 'UPSHIFT_WORKER_CONCURRENCY', description: 'jobs one process runs at once' },
  { attr: 'logLevel', flags: '--log-level <level>', key: 'UPSHIFT_LOG_LEVEL', description: 'fatal, error, warn, info, debug, trace or silent' },
];

/** The flags of the store-only commands (migrate, keys). */
export const STORE_FLAG_KEYS: readonly ConfigKey[] = ['UPSHIFT_DATABASE_URL', 'UPSHIFT_DATA_DIR'];

export function addConfigFlags(cmd: Command, keys?: readonly ConfigKey[]): Command {
  for (const f of CONFIG_FLAGS) if (!keys || keys.includes(f.key)) cmd.option(f.flags, f.description);
  return cmd;
}

/** The flag that sets `key`, for error messages and docs. */
export function flagOf(key: string): string | undefined {
  return CONFIG_FLAGS.find((f) => f.key === key)?.flags.split(' ')[0];
}

/**
 * Turns parsed options into loadConfig overrides. When a data directory is chosen (flag or
 * env) but no database URL is, the SQLite file moves into it: `--data-dir /srv/x` means
 * `sqlite:/srv/x/upshift.db`, not a database left behind in ./data.
 */
export function configOverrides(opts: Readonly<Record<string, unknown>>, env: Env): Partial<Record<ConfigKey, string>> {
  const out: Partial<Record<ConfigKey, string>> = {};
  for (const f of CONFIG_FLAGS) {
    const v = opts[f.attr];
    if (v === undefined) continue;
    out[f.key] = String(v);
  }
  const dataDir = out.UPSHIFT_DATA_DIR ?? env.UPSHIFT_DATA_DIR;
  if (dataDir !== undefined && dataDir.trim() !== '' && out.UPSHIFT_DATABASE_URL === undefined && env.UPSHIFT_DATABASE_URL === undefined) {
    out.UPSHIFT_DATABASE_URL = `sqlite:${join(dataDir.trim(), 'upshift.db')}`;
  }
  return out;
}

/** loadConfig with flags applied; a CONFIG_INVALID names the flag too when one set the key. */
export function configFromFlags(opts: Readonly<Record<string, unknown>>, env: Env): Config {
  const overrides = configOverrides(opts, env);
  try {
    return loadConfig(env, overrides);
  } catch (e) {
    if (isUpshiftError(e, 'CONFIG_INVALID')) {
      const key = e.details?.key;
      const set = CONFIG_FLAGS.find((f) => f.key === key && opts[f.attr] !== undefined);
      const flag = set ? flagOf(set.key) : undefined;
      if (flag) throw new UpshiftError('CONFIG_INVALID', `${e.message} (set by ${flag})`, { cause: e, details: { key } });
    }
    throw e;
  }
}
