import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { flagDecision, parseFeatureFlags, type FeatureFlags } from '../../core/featureFlags.js';
import { coerceError } from '../../core/errors.js';
import type { FeatureFlagSource } from '../../ports/featureFlags.js';
import type { Logger } from '../../ports/logger.js';

export interface FeatureFlagSourceOptions {
  /** UPSHIFT_FEATURE_FLAGS: the rules as JSON text (used when there is no file). */
  readonly inline: string;
  /** UPSHIFT_FEATURE_FLAGS_FILE: a JSON file of rules, re-read when it changes; null = none. */
  readonly file: string | null;
  readonly logger: Logger;
  /** How often the file's mtime is checked. Default 1000 ms. */
  readonly pollMs?: number;
}

/**
 * Flags from configuration. With a file, a change takes effect within `pollMs` without a restart
 * (the rollback path: set `"enabled": false`, the kill switch). A file that became invalid keeps
 * the last good rules and logs an error; an invalid file (or inline JSON) at startup fails the
 * start with CONFIG_INVALID.
 */
export function createFeatureFlagSource(o: FeatureFlagSourceOptions): FeatureFlagSource {
  const load = (): FeatureFlags => (o.file === null ? parseFeatureFlags(o.inline, 'UPSHIFT_FEATURE_FLAGS') : parseFeatureFlags(readFileSync(o.file, 'utf8'), `UPSHIFT_FEATURE_FLAGS_FILE ${o.file}`));
  let flags = load();
  let watching = false;
  const describe = (f: FeatureFlags) => Object.fromEntries(Object.entries(f).map(([k, r]) => [k, r.enabled ? `${r.percentage}% +${r.tenantsOn.length} -${r.tenantsOff.length}` : 'killed']));
  if (Object.keys(flags).length > 0) o.logger.info({ flags: describe(flags) }, 'feature flags');
  if (o.file !== null) {
    const file = o.file;
    watching = true;
    watchFile(file, { interval: o.pollMs ?? 1000, persistent: false }, (cur: Stats, prev: Stats) => {
      if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size) return;
      try {
        flags = load();
        o.logger.info({ flags: describe(flags) }, 'feature flags reloaded');
      } catch (e) {
        o.logger.error({ err: coerceError(e) }, 'feature flags file is invalid; keeping the previous rules');
      }
    });
    return {
      decide: (flag, orgId) => flagDecision(flags, flag, orgId),
      close() {
        if (watching) unwatchFile(file);
        watching = false;
      },
    };
  }
  return { decide: (flag, orgId) => flagDecision(flags, flag, orgId), close: () => undefined };
}
