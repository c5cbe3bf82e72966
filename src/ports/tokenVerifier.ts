import type { OrgId } from '../core/ids.js';

/** Who a verified bearer token speaks for. */
export interface VerifiedToken {
  readonly orgId: OrgId;
  /** The token's `sub`, when it has one (for logs and audit; never the token itself). */
  readonly subject: string | null;
}

/**
 * Verifies a bearer token (auth mode `jwt`) and names the org it acts for. Failures are
 * UpshiftErrors: AUTH_TOKEN_EXPIRED, AUTH_TOKEN_INVALID (with `details.reason`), or
 * AUTH_JWKS_UNAVAILABLE when the keys to check it with cannot be fetched.
 */
export interface TokenVerifier {
  verify(token: string): Promise<VerifiedToken>;
}
