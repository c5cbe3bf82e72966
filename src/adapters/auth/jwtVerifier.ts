import { createRemoteJWKSet, errors, jwtVerify, type CryptoKey, type FlattenedJWSInput, type JWSHeaderParameters } from 'jose';
import type { JwtAuthConfig } from '../../config/config.js';
import { coerceError, UpshiftError } from '../../core/errors.js';
import { parseOrgId } from '../../core/ids.js';
import type { Clock } from '../../ports/clock.js';
import type { TokenVerifier, VerifiedToken } from '../../ports/tokenVerifier.js';

/**
 * `details.reason` of AUTH_TOKEN_INVALID: which check a token failed. Stable (docs/api.md),
 * so a client or an operator can tell "wrong audience" from "signed by an unknown key".
 */
export type TokenInvalidReason =
  | 'malformed'
  | 'algorithm_not_allowed'
  | 'unknown_key'
  | 'ambiguous_key'
  | 'signature'
  | 'issuer'
  | 'audience'
  | 'not_yet_valid'
  | 'claims'
  | 'org_claim_missing'
  | 'org_claim_invalid';

/**
 * After a failed JWKS fetch, requests that need the key set answer 503 at once for this long
 * instead of each starting another fetch: a down IdP is not hammered at the request rate.
 */
const FAIL_FAST_MS = 1000;

/**
 * Verifies `Authorization: Bearer <JWT>` with jose against the identity provider's JWKS
 * (createRemoteJWKSet: cached for `jwksCacheMaxAgeMs`, refetched when a token names an
 * unknown `kid` and the last fetch is older than `jwksCooldownMs`, so a rotated key is
 * accepted without a restart). The org is the `orgClaim` claim, checked like a tenant header.
 * Neither the token nor its claims are ever put into an error message.
 */
export function createJwtVerifier(cfg: JwtAuthConfig, clock: Clock): TokenVerifier {
  const remote = createRemoteJWKSet(new URL(cfg.jwksUrl), {
    cacheMaxAge: cfg.jwksCacheMaxAgeMs,
    cooldownDuration: cfg.jwksCooldownMs,
    timeoutDuration: cfg.jwksTimeoutMs,
  });
  let failFastUntil = 0;
  let lastFailure: unknown = null;
  const unavailable = (cause: unknown): UpshiftError =>
    new UpshiftError('AUTH_JWKS_UNAVAILABLE', `JWKS ${cfg.jwksUrl} could not be fetched: ${describe(cause)}`, {
      cause,
      details: { retry_after_seconds: Math.ceil(FAIL_FAST_MS / 1000) },
    });

  // jose hands every problem of the key lookup to its caller; only "no key / several keys fit"
  // is about the token. Anything else (refused, timeout, non-200, not a key set, a key that
  // does not import) is the key set being unavailable: 503, never a 401 for a good token.
  const getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    if (!remote.fresh && Date.now() < failFastUntil) {
      throw unavailable(new Error(`not fetched again yet: the last fetch (under ${FAIL_FAST_MS} ms ago) failed: ${describe(lastFailure)}`));
    }
    try {
      return await remote(header, token);
    } catch (e) {
      if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys || e instanceof errors.JOSENotSupported) throw e;
      failFastUntil = Date.now() + FAIL_FAST_MS;
      lastFailure = e;
      throw unavailable(e);
    }
  };

  return {
    async verify(token: string): Promise<VerifiedToken> {
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(token, getKey, {
          algorithms: [...cfg.algorithms],
          issuer: [...cfg.issuers],
          audience: [...cfg.audiences],
          clockTolerance: cfg.clockToleranceSeconds,
          requiredClaims: ['exp'],
          currentDate: new Date(clock.now()),
        }));
      } catch (e) {
        throw toAuthError(e);
      }
      const raw = payload[cfg.orgClaim];
      if (raw === undefined || raw === null) throw invalid('org_claim_missing', `the token has no "${cfg.orgClaim}" claim naming its org`);
      let orgId;
      try {
        orgId = parseOrgId(raw);
      } catch {
        throw invalid('org_claim_invalid', `the token's "${cfg.orgClaim}" claim is not a valid org id (a string of 1–64 of A-Z a-z 0-9 . _ : -, starting alphanumeric)`);
      }
      return { orgId, subject: typeof payload.sub === 'string' ? payload.sub : null };
    },
  };
}

function invalid(reason: TokenInvalidReason, message: string, cause?: unknown): UpshiftError {
  return new UpshiftError('AUTH_TOKEN_INVALID', message, { details: { reason }, ...(cause !== undefined && { cause }) });
}

/** jose's errors → catalogue errors; our own (AUTH_JWKS_UNAVAILABLE) pass through. */
function toAuthError(e: unknown): Error {
  if (e instanceof UpshiftError) return e;
  if (e instanceof errors.JWTExpired) return new UpshiftError('AUTH_TOKEN_EXPIRED', 'the token has expired (exp); get a new one', { cause: e });
  if (e instanceof errors.JWTClaimValidationFailed) {
    switch (e.claim) {
      case 'iss':
        return invalid('issuer', 'the token was not issued by an accepted issuer (iss)', e);
      case 'aud':
        return invalid('audience', 'the token is not meant for this service (aud)', e);
      case 'nbf':
        return invalid('not_yet_valid', 'the token is not valid yet (nbf)', e);
      default:
        return invalid('claims', `the token's "${e.claim}" claim is ${e.reason === 'missing' ? 'missing' : 'not valid'}`, e);
    }
  }
  if (e instanceof errors.JOSEAlgNotAllowed || e instanceof errors.JOSENotSupported) return invalid('algorithm_not_allowed', 'the token is signed with an algorithm this server does not accept (alg)', e);
  if (e instanceof errors.JWKSNoMatchingKey) return invalid('unknown_key', 'no key of the identity provider matches the token (kid)', e);
  if (e instanceof errors.JWKSMultipleMatchingKeys) return invalid('ambiguous_key', 'several keys of the identity provider match the token; it must name its key (kid)', e);
  if (e instanceof errors.JWSSignatureVerificationFailed) return invalid('signature', 'the token signature does not verify', e);
  if (e instanceof errors.JOSEError) return invalid('malformed', 'the bearer token is not a well-formed signed JWT', e);
  return coerceError(e);
}

/** A fetch failure's reason (undici nests the socket error as `cause`). */
function describe(e: unknown): string {
  const err = coerceError(e);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}
