/**
 * Minimal tracing surface for core-adjacent code (app, http), so use cases stay free of any
 * tracing SDK. Context crosses the queue as a W3C `traceparent` string (the "carrier"), stored
 * on the job at submit and handed back to the worker's spans as their parent.
 *
 * The default is `noopTracer`: no allocation beyond a tiny span object, and `carrier()`
 * passes the parent through unchanged, so an incoming `traceparent` is still stored on the
 * job when tracing is off.
 */
export interface Tracer {
  /** True when spans are recorded and exported (lets callers skip building attributes). */
  readonly enabled: boolean;
  startSpan(name: string, opts?: SpanOptions): Span;
  /** The tracer's own clock (epoch ms), to back-date a span with `startTime`. */
  now(): number;
  /** Flushes pending spans and stops exporting. Idempotent. */
  shutdown(): Promise<void>;
}

export type SpanAttributes = Readonly<Record<string, string | number | boolean | undefined>>;

export interface SpanOptions {
  /** W3C traceparent of the parent span; null/undefined/invalid → a new trace. */
  readonly parent?: string | null;
  readonly kind?: 'internal' | 'server' | 'client' | 'producer' | 'consumer';
  readonly attributes?: SpanAttributes;
  /** Start time from `Tracer.now()`; default: now. */
  readonly startTime?: number;
}

export interface Span {
  setAttributes(attributes: SpanAttributes): void;
  /** Ends the span (once; later calls are ignored). `error` marks it failed. */
  end(status?: 'ok' | 'error', message?: string): void;
  /** W3C traceparent identifying this span (no-op tracer: the parent it was given). */
  carrier(): string | null;
}

const NOOP_SPAN: Span = {
  setAttributes() {},
  end() {},
  carrier: () => null,
};

export const noopTracer: Tracer = {
  enabled: false,
  startSpan(_name, opts) {
    const parent = opts?.parent ?? null;
    if (parent === null) return NOOP_SPAN;
    return { setAttributes() {}, end() {}, carrier: () => parent };
  },
  now: () => 0,
  shutdown: async () => {},
};
