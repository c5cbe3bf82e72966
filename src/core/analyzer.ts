import type { JobId, OrgId } from './ids.js';
import type { Json } from './job.js';

/** Minimal logger surface analyzers get (pino-compatible). */
export interface AnalyzerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface AnalyzerContext {
  readonly jobId: JobId;
  readonly orgId: OrgId;
  readonly attempt: number;
  /** Aborted on cancel, timeout or shutdown; `signal.reason` says which. */
  readonly signal: AbortSignal;
  readonly logger: AnalyzerLogger;
  /** Report progress 0..1; throttled by the runtime, cheap to call often. */
  progress(fraction: number, message?: string): void;
  /**
   * Record a partial snapshot. Idempotent by `chunkKey` per job: a replayed attempt that
   * records the same key again creates nothing new. Resolves once durably stored.
   */
  partial(chunkKey: string, payload: Json): Promise<void>;
}

/** A JSON Schema (draft 2020-12 subset understood by Ajv) for an analyzer's input. */
export type JsonSchema = Record<string, unknown>;

export interface Analyzer<I = Json, O = Json> {
  readonly name: string;
  readonly version: string;
  readonly description?: string;
  readonly inputSchema: JsonSchema;
  /** Per-attempt timeout; default from config. */
  readonly timeoutMs?: number;
  /** Default max attempts for jobs of this analyzer (a job may ask for fewer/more). */
  readonly maxAttempts?: number;
  /** How many jobs of this analyzer one worker process runs at once. */
  readonly concurrency?: number;
  run(input: I, ctx: AnalyzerContext): Promise<O>;
}

/** Throw from an analyzer to fail the job without retrying. */
export class PermanentError extends Error {
  readonly code: string;
  constructor(message: string, code = 'ANALYZER_FAILED', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentError';
    this.code = code;
  }
}

/** Throw from an analyzer to retry no earlier than `retryAfterMs` from now. */
export class RetryAfterError extends Error {
  readonly retryAfterMs: number;
  constructor(message: string, retryAfterMs: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RetryAfterError';
    this.retryAfterMs = retryAfterMs;
  }
}

export function defineAnalyzer<I = Json, O = Json>(a: Analyzer<I, O>): Analyzer<I, O> {
  if (!/^[a-z][a-z0-9._-]{0,63}$/.test(a.name)) {
    throw new Error(`analyzer name "${a.name}" must match ^[a-z][a-z0-9._-]{0,63}$`);
  }
  return a;
}
