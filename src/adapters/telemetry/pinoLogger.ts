import { pino } from 'pino';
import type { Logger } from '../../ports/logger.js';

/** JSON logs to stdout; credentials and secrets are redacted wherever they appear. */
export function createPinoLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const opts = {
    level,
    base: { service: 'upshift' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'authorization', 'secret', '*.secret', 'key', '*.key', 'api_key', '*.api_key'],
      censor: '[redacted]',
    },
  };
  return (destination ? pino(opts, destination) : pino(opts)) as unknown as Logger;
}
