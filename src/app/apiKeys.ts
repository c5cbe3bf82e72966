import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { UpshiftError } from '../core/errors.js';
import { newToken, type OrgId } from '../core/ids.js';
import type { Clock } from '../ports/clock.js';
import type { ApiKeyRecord, JobStore } from '../ports/jobStore.js';

/**
 * API keys: `upk_<key id>.<secret>`. Only the SHA-256 of the whole key is stored; the key
 * is shown once at creation. Each key is bound to exactly one org.
 */
export class ApiKeyService {
  constructor(
    private readonly store: JobStore,
    private readonly clock: Clock,
  ) {}

  async create(orgId: OrgId, label: string | null): Promise<{ keyId: string; key: string }> {
    const keyId = newToken('key_', 10);
    const key = `upk_${keyId.slice(4)}.${randomBytes(24).toString('base64url')}`;
    await this.store.createApiKey({ keyId, orgId, hash: hashKey(key), label, createdAt: this.clock.now(), revokedAt: null });
    return { keyId, key };
  }

  /** Resolves a presented key to its org; AUTH_INVALID for unknown, malformed or revoked keys. */
  async verify(presented: string): Promise<ApiKeyRecord> {
    if (!/^upk_[0-9a-z]{16}\.[A-Za-z0-9_-]{32}$/.test(presented)) throw new UpshiftError('AUTH_INVALID', 'API key is malformed');
    const hash = hashKey(presented);
    const rec = await this.store.findApiKeyByHash(hash);
    if (!rec || rec.revokedAt !== null || !timingSafeEqual(Buffer.from(rec.hash), Buffer.from(hash))) {
      throw new UpshiftError('AUTH_INVALID', 'API key is not valid');
    }
    return rec;
  }

  revoke(keyId: string): Promise<boolean> {
    return this.store.revokeApiKey(keyId, this.clock.now());
  }

  list(orgId: OrgId | null): Promise<ApiKeyRecord[]> {
    return this.store.listApiKeys(orgId);
  }
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
