import {
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span as OtelSpan,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { Span, SpanAttributes, SpanOptions, Tracer } from '../../ports/tracer.js';

export interface OtelTracerOptions {
  readonly serviceName: string;
  /**
   * OTLP/HTTP base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://collector:4318`);
   * spans go to `<endpoint>/v1/traces`. Ignored when `exporter` is given.
   */
  readonly endpoint?: string;
  /** A custom exporter (tests: InMemorySpanExporter). */
  readonly exporter?: SpanExporter;
  /** `simple` exports each span as it ends (tests); `batch` (default) buffers. */
  readonly processor?: 'batch' | 'simple';
  /** Longest `shutdown()` waits for the last export (a dead collector must not stall exit). */
  readonly shutdownTimeoutMs?: number;
}

const KINDS: Record<NonNullable<SpanOptions['kind']>, SpanKind> = {
  internal: SpanKind.INTERNAL,
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
};

/**
 * The Tracer port on the OpenTelemetry SDK: a private BasicTracerProvider (the global OTel API
 * stays untouched, so several Upshift instances can share a process) with explicit W3C
 * context propagation — manual spans, no auto-instrumentation, no context manager.
 */
export function createOtelTracer(opts: OtelTracerOptions): Tracer {
  const exporter = opts.exporter ?? new OTLPTraceExporter({ url: `${(opts.endpoint ?? 'http://localhost:4318').replace(/\/+$/, '')}/v1/traces` });
  const processor = opts.processor === 'simple' ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: opts.serviceName }),
    spanProcessors: [processor],
  });
  const tracer = provider.getTracer('upshift');
  const propagator = new W3CTraceContextPropagator();
  let shutdown: Promise<void> | null = null;

  const parentContext = (carrier: string | null | undefined) =>
    carrier ? propagator.extract(ROOT_CONTEXT, { traceparent: carrier }, defaultTextMapGetter) : ROOT_CONTEXT;

  const wrap = (span: OtelSpan): Span => {
    let ended = false;
    return {
      setAttributes(attributes) {
        span.setAttributes(clean(attributes));
      },
      end(status, message) {
        if (ended) return;
        ended = true;
        if (status === 'error') span.setStatus({ code: SpanStatusCode.ERROR, ...(message !== undefined && { message }) });
        else if (status === 'ok') span.setStatus({ code: SpanStatusCode.OK });
        span.end();
      },
      carrier() {
        const out: Record<string, string> = {};
        propagator.inject(trace.setSpan(ROOT_CONTEXT, span), out, defaultTextMapSetter);
        return out.traceparent ?? null;
      },
    };
  };

  return {
    enabled: true,
    startSpan(name, o = {}) {
      const span = tracer.startSpan(
        name,
        {
          kind: KINDS[o.kind ?? 'internal'],
          ...(o.attributes && { attributes: clean(o.attributes) }),
          ...(o.startTime !== undefined && { startTime: o.startTime }),
        },
        parentContext(o.parent),
      );
      return wrap(span);
    },
    now: () => performance.timeOrigin + performance.now(),
    shutdown() {
      shutdown ??= new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, opts.shutdownTimeoutMs ?? 5000);
        timer.unref();
        provider.shutdown().then(
          () => {
            clearTimeout(timer);
            resolve();
          },
          () => {
            clearTimeout(timer);
            resolve();
          },
        );
      });
      return shutdown;
    },
  };
}

function clean(attributes: SpanAttributes): Attributes {
  const out: Attributes = {};
  for (const [k, v] of Object.entries(attributes)) if (v !== undefined) out[k] = v;
  return out;
}
