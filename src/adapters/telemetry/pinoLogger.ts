import { pino } from 'pino';
import type { Logger } from '../../ports/logger.js';

/**
 * Field paths whose values never reach a log line (SPEC §7: secrets never appear in logs).
 * Paths, not a scan of every value: redaction compiles to a few property checks per record.
 * Up to two levels of nesting are covered (`{ endpoint: { secret } }`, `{ a: { b: { secret } } }`).
 */
export const REDACT_PATHS: readonly string[] = [
  'authorization',
  'Authorization',
  'headers.authorization',
  'headers.Authorization',
  'headers.cookie',
  'headers["x-api-key"]',
  '*.headers.authorization',
  '*.headers.Authorization',
  '*.headers.cookie',
  '*.headers["x-api-key"]',
  'secret',
  '*.secret',
  '*.*.secret',
  'webhook_secret',
  '*.webhook_secret',
  'key',
  '*.key',
  'api_key',
  '*.api_key',
  'password',
  '*.password',
  'token',
  '*.token',
];

/**
 * Credentials that could still hide inside free text (an error message quoting a header or a
 * URL): bearer tokens, API keys (`upk_…`), Standard Webhooks secrets (`whsec_…`) and JWTs
 * without their `Bearer ` (a JSON header always encodes to `eyJ…`).
 */
const SECRET_TEXT = /\b(Bearer\s+)[^\s"',;]+|\b(upk|whsec)_[A-Za-z0-9+/=_-]+|\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/gi;

export function scrubSecrets(text: string): string {
  return text.replace(SECRET_TEXT, (_m, bearer: string | undefined, prefix: string | undefined) =>
    bearer ? `${bearer}[redacted]` : prefix ? `${prefix}_[redacted]` : '[redacted-jwt]',
  );
}

function serializeError(e: unknown): unknown {
  const out = pino.stdSerializers.err(e as Error) as unknown as Record<string, unknown>;
  if (out && typeof out === 'object') {
    for (const k of ['message', 'stack'] as const) if (typeof out[k] === 'string') out[k] = scrubSecrets(out[k]);
  }
  return out;
}

/** JSON logs to stdout; credentials and secrets are redacted (REDACT_PATHS, error texts scrubbed). */
export function createPinoLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const opts = {
    level,
    base: { service: 'upshift' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    serializers: { err: serializeError },
  };
  return (destination ? pino(opts, destination) : pino(opts)) as unknown as Logger;
}
