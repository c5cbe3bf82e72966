import { createHash } from 'node:crypto';
import { UpshiftError } from './errors.js';
import { isOrgId } from './ids.js';

/**
 * Feature flags (SPEC §5): switches that gate a behaviour per tenant so a rollout can go stage by
 * stage and be rolled back without a deploy.
 *
 * Glossary:
 * - rule: one flag's configuration — `enabled` (false = kill switch: off for every tenant, whatever
 *   else the rule says), `tenants_off` (always off), `tenants_on` (always on), `percentage`
 *   (0–100: the share of all other tenants that get it, by a stable bucket).
 * - bucket: a number in [0, 100) from SHA-256 of `<flag>:<org>`: the same tenant always lands in
 *   the same bucket for a flag, so raising the percentage only ever adds tenants, and flags roll
 *   out independently of each other.
 * A flag without a rule is off.
 */
export const FEATURE_FLAGS = {
  legacy_async_default:
    'The legacy POST /analyze answers 202 with the job reference (as with `Prefer: respond-async`) instead of waiting; `?mode=sync` still waits.',
  stats_read_model:
    'GET /analyze/stats reads the dashboard_stats read model (O(1), may lag by the runner) instead of computing the stats from the job rows (exact, O(jobs of the tenant)).',
} as const;

export type FlagName = keyof typeof FEATURE_FLAGS;

export interface FlagRule {
  readonly enabled: boolean;
  readonly percentage: number;
  readonly tenantsOn: readonly string[];
  readonly tenantsOff: readonly string[];
}

export type FeatureFlags = Readonly<Partial<Record<FlagName, FlagRule>>>;

export type FlagReason = 'no_rule' | 'kill_switch' | 'tenant_off' | 'tenant_on' | 'rollout';

export interface FlagDecision {
  readonly on: boolean;
  readonly reason: FlagReason;
}

const isFlagName = (s: string): s is FlagName => Object.hasOwn(FEATURE_FLAGS, s);

/** The stable rollout bucket of a tenant for a flag, in [0, 100) with 0.01 steps. */
export function rolloutBucket(flag: string, orgId: string): number {
  const h = createHash('sha256').update(`${flag}:${orgId}`).digest();
  return (h.readUInt32BE(0) % 10_000) / 100;
}

export function flagDecision(flags: FeatureFlags, flag: FlagName, orgId: string): FlagDecision {
  const rule = flags[flag];
  if (rule === undefined) return { on: false, reason: 'no_rule' };
  if (!rule.enabled) return { on: false, reason: 'kill_switch' };
  if (rule.tenantsOff.includes(orgId)) return { on: false, reason: 'tenant_off' };
  if (rule.tenantsOn.includes(orgId)) return { on: true, reason: 'tenant_on' };
  return { on: rolloutBucket(flag, orgId) < rule.percentage, reason: 'rollout' };
}

/**
 * Parses the flags document: `{"<flag>": {"enabled": bool, "percentage"?: 0-100,
 * "tenants_on"?: [org…], "tenants_off"?: [org…]}}`. Throws CONFIG_INVALID naming the problem
 * (an unknown flag, a wrong type, an invalid org id, a percentage out of range).
 */
export function parseFeatureFlags(text: string, source: string): FeatureFlags {
  const bad = (why: string): never => {
    throw new UpshiftError('CONFIG_INVALID', `${source}: ${why}`, { details: { key: source } });
  };
  if (text.trim() === '') return {};
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return bad(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return bad('expected a JSON object of flag rules');
  const out: Partial<Record<FlagName, FlagRule>> = {};
  for (const [name, raw] of Object.entries(doc)) {
    if (!isFlagName(name)) bad(`unknown flag "${name}" (known: ${Object.keys(FEATURE_FLAGS).join(', ')})`);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad(`${name}: expected an object`);
    const r = raw as Record<string, unknown>;
    for (const k of Object.keys(r)) if (!['enabled', 'percentage', 'tenants_on', 'tenants_off'].includes(k)) bad(`${name}: unknown field "${k}"`);
    if (typeof r.enabled !== 'boolean') bad(`${name}.enabled: expected true or false`);
    const percentage = r.percentage ?? 0;
    if (typeof percentage !== 'number' || !Number.isFinite(percentage) || percentage < 0 || percentage > 100) bad(`${name}.percentage: expected a number from 0 to 100`);
    const orgs = (k: 'tenants_on' | 'tenants_off'): string[] => {
      const v = r[k] ?? [];
      if (!Array.isArray(v) || !v.every((o) => typeof o === 'string' && isOrgId(o))) bad(`${name}.${k}: expected an array of org ids`);
      return [...(v as string[])];
    };
    out[name as FlagName] = { enabled: r.enabled as boolean, percentage: percentage as number, tenantsOn: orgs('tenants_on'), tenantsOff: orgs('tenants_off') };
  }
  return out;
}
