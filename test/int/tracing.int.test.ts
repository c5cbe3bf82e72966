import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createOtelTracer } from '../../src/adapters/telemetry/otelTracer.js';
import { parseJobId, parseOrgId } from '../../src/core/ids.js';
import { apiClient, eventually, startTestServer, type TestServer } from '../helpers/server.js';

// One trace from the submitting HTTP request to the worker's analyzer span: the submit span's
// context is stored on the job and the worker's spans join it (SPEC §4.3).

const ORG = 'acme-traces';
const INCOMING_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const INCOMING = `00-${INCOMING_TRACE}-00f067aa0ba902b7-01`;

const parentId = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;
const byName = (spans: ReadableSpan[], name: string): ReadableSpan => {
  const hits = spans.filter((s) => s.name === name);
  expect(hits.map((s) => s.name), `exactly one ${name}`).toEqual([name]);
  return hits[0]!;
};

describe('tracing with an in-memory exporter', () => {
  const exporter = new InMemorySpanExporter();
  const tracer = createOtelTracer({ serviceName: 'upshift-test', exporter, processor: 'simple' });
  let server: TestServer;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    server = await startTestServer({}, { tracer });
    api = apiClient(server.url, ORG);
  });
  afterAll(async () => {
    await server?.close();
    await tracer.shutdown();
  });
  beforeEach(() => exporter.reset());

  /** Submits, waits for completion and for the finalize span; returns the job's spans. */
  async function traceOfJob(headers: Record<string, string> = {}): Promise<{ jobId: string; spans: ReadableSpan[] }> {
    const r = await api('/analyze/jobs', { body: { analyzer: 'sleep', input: { ms: 5 } }, headers });
    expect(r.status).toBe(202);
    const jobId: string = r.body.job_id;
    await eventually(async () => (await api(`/analyze/jobs/${jobId}`)).body.status === 'completed');
    const spans = await eventually(async () => {
      const all = exporter.getFinishedSpans();
      return all.some((s) => s.name === 'upshift.finalize' && s.attributes['upshift.job_id'] === jobId) ? all : null;
    });
    return { jobId, spans };
  }

  it('HTTP request → upshift.submit → claim → analyzer → finalize share one trace id', async () => {
    const { jobId, spans } = await traceOfJob();
    const http = byName(spans, 'POST /analyze/jobs');
    const submit = byName(spans, 'upshift.submit');
    const claim = byName(spans, 'upshift.claim');
    const run = byName(spans, 'upshift.analyzer.run');
    const finalize = byName(spans, 'upshift.finalize');

    const traceId = http.spanContext().traceId;
    for (const s of [submit, claim, run, finalize]) expect(s.spanContext().traceId, s.name).toBe(traceId);
    expect(parentId(http)).toBeUndefined();
    expect(parentId(submit)).toBe(http.spanContext().spanId);
    for (const s of [claim, run, finalize]) expect(parentId(s), s.name).toBe(submit.spanContext().spanId);

    expect(http.attributes).toMatchObject({ 'http.request.method': 'POST', 'http.route': '/analyze/jobs', 'http.response.status_code': 202 });
    expect(run.attributes).toMatchObject({ 'upshift.job_id': jobId, 'upshift.org_id': ORG, 'upshift.analyzer': 'sleep', 'upshift.attempt': 1, 'upshift.outcome': 'completed' });
    expect(submit.attributes).toMatchObject({ 'upshift.job_id': jobId, 'upshift.analyzer': 'sleep' });
    // In time order: the claim starts before the analyzer runs, the finalize after it ends.
    const ms = (t: [number, number]) => t[0] * 1e3 + t[1] / 1e6;
    expect(ms(claim.startTime)).toBeLessThanOrEqual(ms(run.startTime));
    expect(ms(finalize.startTime)).toBeGreaterThanOrEqual(ms(run.endTime) - 1);

    // What crosses the queue is the submit span's W3C context, stored on the job.
    const job = await server.app.store.getJob(parseOrgId(ORG), parseJobId(jobId));
    expect(job?.traceContext).toBe(`00-${traceId}-${submit.spanContext().spanId}-01`);
  });

  it('an incoming traceparent is the parent of the request span, so the whole job joins the caller\'s trace', async () => {
    const { spans } = await traceOfJob({ traceparent: INCOMING });
    const http = byName(spans, 'POST /analyze/jobs');
    expect(parentId(http)).toBe('00f067aa0ba902b7');
    for (const name of ['POST /analyze/jobs', 'upshift.submit', 'upshift.claim', 'upshift.analyzer.run', 'upshift.finalize']) {
      expect(byName(spans, name).spanContext().traceId, name).toBe(INCOMING_TRACE);
    }
  });

  it('a failed attempt marks its analyzer span as an error', async () => {
    const r = await api('/analyze/jobs', { body: { analyzer: 'sleep', input: { ms: 1, fail: 'permanent' } } });
    const jobId: string = r.body.job_id;
    const spans = await eventually(async () => {
      const all = exporter.getFinishedSpans();
      return all.some((s) => s.name === 'upshift.finalize' && s.attributes['upshift.job_id'] === jobId) ? all : null;
    });
    const run = byName(spans, 'upshift.analyzer.run');
    expect(run.status.code).toBe(2); // SpanStatusCode.ERROR
    expect(run.attributes['upshift.outcome']).toBe('failed');
  });
});

