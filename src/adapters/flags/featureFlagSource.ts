import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { flagDecision, parseFeatureFlags, type FeatureFlags } from '../../core/featureFlags.js';
import { coerceError } from '../../core/errors.js';
import type { FeatureFlagSource } from '../../ports/featureFlags.js';
import type { Logger } from '../../ports/logger.js';

export interface FeatureFlagSourceOptions {
  /** The rules of UPSHIFT_FEATURE_FLAGS (already validated by the config), used when there is no file. */
  readonly rules: FeatureFlags;
  /** UPSHIFT_FEATURE_FLAGS_FILE: a JSON file of rules, re-read when it changes; null = none. */
  readonly file: string | null;
  readonly logger: Logger;
  /** How often the file's mtime is checked. Default 1000 ms. */
  readonly pollMs?: number;
}

const describe = (f: FeatureFlags) =>
  Object.fromEntries(Object.entries(f).map(([k, r]) => [k, r.enabled ? `${r.percentage}% +${r.tenantsOn.length} -${r.tenantsOff.length}` : 'killed']));

/**
 * Flags from configuration. With a file, a change takes effect within `pollMs` without a restart
 * (the rollback path: set `"enabled": false`, the kill switch). A file that became invalid keeps
 * the last good rules and logs an error; an invalid file at startup fails the start with
 * CONFIG_INVALID (as invalid inline rules fail the config).
 */
export function createFeatureFlagSource(o: FeatureFlagSourceOptions): FeatureFlagSource {
  const file = o.file;
  const read = (path: string): FeatureFlags => parseFeatureFlags(readFileSync(path, 'utf8'), `UPSHIFT_FEATURE_FLAGS_FILE ${path}`);
  let flags = file === null ? o.rules : read(file);
  if (Object.keys(flags).length > 0) o.logger.info({ flags: describe(flags) }, 'feature flags');
  if (file !== null) {
    watchFile(file, { interval: o.pollMs ?? 1000, persistent: false }, (cur: Stats, prev: Stats) => {
      if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size) return;
      try {
        flags = read(file);
        o.logger.info({ flags: describe(flags) }, 'feature flags reloaded');
      } catch (e) {
        o.logger.error({ err: coerceError(e) }, 'feature flags file is invalid; keeping the previous rules');
      }
    });
  }
  return {
    decide: (flag, orgId) => flagDecision(flags, flag, orgId),
    close: () => {
      if (file !== null) unwatchFile(file);
    },
  };
}
