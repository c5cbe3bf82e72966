import { UpshiftError, coerceError } from '../../../core/errors.js';

/** The SQLSTATE of a pg error (or a node socket error code), if any. */
export function sqlState(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string') {
    return (e as { code: string }).code;
  }
  return undefined;
}

/** Serialization failure / deadlock: the transaction may simply be run again. */
export const isRetryable = (e: unknown): boolean => {
  const s = sqlState(e);
  return s === '40001' || s === '40P01';
};

const NODE_NET = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** The connection (not the statement) failed: the pool will replace the client. */
export function isConnectionError(e: unknown): boolean {
  const s = sqlState(e);
  if (s !== undefined) {
    if (NODE_NET.has(s)) return true;
    // 08: connection exception; 57P0x: admin/crash shutdown, cannot connect now; 53300: too many connections.
    if (s.startsWith('08') || s === '57P01' || s === '57P02' || s === '57P03' || s === '53300') return true;
  }
  const msg = coerceError(e).message;
  return /Connection terminated|Client has encountered a connection error|connection timeout|Client was closed/i.test(msg);
}

/**
 * Translates whatever pg threw into a catalogue error, so every store adapter fails the same
 * way. UpshiftErrors (our own guards) pass through unchanged.
 */
export function toStoreError(e: unknown): UpshiftError {
  if (e instanceof UpshiftError) return e;
  const err = coerceError(e);
  if (isConnectionError(e)) return new UpshiftError('STORE_UNAVAILABLE', `PostgreSQL unavailable: ${err.message}`, { cause: err });
  const s = sqlState(e);
  switch (s) {
    case '23505':
    case '23503':
    case '23514':
    case '23502':
      return new UpshiftError('STORE_CONFLICT', `PostgreSQL constraint violated: ${err.message}`, { cause: err });
    case '40001':
    case '40P01':
    case '55P03':
    case '57014':
      return new UpshiftError('STORE_UNAVAILABLE', `PostgreSQL is busy: ${err.message}`, { cause: err });
    case '42P01':
    case '3F000':
    case '42703':
      return new UpshiftError('STORE_NOT_MIGRATED', 'the PostgreSQL schema is missing or older than this code; run `upshift migrate`', { cause: err });
    case '22023':
    case '42704':
      // SET ROLE to a role that does not exist yet: nobody ran migrate() on this cluster.
      if (/role .* does not exist/i.test(err.message)) {
        return new UpshiftError('STORE_NOT_MIGRATED', 'the PostgreSQL roles of the store do not exist; run `upshift migrate`', { cause: err });
      }
      break;
    case '42501':
      // Insufficient privilege or a row-level security WITH CHECK violation: always a bug or a
      // misconfigured role, never something a tenant can cause.
      return new UpshiftError('INTERNAL', `PostgreSQL refused the operation: ${err.message}`, { cause: err });
    default:
      break;
  }
  if (s !== undefined && /^(53|58|XX)/.test(s)) {
    return new UpshiftError('STORE_UNAVAILABLE', `PostgreSQL error ${s}: ${err.message}`, { cause: err });
  }
  return new UpshiftError('INTERNAL', s ? `PostgreSQL error ${s}: ${err.message}` : err.message, { cause: err });
}