describe('tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('is a no-op that still stores a valid incoming traceparent on the job, and drops an invalid one', async () => {
    expect(server.app.tracer.enabled).toBe(false);
    const api = apiClient(server.url, ORG);
    const a = await api('/analyze/jobs', { body: { analyzer: 'noop', input: 1 }, headers: { traceparent: INCOMING } });
    const b = await api('/analyze/jobs', { body: { analyzer: 'noop', input: 2 }, headers: { traceparent: 'not-a-traceparent' } });
    const stored = async (id: string) => (await server.app.store.getJob(parseOrgId(ORG), parseJobId(id)))?.traceContext;
    expect(await stored(a.body.job_id)).toBe(INCOMING);
    expect(await stored(b.body.job_id)).toBeNull();
  });
});

describe('tracing on via OTEL_EXPORTER_OTLP_ENDPOINT', () => {
  let collector: Server;
  const received: { path: string; contentType: string | undefined; body: string }[] = [];

  beforeAll(async () => {
    collector = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        received.push({ path: req.url ?? '', contentType: req.headers['content-type'], body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    await new Promise((r) => collector.close(r));
  });

  it('exports the spans over OTLP/HTTP to <endpoint>/v1/traces (flushed on close)', async () => {
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/`;
    const server = await startTestServer({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SERVICE_NAME: 'upshift-otlp-test' });
    try {
      expect(server.app.tracer.enabled).toBe(true);
      const api = apiClient(server.url, ORG);
      const r = await api('/analyze/jobs', { body: { analyzer: 'noop', input: 1 } });
      await eventually(async () => (await api(`/analyze/jobs/${r.body.job_id}`)).body.status === 'completed');
      await eventually(async () => (await server.app.store.getJob(parseOrgId(ORG), parseJobId(r.body.job_id)))?.finishedAt);
    } finally {
      await server.close();
    }
    const traces = received.filter((x) => x.path === '/v1/traces');
    expect(traces.length).toBeGreaterThan(0);
    const all = traces.map((x) => x.body).join('\n');
    for (const name of ['upshift.submit', 'upshift.claim', 'upshift.analyzer.run', 'upshift.finalize', 'POST /analyze/jobs']) expect(all).toContain(name);
    expect(all).toContain('upshift-otlp-test');
  });

  it('UPSHIFT_OTEL_ENABLED=false keeps tracing off even with an endpoint', async () => {
    const server = await startTestServer({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9/', UPSHIFT_OTEL_ENABLED: 'false' });
    try {
      expect(server.app.tracer.enabled).toBe(false);
    } finally {
      await server.close();
    }
  });
});
