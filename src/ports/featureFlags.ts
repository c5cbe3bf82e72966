import type { FlagDecision, FlagName } from '../core/featureFlags.js';
import type { OrgId } from '../core/ids.js';

/**
 * Where feature-flag decisions come from (core/featureFlags.ts evaluates the rules). Adapter:
 * src/adapters/flags/featureFlagSource.ts (UPSHIFT_FEATURE_FLAGS inline, or a file that is
 * re-read when it changes, so a rollout can be widened or killed without a restart).
 */
export interface FeatureFlagSource {
  decide(flag: FlagName, orgId: OrgId): FlagDecision;
  close(): void;
}

/** Every flag off: the default when nothing is configured (and for tests). */
export const noFeatureFlags: FeatureFlagSource = {
  decide: () => ({ on: false, reason: 'no_rule' }),
  close: () => undefined,
};
