import type { FeatureFlagSource } from '../ports/featureFlags.js';
import type { ErrorCode } from '../core/errors.js';
import type { FastifyRequest } from 'fastify';
import type { AnalyzerRegistry } from '../app/analyzerRegistry.js';
import type { JobService } from '../app/jobService.js';
import type { Config } from '../config/config.js';
import { UpshiftError } from '../core/errors.js';
import type { OrgId } from '../core/ids.js';
import type { Logger } from '../ports/logger.js';
import type { OpenRequests } from './sse.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Route acts for a tenant: auth + tenant resolution + rate limit run before it. */
    tenant?: boolean;
    /** Route is slow by design (sync wait, stream): excluded from slow-request logging. */
    longRunning?: boolean;
  }
  interface FastifyRequest {
    /** Resolved by the tenancy hook on tenant routes; null elsewhere. */
    upshiftOrg: OrgId | null;
  }
}

/** What every route module receives. */
export interface RouteContext {
  readonly service: JobService;
  readonly registry: AnalyzerRegistry;
  readonly config: Config;
  readonly logger: Logger;
  readonly open: OpenRequests;
  readonly flags: FeatureFlagSource;
}

/** The org of a tenant route (set by the onRequest hook). */
export function orgOf(request: FastifyRequest): OrgId {
  const org = request.upshiftOrg;
  // Only reachable if a route forgot `config: { tenant: true }`: fail closed.
  if (org === null) throw new UpshiftError('TENANT_MISSING', 'no tenant context for this route');
  return org;
}

/** Readiness probe supplied by the composition root. */
/** `code`: the catalogue code of the first failing dependency (default STORE_UNAVAILABLE). */
export type Readiness = () => Promise<{ ok: boolean; checks: Record<string, string>; code?: ErrorCode }>;

export const TENANT_CONFIG = { tenant: true } as const;
