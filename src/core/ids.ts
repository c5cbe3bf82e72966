import { randomBytes } from 'node:crypto';
import { UpshiftError } from './errors.js';

/** Nominal typing: a plain string cannot be passed where an id is expected. */
export type Brand<T, B extends string> = T & { readonly __brand: B };

export type OrgId = Brand<string, 'OrgId'>;
export type JobId = Brand<string, 'JobId'>;
export type ResultId = Brand<string, 'ResultId'>;

const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz';

const CROCKFORD_CODES = Uint8Array.from(CROCKFORD, (c) => c.charCodeAt(0));
/** Scratch for base32's characters: ids are minted several times per job, one string each. */
const chars = Buffer.alloc(64);

function base32(bytes: Uint8Array): string {
  const out = bytes.length * 8 <= chars.length * 5 ? chars : Buffer.alloc(Math.ceil((bytes.length * 8) / 5));
  let n = 0;
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out[n++] = CROCKFORD_CODES[(value >>> (bits - 5)) & 31] as number;
      bits -= 5;
    }
  }
  if (bits > 0) out[n++] = CROCKFORD_CODES[(value << (5 - bits)) & 31] as number;
  return out.toString('latin1', 0, n);
}

/**
 * Random bytes drawn from a pooled buffer: one `randomBytes` call per 4 KiB instead of one
 * per id (ids are minted on the hot path, several per job). Same CSPRNG, same entropy.
 */
const POOL_SIZE = 4096;
let pool = randomBytes(POOL_SIZE);
let poolOffset = 0;

function random(n: number): Uint8Array {
  if (poolOffset + n > POOL_SIZE) {
    pool = randomBytes(POOL_SIZE);
    poolOffset = 0;
  }
  const out = pool.subarray(poolOffset, poolOffset + n);
  poolOffset += n;
  return out;
}

const ORG_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const JOB_RE = /^job_[0-9a-hjkmnp-tv-z]{26}$/;
const RESULT_RE = /^res_[0-9a-hjkmnp-tv-z]{26}$/;

export function parseOrgId(raw: unknown): OrgId {
  if (typeof raw !== 'string' || !ORG_RE.test(raw)) {
    throw new UpshiftError('TENANT_INVALID', 'org id must match ' + ORG_RE.source);
  }
  return raw as OrgId;
}

export function parseJobId(raw: unknown): JobId {
  if (typeof raw !== 'string' || !JOB_RE.test(raw)) {
    throw new UpshiftError('ID_INVALID', 'not a job id (job_ followed by 26 base32 characters)');
  }
  return raw as JobId;
}

export function parseResultId(raw: unknown): ResultId {
  if (typeof raw !== 'string' || !RESULT_RE.test(raw)) {
    throw new UpshiftError('ID_INVALID', 'not a result id (res_ followed by 26 base32 characters)');
  }
  return raw as ResultId;
}

export const isOrgId = (raw: unknown): raw is OrgId => typeof raw === 'string' && ORG_RE.test(raw);

export const isJobId = (raw: unknown): raw is JobId => typeof raw === 'string' && JOB_RE.test(raw);

/** 48-bit millisecond prefix (ULID-style) then 80 random bits, base32: sorts by creation time. */
function timeOrdered(nowMs: number): string {
  const bytes = new Uint8Array(16);
  let t = Math.max(0, Math.floor(nowMs));
  for (let i = 5; i >= 0; i--) {
    bytes[i] = t % 256;
    t = Math.floor(t / 256);
  }
  bytes.set(random(10), 6);
  return base32(bytes);
}

/**
 * Job ids sort by creation time (48-bit millisecond prefix, ULID-style) so listings and
 * cursors can order by id; the remaining 80 bits are random.
 */
export function newJobId(nowMs: number): JobId {
  return ('job_' + timeOrdered(nowMs)) as JobId;
}

/**
 * Result ids are permalink keys, built like job ids: the 80 random bits make them
 * unguessable (and every read is tenant-bound anyway); the time prefix makes a store's inserts
 * append to the primary-key index instead of dirtying a random index page per result, which
 * halved the pages each group commit writes for its results. The time it reveals is the
 * result's `created_at`, which the permalink shows anyway.
 */
export function newResultId(nowMs: number): ResultId {
  return ('res_' + timeOrdered(nowMs)) as ResultId;
}

/** An opaque random token, e.g. a lease token or a notification id. */
export function newToken(prefix: string, bytes = 16): string {
  return prefix + base32(random(bytes));
}

/** Trusted internal ids (from our own store rows) are re-branded without re-validation. */
export const asOrgId = (s: string): OrgId => s as OrgId;
export const asJobId = (s: string): JobId => s as JobId;
export const asResultId = (s: string): ResultId => s as ResultId;
