import type { Env } from '../config/config.js';
import { coerceError, isUpshiftError } from '../core/errors.js';

/**
 * What a command may touch of its process. Injected (the bin shim passes the real process's),
 * so commands never read `process.env` themselves and tests can drive them in-process.
 */
export interface CliIo {
  readonly env: Env;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { readonly isTTY?: boolean };
}

/** Exit codes every command shares. `jobs wait` adds 3 for a canceled job. */
export const EXIT = { ok: 0, failure: 1, usage: 2, canceled: 3 } as const;

/** A failure with a message meant for the user as is (no stack) and an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
    /** Print the message as is, without the `upshift: ` prefix (problem responses: `code: detail`). */
    readonly bare = false,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * The one place a command's failure becomes an exit code and one stderr line. Bad
 * configuration is a usage error (2); everything else is a failure (1). No stack traces:
 * codes and messages from the catalogue are meant to be read by operators.
 */
export function reportError(io: CliIo, e: unknown): number {
  if (e instanceof CliError) {
    io.stderr.write(e.bare ? `${e.message}\n` : `upshift: ${e.message}\n`);
    return e.exitCode;
  }
  if (isUpshiftError(e)) {
    io.stderr.write(`upshift: ${e.code}: ${e.message}\n`);
    return e.code === 'CONFIG_INVALID' ? EXIT.usage : EXIT.failure;
  }
  io.stderr.write(`upshift: ${coerceError(e).message}\n`);
  return EXIT.failure;
}

export function writeJson(out: NodeJS.WritableStream, value: unknown): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A whole-number flag in [min, max]; anything else is a usage error (exit 2). */
export function intFlag(flag: string, raw: string, min: number, max: number): number {
  const n = Number(raw.trim());
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new CliError(`${flag} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`, EXIT.usage);
  }
  return n;
}
