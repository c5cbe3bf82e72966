import type { FastifyRequest } from 'fastify';
import type { ApiKeyService } from '../app/apiKeys.js';
import type { Config } from '../config/config.js';
import { UpshiftError } from '../core/errors.js';
import { parseOrgId, type OrgId } from '../core/ids.js';
import type { TokenVerifier } from '../ports/tokenVerifier.js';

/**
 * Tenant context and authentication. Tenancy (which org a request acts for) is separate from
 * authentication (who is calling): `trusted-header` takes the org from X-Org-Id/X-Tenant-Id
 * (a gateway vouches for it); `api-key` takes it from the key and `jwt` from the token's org
 * claim, and in both a tenant header naming another org is refused (403 TENANT_MISMATCH).
 */

export interface TenantResolverOptions {
  readonly mode: Config['auth']['mode'];
  readonly apiKeys: ApiKeyService;
  /** Required in `jwt` mode. */
  readonly tokens?: TokenVerifier | undefined;
}

export type TenantResolver = (request: FastifyRequest) => Promise<OrgId>;

/** The org named by X-Org-Id / X-Tenant-Id, or null when neither is sent. */
export function tenantFromHeaders(headers: FastifyRequest['headers']): OrgId | null {
  const orgHeader = headerValue(headers['x-org-id']);
  const tenantHeader = headerValue(headers['x-tenant-id']);
  if (orgHeader !== undefined && tenantHeader !== undefined && orgHeader !== tenantHeader) {
    throw new UpshiftError('TENANT_INVALID', 'X-Org-Id and X-Tenant-Id disagree; send one, or the same org in both');
  }
  const raw = orgHeader ?? tenantHeader;
  if (raw === undefined) return null;
  try {
    return parseOrgId(raw);
  } catch {
    throw new UpshiftError('TENANT_INVALID', 'tenant header is not a valid org id (1–64 of A-Z a-z 0-9 . _ : -, starting alphanumeric)');
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  // Node joins repeated x- headers with ", "; an array only reaches us from inject().
  return Array.isArray(v) ? v.join(', ') : v;
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

export function createTenantResolver(opts: TenantResolverOptions): TenantResolver {
  if (opts.mode === 'trusted-header') {
    return async (request) => {
      const org = tenantFromHeaders(request.headers);
      if (org === null) throw new UpshiftError('TENANT_MISSING', 'send the tenant in X-Org-Id (or X-Tenant-Id)');
      return org;
    };
  }
  if (opts.mode === 'jwt') {
    const tokens = opts.tokens;
    if (!tokens) throw new Error('auth mode jwt needs a token verifier');
    return async (request) => {
      const { orgId } = await tokens.verify(bearer(request, 'token'));
      return requireSameOrg(request, orgId, 'the token');
    };
  }
  return async (request) => {
    const record = await opts.apiKeys.verify(bearer(request, 'key'));
    return requireSameOrg(request, record.orgId, 'the API key');
  };
}

/** The credential of `Authorization: Bearer <credential>`; AUTH_REQUIRED / AUTH_INVALID otherwise. */
function bearer(request: FastifyRequest, what: 'key' | 'token'): string {
  const auth = request.headers.authorization;
  const example = what === 'key' ? 'an API key as "Authorization: Bearer <key>"' : 'a token as "Authorization: Bearer <JWT>"';
  if (auth === undefined || auth.trim() === '') throw new UpshiftError('AUTH_REQUIRED', `send ${example}`);
  const m = BEARER.exec(auth);
  if (!m) throw new UpshiftError('AUTH_INVALID', `the Authorization header must be "Bearer <${what === 'key' ? 'key' : 'JWT'}>"`);
  return m[1] as string;
}

/** A tenant header may repeat the credential's org, never name another one. */
function requireSameOrg(request: FastifyRequest, orgId: OrgId, credential: string): OrgId {
  const named = tenantFromHeaders(request.headers);
  if (named !== null && named !== orgId) {
    throw new UpshiftError('TENANT_MISMATCH', `${credential} belongs to another org than the tenant header names`);
  }
  return orgId;
}

/**
 * In-memory token bucket per org: `perMinute` tokens, refilled continuously. Per process (in
 * scale mode each API process enforces its own share), bounded in memory.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perMs: number;

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
    private readonly maxBuckets = 100_000,
  ) {
    this.perMs = perMinute / 60_000;
  }

  /** Takes one token or throws RATE_LIMITED with the seconds until the next one. */
  take(org: OrgId): void {
    const now = this.now();
    let b = this.buckets.get(org);
    if (!b) {
      if (this.buckets.size >= this.maxBuckets) this.prune(now);
      b = { tokens: this.perMinute, at: now };
      this.buckets.set(org, b);
    } else {
      b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * this.perMs);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return;
    }
    const retryAfterSeconds = Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000));
    throw new UpshiftError('RATE_LIMITED', `rate limit of ${this.perMinute} requests per minute exceeded for this tenant`, {
      details: { retry_after_seconds: retryAfterSeconds },
    });
  }

  /** Drops buckets that have refilled completely (they behave like new ones). */
  private prune(now: number): void {
    for (const [org, b] of this.buckets) {
      if (b.tokens + (now - b.at) * this.perMs >= this.perMinute) this.buckets.delete(org);
    }
    if (this.buckets.size >= this.maxBuckets) this.buckets.clear();
  }
}
