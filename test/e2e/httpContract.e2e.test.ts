import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asOrgId } from '../../src/core/ids.js';
import { apiClient, eventually, readSse, startTestServer, type TestServer } from '../helpers/server.js';

// Happy paths of every route over a real socket, with jobs run by the in-process worker.

let server: TestServer;
let api: ReturnType<typeof apiClient>;

beforeAll(async () => {
  server = await startTestServer({
    UPSHIFT_SYNC_TIMEOUT_MS: '3000',
    UPSHIFT_SSE_HEARTBEAT_MS: '150',
    UPSHIFT_WORKER_CONCURRENCY: '8',
    // One running job at a time for this org, so a second job stays queued.
    UPSHIFT_ORG_MAX_RUNNING: 'cancel-org=1',
  });
  api = apiClient(server.url, 'org-a');
});

afterAll(async () => {
  await server?.close();
});

async function submit(body: unknown, org = 'org-a', headers: Record<string, string> = {}) {
  const r = await api('/analyze/jobs', { body, org, headers });
  expect(r.status, r.text).toBe(202);
  return r.body.job_id as string;
}

function waitForStatus(jobId: string, statuses: string[], org = 'org-a') {
  return eventually(async () => {
    const r = await api(`/analyze/jobs/${jobId}`, { org });
    return statuses.includes(r.body.status) ? r.body : null;
  });
}

const JOB_KEYS = [
  'job_id', 'analyzer', 'status', 'attempt', 'max_attempts', 'priority', 'progress', 'idempotency_key', 'created_at',
  'started_at', 'finished_at', 'cancel_requested_at', 'result_id', 'partial_count', 'error', 'status_url', 'events_url',
  'stream_url', 'results_url',
].sort();

describe('ops routes', () => {
  it('GET /health and /ready need no tenant', async () => {
    const h = await api('/health', { org: null });
    expect(h.status).toBe(200);
    expect(h.body).toEqual({ status: 'ok' });
    const r = await api('/ready', { org: null });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('ready');
    expect(r.body.checks.store).toBe('ok');
  });

  it('GET /openapi.json documents every route as OpenAPI 3.1', async () => {
    const r = await api('/openapi.json', { org: null });
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe('3.1.0');
    const paths = r.body.paths as Record<string, Record<string, any>>;
    for (const [path, method] of [
      ['/analyze', 'post'],
      ['/analyze/jobs', 'post'],
      ['/analyze/jobs', 'get'],
      ['/analyze/jobs/{job_id}', 'get'],
      ['/analyze/jobs/{job_id}/events', 'get'],
      ['/analyze/jobs/{job_id}/stream', 'get'],
      ['/analyze/events/stream', 'get'],
      ['/analyze/jobs/{job_id}/cancel', 'post'],
      ['/analyze/jobs/{job_id}/results', 'get'],
      ['/analyze/results/{result_id}', 'get'],
      ['/health', 'get'],
      ['/ready', 'get'],
    ] as const) {
      const op = paths[path]?.[method];
      expect(op, `${method} ${path}`).toBeDefined();
      expect(Object.keys(op.responses ?? {}).length, `${method} ${path} responses`).toBeGreaterThan(0);
    }
    expect(paths['/analyze/jobs']!.post.requestBody.content['application/json'].schema.required).toContain('analyzer');
    expect(paths['/analyze/jobs']!.post.requestBody.content['text/csv']).toBeDefined();
  });

  it('GET /docs serves the Swagger UI from the package', async () => {
    const res = await fetch(`${server.url}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(await res.text()).toMatch(/swagger/i);
  });
});

describe('submit, status, events, results, permalinks', () => {
  it('POST /analyze/jobs → 202 + Location + job reference; the job completes', async () => {
    const r = await api('/analyze/jobs', { body: { analyzer: 'noop', input: { hello: 'world' }, priority: 5, max_attempts: 2 } });
    expect(r.status).toBe(202);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    const id = r.body.job_id as string;
    expect(id).toMatch(/^job_[0-9a-z]{26}$/);
    expect(r.headers.get('location')).toBe(`/analyze/jobs/${id}`);
    expect(r.headers.get('idempotent-replayed')).toBeNull();
    expect(r.body).toEqual({
      job_id: id,
      status: 'queued',
      status_url: `/analyze/jobs/${id}`,
      events_url: `/analyze/jobs/${id}/events`,
      stream_url: `/analyze/jobs/${id}/stream`,
    });

    const job = await waitForStatus(id, ['completed']);
    expect(Object.keys(job).sort()).toEqual(JOB_KEYS);
    expect(job).toMatchObject({
      job_id: id,
      analyzer: 'noop',
      status: 'completed',
      attempt: 1,
      max_attempts: 2,
      priority: 5,
      idempotency_key: null,
      cancel_requested_at: null,
      partial_count: 0,
      error: null,
      results_url: `/analyze/jobs/${id}/results`,
    });
    expect(job.progress).toEqual({ fraction: expect.any(Number), message: null });
    for (const k of ['created_at', 'started_at', 'finished_at']) expect(new Date(job[k]).toISOString()).toBe(job[k]);
    expect(job.result_id).toMatch(/^res_/);

    const ev = await api(`/analyze/jobs/${id}/events`);
    expect(ev.status).toBe(200);
    expect(ev.body.job_id).toBe(id);
    expect(ev.body.events.map((e: any) => e.type)).toEqual(['job.queued', 'job.started', 'job.completed']);
    expect(ev.body.events.map((e: any) => e.event_seq)).toEqual([1, 2, 3]);
    expect(Object.keys(ev.body.events[0]).sort()).toEqual(['event_seq', 'job_id', 'occurred_at', 'payload', 'position', 'status', 'type']);
    expect(ev.body.next_after_seq).toBe(3);

    const res = await api(`/analyze/jobs/${id}/results`);
    expect(res.status).toBe(200);
    expect(res.body.results).toHaveLength(1);
    expect(res.body.results[0]).toMatchObject({ result_id: job.result_id, kind: 'final', chunk_key: null, payload: { hello: 'world' } });

    const p = await api(`/analyze/results/${job.result_id}`);
    expect(p.status).toBe(200);
    expect(p.body).toMatchObject({
      result_id: job.result_id,
      requested_result_id: job.result_id,
      projection_mode: 'exact',
      job_id: id,
      kind: 'final',
      payload: { hello: 'world' },
      job_status: 'completed',
    });
  });

  it('X-Tenant-Id works like X-Org-Id, and both may be sent when they agree', async () => {
    const id = await submit({ analyzer: 'noop', input: 1 });
    const viaTenant = await api(`/analyze/jobs/${id}`, { org: null, headers: { 'x-tenant-id': 'org-a' } });
    expect(viaTenant.status).toBe(200);
    const both = await api(`/analyze/jobs/${id}`, { headers: { 'x-tenant-id': 'org-a' } });
    expect(both.status).toBe(200);
  });

  it('events paging with after_seq/limit, sleep partials, permalink exact vs latest', async () => {
    const id = await submit({ analyzer: 'sleep', input: { ms: 150, steps: 3 } });
    const job = await waitForStatus(id, ['completed']);
    expect(job.partial_count).toBe(3);
    expect(job.progress.fraction).toBe(1);

    const all = await api(`/analyze/jobs/${id}/events?limit=1000`);
    const seqs = all.body.events.map((e: any) => e.event_seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect(all.body.events.at(-1).type).toBe('job.completed');
    const paged: number[] = [];
    let after = 0;
    for (;;) {
      const page = await api(`/analyze/jobs/${id}/events?after_seq=${after}&limit=2`);
      expect(page.status).toBe(200);
      if (page.body.events.length === 0) break;
      expect(page.body.events.length).toBeLessThanOrEqual(2);
      paged.push(...page.body.events.map((e: any) => e.event_seq));
      after = page.body.next_after_seq;
    }
    expect(paged).toEqual(seqs);

    const results = (await api(`/analyze/jobs/${id}/results`)).body.results as any[];
    expect(results.map((r) => r.kind)).toEqual(['partial', 'partial', 'partial', 'final']);
    expect(results.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    expect(results[0].chunk_key).toBe('step-1');
    const partial = results[0];
    const final = results[3];

    const exact = await api(`/analyze/results/${partial.result_id}?view=exact`);
    expect(exact.body).toMatchObject({ result_id: partial.result_id, requested_result_id: partial.result_id, projection_mode: 'exact', kind: 'partial', chunk_key: 'step-1' });
    const dflt = await api(`/analyze/results/${partial.result_id}`);
    expect(dflt.body.result_id).toBe(partial.result_id);
    const latest = await api(`/analyze/results/${partial.result_id}?view=latest`);
    expect(latest.body).toMatchObject({
      result_id: final.result_id,
      requested_result_id: partial.result_id,
      projection_mode: 'latest',
      kind: 'final',
      payload: { slept_ms: 150, steps: 3 },
      job_status: 'completed',
    });
  });

  it('Idempotency-Key: same key + body → same job (replayed); different body → 409', async () => {
    const body = { analyzer: 'noop', input: { n: 1 } };
    const headers = { 'idempotency-key': 'order-42:v1' };
    const first = await api('/analyze/jobs', { body, headers });
    expect(first.status).toBe(202);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const again = await api('/analyze/jobs', { body: { input: { n: 1 }, analyzer: 'noop' }, headers });
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.job_id).toBe(first.body.job_id);
    expect(again.headers.get('location')).toBe(`/analyze/jobs/${first.body.job_id}`);

    const conflict = await api('/analyze/jobs', { body: { analyzer: 'noop', input: { n: 2 } }, headers });
    expect(conflict.status).toBe(409);
    expect(conflict.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(conflict.body.code).toBe('IDEMPOTENCY_CONFLICT');

    // Keys are per tenant: another org may use the same key.
    const other = await api('/analyze/jobs', { body, headers, org: 'org-b' });
    expect(other.status).toBe(202);
    expect(other.body.job_id).not.toBe(first.body.job_id);
    const job = await api(`/analyze/jobs/${first.body.job_id}`);
    expect(job.body.idempotency_key).toBe('order-42:v1');
  });
});

describe('listing', () => {
  it('filters by status/analyzer/time and pages with a cursor, newest first', async () => {
    const org = 'list-org';
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await submit({ analyzer: 'noop', input: i }, org));
    const failing = await submit({ analyzer: 'sleep', input: { ms: 1, fail: 'permanent' } }, org);
    for (const id of ids) await waitForStatus(id, ['completed'], org);
    await waitForStatus(failing, ['failed'], org);
    const all = [...ids, failing].reverse();

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
      const page = await api(`/analyze/jobs?limit=2${q}`, { org });
      expect(page.status).toBe(200);
      expect(page.body.jobs.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.jobs.map((j: any) => j.job_id));
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor !== null && pages < 10);
    expect(seen).toEqual(all);
    expect(pages).toBe(3);

    const dflt = await api('/analyze/jobs', { org });
    expect(dflt.body.jobs.map((j: any) => j.job_id)).toEqual(all);
    expect(dflt.body.next_cursor).toBeNull();
    expect(Object.keys(dflt.body.jobs[0]).sort()).toEqual(JOB_KEYS);

    const failed = await api('/analyze/jobs?status=failed', { org });
    expect(failed.body.jobs.map((j: any) => j.job_id)).toEqual([failing]);
    expect(failed.body.jobs[0].error).toMatchObject({ code: expect.any(String), message: expect.stringContaining('permanent') });
    const sleeps = await api('/analyze/jobs?analyzer=sleep', { org });
    expect(sleeps.body.jobs.map((j: any) => j.job_id)).toEqual([failing]);
    const completedNoop = await api('/analyze/jobs?analyzer=noop&status=completed&limit=200', { org });
    expect(completedNoop.body.jobs).toHaveLength(5);

    const future = new Date(Date.now() + 60_000).toISOString();
    const past = new Date(Date.now() - 3_600_000).toISOString();
    expect((await api(`/analyze/jobs?created_after=${future}`, { org })).body.jobs).toHaveLength(0);
    expect((await api(`/analyze/jobs?created_after=${past}`, { org })).body.jobs).toHaveLength(6);
    expect((await api(`/analyze/jobs?created_before=${past}`, { org })).body.jobs).toHaveLength(0);
    expect((await api(`/analyze/jobs?created_before=${future}&created_after=${past}`, { org })).body.jobs).toHaveLength(6);

    // Other tenants see none of it.
    expect((await api('/analyze/jobs', { org: 'list-org-2' })).body).toEqual({ jobs: [], next_cursor: null });
  });
});

describe('cancel', () => {
  const org = 'cancel-org';

  it('queued → canceled now; running → requested, then canceled; terminal → unchanged; all idempotent', async () => {
    const running = await submit({ analyzer: 'sleep', input: { ms: 30_000 } }, org);
    await waitForStatus(running, ['running'], org);
    const queued = await submit({ analyzer: 'noop', input: null }, org);
    expect((await api(`/analyze/jobs/${queued}`, { org })).body.status).toBe('queued');

    const c1 = await api(`/analyze/jobs/${queued}/cancel`, { method: 'POST', org });
    expect(c1.status).toBe(200);
    expect(c1.body).toMatchObject({ job_id: queued, status: 'canceled', cancel: 'canceled' });
    expect(Object.keys(c1.body).sort()).toEqual([...JOB_KEYS, 'cancel'].sort());
    const c2 = await api(`/analyze/jobs/${queued}/cancel`, { method: 'POST', org });
    expect(c2.status).toBe(200);
    expect(c2.body).toEqual(c1.body);

    // An empty JSON body is accepted too (clients that always send Content-Type).
    const r1 = await api(`/analyze/jobs/${running}/cancel`, { method: 'POST', org, body: '', headers: { 'content-type': 'application/json' } });
    expect(r1.status).toBe(200);
    expect(['requested', 'canceled']).toContain(r1.body.cancel);
    expect(r1.body.cancel_requested_at).not.toBeNull();
    const r2 = await api(`/analyze/jobs/${running}/cancel`, { method: 'POST', org });
    expect(r2.status).toBe(200);
    expect(r2.body.cancel_requested_at).toBe(r1.body.cancel_requested_at);
    const canceled = await waitForStatus(running, ['canceled'], org);
    const r3 = await api(`/analyze/jobs/${running}/cancel`, { method: 'POST', org });
    expect(r3.body).toMatchObject({ status: 'canceled', cancel: 'canceled', finished_at: canceled.finished_at });
    const r4 = await api(`/analyze/jobs/${running}/cancel`, { method: 'POST', org });
    expect(r4.body).toEqual(r3.body);

    const events = (await api(`/analyze/jobs/${running}/events`, { org })).body.events.map((e: any) => e.type);
    expect(events.filter((t: string) => t === 'job.cancel_requested')).toHaveLength(1);
    expect(events.at(-1)).toBe('job.canceled');

    const done = await submit({ analyzer: 'noop', input: 'x' }, org);
    await waitForStatus(done, ['completed'], org);
    const t1 = await api(`/analyze/jobs/${done}/cancel`, { method: 'POST', org });
    expect(t1.body).toMatchObject({ status: 'completed', cancel: 'noop', cancel_requested_at: null });
    const t2 = await api(`/analyze/jobs/${done}/cancel`, { method: 'POST', org });
    expect(t2.body).toEqual(t1.body);
  });
});

describe('legacy POST /analyze', () => {
  it('waits and answers 200 with the final result inline; the job is recorded', async () => {
    const r = await api('/analyze', { body: { analyzer: 'sleep', input: { ms: 50, steps: 2 } } });
    expect(r.status).toBe(200);
    expect(Object.keys(r.body).sort()).toEqual(['job_id', 'result', 'result_id', 'status']);
    expect(r.body).toMatchObject({ status: 'completed', result: { slept_ms: 50, steps: 2 } });
    const job = await api(`/analyze/jobs/${r.body.job_id}`);
    expect(job.body).toMatchObject({ status: 'completed', result_id: r.body.result_id });
  });

  it('a failed job → 422 ANALYZER_FAILED with a job reference', async () => {
    const r = await api('/analyze', { body: { analyzer: 'sleep', input: { ms: 1, fail: 'permanent' } } });
    expect(r.status).toBe(422);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(r.body).toMatchObject({ code: 'ANALYZER_FAILED', status: 422, instance: '/analyze', job_status: 'failed' });
    expect(r.body.job_id).toMatch(/^job_/);
    expect(r.body.status_url).toBe(`/analyze/jobs/${r.body.job_id}`);
    expect(r.body.error).toMatchObject({ message: expect.stringContaining('permanent') });
  });

  it('Prefer: respond-async and ?mode=async answer exactly like the async submit', async () => {
    const r = await api('/analyze', { body: { analyzer: 'noop', input: 1 }, headers: { prefer: 'respond-async, wait=10' } });
    expect(r.status).toBe(202);
    expect(Object.keys(r.body).sort()).toEqual(['events_url', 'job_id', 'status', 'status_url', 'stream_url']);
    expect(r.headers.get('location')).toBe(`/analyze/jobs/${r.body.job_id}`);
    const m = await api('/analyze?mode=async', { body: { analyzer: 'noop', input: 1 } });
    expect(m.status).toBe(202);
    expect(m.body.job_id).not.toBe(r.body.job_id);
  });

  it('no result within the sync timeout → 504 ANALYZER_TIMEOUT; the job keeps running', async () => {
    const started = Date.now();
    const r = await api('/analyze', { body: { analyzer: 'sleep', input: { ms: 8000 } }, org: 'slow-org' });
    expect(r.status).toBe(504);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2900);
    expect(r.body).toMatchObject({ code: 'ANALYZER_TIMEOUT', job_status: 'running' });
    const job = await api(`/analyze/jobs/${r.body.job_id}`, { org: 'slow-org' });
    expect(job.body.status).toBe('running');
    await api(`/analyze/jobs/${r.body.job_id}/cancel`, { method: 'POST', org: 'slow-org' });
  });

  it('a job canceled while waiting → 409 JOB_CANCELED with a job reference', async () => {
    const org = 'legacy-cancel-org';
    const pending = api('/analyze', { body: { analyzer: 'sleep', input: { ms: 20_000 } }, org });
    const running = await eventually(async () => (await api('/analyze/jobs?status=running', { org })).body.jobs[0]);
    await api(`/analyze/jobs/${running.job_id}/cancel`, { method: 'POST', org });
    const r = await pending;
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ code: 'JOB_CANCELED', job_id: running.job_id, status_url: `/analyze/jobs/${running.job_id}` });
  });
});

describe('datasets', () => {
  const csv = 'id,name,score\n1,ann,3.5\n2,bob,4\n3,,2.25\n4,dan,x\n';

  it('profiles inline CSV from a JSON body', async () => {
    const id = await submit({ analyzer: 'dataset-profile', input: { format: 'csv', data: csv } });
    const job = await waitForStatus(id, ['completed', 'failed']);
    expect(job.status).toBe('completed');
    const p = await api(`/analyze/results/${job.result_id}`);
    expect(p.body.payload.rows).toBe(4);
    expect(p.body.payload.columns.map((c: any) => c.name)).toEqual(['id', 'name', 'score']);
  });

  it('streams a CSV upload to disk and profiles the file', async () => {
    const r = await api('/analyze/jobs?analyzer=dataset-profile', { body: csv, headers: { 'content-type': 'text/csv' } });
    expect(r.status, r.text).toBe(202);
    const job = await waitForStatus(r.body.job_id, ['completed', 'failed']);
    expect(job.status).toBe('completed');
    const final = (await api(`/analyze/jobs/${job.job_id}/results`)).body.results.at(-1);
    expect(final.payload.rows).toBe(4);
    const idCol = final.payload.columns.find((c: any) => c.name === 'id');
    expect(idCol).toMatchObject({ type: 'integer', count: 4, nulls: 0, min: 1, max: 4 });
    const uploads = (readdirSync(join(server.dir, 'data', 'uploads'), { recursive: true }) as string[]).map((f) => f.split('/').pop() ?? f);
    expect(uploads.some((f) => f.endsWith('.csv'))).toBe(true);
    expect(uploads.some((f) => f.startsWith('.part_'))).toBe(false);

    const nd = await api('/analyze/jobs?analyzer=dataset-profile&format=ndjson', {
      body: '{"a":1}\n{"a":2}\n',
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(nd.status).toBe(202);
    const ndJob = await waitForStatus(nd.body.job_id, ['completed', 'failed']);
    expect(ndJob.status).toBe('completed');
  });

  it('an upload with an Idempotency-Key replays to the same job', async () => {
    const headers = { 'content-type': 'application/x-ndjson', 'idempotency-key': 'upload-1' };
    const a = await api('/analyze/jobs?analyzer=dataset-profile', { body: '{"v":1}\n', headers });
    const b = await api('/analyze/jobs?analyzer=dataset-profile', { body: '{"v":1}\n', headers });
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.body.job_id).toBe(a.body.job_id);
    expect(b.headers.get('idempotent-replayed')).toBe('true');
    const c = await api('/analyze/jobs?analyzer=dataset-profile', { body: '{"v":2}\n', headers });
    expect(c.status).toBe(409);
  });

  it('legacy POST /analyze accepts an upload and answers the profile inline', async () => {
    const r = await api('/analyze?analyzer=dataset-profile', { body: csv, headers: { 'content-type': 'text/csv' } });
    expect(r.status, r.text).toBe(200);
    expect(r.body.status).toBe('completed');
    expect(r.body.result.rows).toBe(4);
  });
});

describe('Server-Sent Events', () => {
  const sseHeaders = (extra: Record<string, string> = {}) => ({ 'x-org-id': 'org-a', ...extra });

  it('follows a job to its end; a reconnect with Last-Event-ID continues without gaps or duplicates', async () => {
    const id = await submit({ analyzer: 'sleep', input: { ms: 1200, steps: 6 } });
    const url = `${server.url}/analyze/jobs/${id}/stream`;

    const first = await readSse(url, sseHeaders(), { stopAfter: 3 });
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(first.headers.get('cache-control')).toBe('no-cache');
    expect(first.headers.get('x-accel-buffering')).toBe('no');
    expect(first.events).toHaveLength(3);
    const lastId = first.events[2]!.id!;
    expect(lastId).toBe('3');

    const rest = await readSse(url, sseHeaders({ 'last-event-id': lastId }));
    expect(rest.ended).toBe(true);
    const union = [...first.events, ...rest.events];
    const seqs = union.map((e) => Number(e.id));
    const log = (await api(`/analyze/jobs/${id}/events?limit=1000`)).body.events as any[];
    expect(seqs).toEqual(log.map((e) => e.event_seq));
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect(union.at(-1)!.event).toBe('job.completed');
    for (const e of union) {
      const data = JSON.parse(e.data);
      expect(data).toMatchObject({ job_id: id, event_seq: Number(e.id), type: e.event });
    }
    // Heartbeats while the job sleeps between steps.
    expect(rest.raw).toContain(': ping');

    // A finished job: a full replay ends by itself; resuming at the end yields nothing.
    const replay = await readSse(url, sseHeaders());
    expect(replay.events.map((e) => Number(e.id))).toEqual(seqs);
    expect(replay.ended).toBe(true);
    const tail = await readSse(url, sseHeaders({ 'last-event-id': String(seqs.length) }));
    expect(tail.events).toHaveLength(0);
    expect(tail.ended).toBe(true);
    const viaQuery = await readSse(`${url}?after_seq=${seqs.length - 1}`, sseHeaders());
    expect(viaQuery.events.map((e) => e.event)).toEqual(['job.completed']);
  });

  it('GET /analyze/events/stream follows every job of the org in commit order, never another org\'s, and resumes by position', async () => {
    const org = 'events-org';
    const url = `${server.url}/analyze/events/stream`;
    const headers = (extra: Record<string, string> = {}) => ({ 'x-org-id': org, ...extra });
    const positionsOf = async (jobId: string) => ((await api(`/analyze/jobs/${jobId}/events?limit=1000`, { org })).body.events as any[]).map((e) => e.position as number);
    // A baseline: the org's newest position so far.
    const before = await submit({ analyzer: 'noop', input: 0 }, org);
    await waitForStatus(before, ['completed'], org);
    const base = Math.max(...(await positionsOf(before)));

    const j1 = await submit({ analyzer: 'noop', input: 1 }, org);
    const other = await submit({ analyzer: 'noop', input: 'x' }, 'org-a');
    const j2 = await submit({ analyzer: 'noop', input: 2 }, org);
    await Promise.all([waitForStatus(j1, ['completed'], org), waitForStatus(j2, ['completed'], org), waitForStatus(other, ['completed'])]);
    const expected = [...(await positionsOf(j1)), ...(await positionsOf(j2))].sort((a, b) => a - b);
    expect(expected).toHaveLength(6);

    // Replay after the baseline: exactly the org's events, ascending, each frame's id = its position.
    const all = await readSse(`${url}?after_position=${base}`, headers(), { stopAfter: 6 });
    expect(all.status).toBe(200);
    expect(all.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(all.events.map((e) => Number(e.id))).toEqual(expected);
    for (const e of all.events) {
      const data = JSON.parse(e.data);
      expect([j1, j2]).toContain(data.job_id);
      expect(data).toMatchObject({ position: Number(e.id), type: e.event });
    }
    // Last-Event-ID wins over the query and resumes after it.
    const rest = await readSse(`${url}?after_position=0`, headers({ 'last-event-id': all.events[2]!.id! }), { stopAfter: 3 });
    expect(rest.events.map((e) => Number(e.id))).toEqual(expected.slice(3));

    // Without a resume point: only what commits from now on (none of the jobs above).
    const live = readSse(url, headers(), { stopAfter: 3 });
    await new Promise((r) => setTimeout(r, 500)); // the stream is open by then
    const j3 = await submit({ analyzer: 'noop', input: 3 }, org);
    const frames = await live;
    expect(frames.events.map((e) => JSON.parse(e.data).job_id)).toEqual([j3, j3, j3]);
    expect(frames.events.map((e) => e.event)).toEqual(['job.queued', 'job.started', 'job.completed']);
    // It announced where it started (an id without an event): a reconnect resumes from there.
    const announced = /^retry: 1000\n\nid: (\d+)\n\n/.exec(frames.raw);
    expect(announced).not.toBeNull();
    expect(Number(announced![1])).toBeGreaterThanOrEqual(expected.at(-1)!);
    expect(Number(announced![1])).toBeLessThan(Number(frames.events[0]!.id));
  });

  it('GET /analyze/events/stream refuses a malformed resume point with a problem', async () => {
    for (const [query, hdrs] of [
      ['?after_position=-1', {}],
      ['?after_position=abc', {}],
      ['', { 'last-event-id': 'x1' }],
    ] as const) {
      const r = await fetch(`${server.url}/analyze/events/stream${query}`, { headers: { 'x-org-id': 'org-a', ...hdrs } });
      expect(r.status, `${query} ${JSON.stringify(hdrs)}`).toBe(400);
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      await r.body?.cancel();
    }
    // No tenant: a problem, never a stream of every org.
    const anonymous = await fetch(`${server.url}/analyze/events/stream`);
    expect(anonymous.status).toBe(400);
    expect(((await anonymous.json()) as { code: string }).code).toBe('TENANT_MISSING');
  });

  it('an unknown job answers a problem, not a stream', async () => {
    const r = await api('/analyze/jobs/job_00000000000000000000000000/stream');
    expect(r.status).toBe(404);
    expect(r.body.code).toBe('JOB_NOT_FOUND');
  });
});

describe('api-key auth', () => {
  let keyed: TestServer;
  beforeAll(async () => {
    keyed = await startTestServer({ UPSHIFT_AUTH_MODE: 'api-key' });
  });
  afterAll(async () => {
    await keyed?.close();
  });

  it('requires a valid key, binds the org to it and refuses another org', async () => {
    const call = apiClient(keyed.url, null);
    const { key } = await keyed.app.apiKeys.create(asOrgId('org-a'), 'test');
    const { key: keyB, keyId: keyIdB } = await keyed.app.apiKeys.create(asOrgId('org-b'), 'test');
    const body = { analyzer: 'noop', input: 1 };

    const none = await call('/analyze/jobs', { body });
    expect(none.status).toBe(401);
    expect(none.body.code).toBe('AUTH_REQUIRED');
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    const bad = await call('/analyze/jobs', { body, headers: { authorization: 'Bearer upk_nope.nope' } });
    expect(bad.status).toBe(401);
    expect(bad.body.code).toBe('AUTH_INVALID');
    const basic = await call('/analyze/jobs', { body, headers: { authorization: 'Basic Zm9vOmJhcg==' } });
    expect(basic.status).toBe(401);
    expect(basic.body.code).toBe('AUTH_INVALID');

    const mismatch = await call('/analyze/jobs', { body, headers: { authorization: `Bearer ${key}`, 'x-org-id': 'org-b' } });
    expect(mismatch.status).toBe(403);
    expect(mismatch.body.code).toBe('TENANT_MISMATCH');

    const ok = await call('/analyze/jobs', { body, headers: { authorization: `Bearer ${key}` } });
    expect(ok.status).toBe(202);
    const sameOrg = await call(`/analyze/jobs/${ok.body.job_id}`, { headers: { authorization: `Bearer ${key}`, 'x-org-id': 'org-a' } });
    expect(sameOrg.status).toBe(200);
    // Org B's key cannot see org A's job.
    const otherKey = await call(`/analyze/jobs/${ok.body.job_id}`, { headers: { authorization: `Bearer ${keyB}` } });
    expect(otherKey.status).toBe(404);

    await keyed.app.apiKeys.revoke(keyIdB);
    const revoked = await call('/analyze/jobs', { headers: { authorization: `Bearer ${keyB}` } });
    expect(revoked.status).toBe(401);
    expect(revoked.body.code).toBe('AUTH_INVALID');

    // Ops routes stay open.
    expect((await call('/health')).status).toBe(200);
    expect((await call('/openapi.json')).body.security).toEqual([{ apiKey: [] }]);
  });
});

describe('shutdown', () => {
  it('close() ends open streams promptly instead of hanging', async () => {
    const s = await startTestServer();
    const call = apiClient(s.url, 'org-a');
    const r = await call('/analyze/jobs', { body: { analyzer: 'sleep', input: { ms: 60_000 } } });
    const reading = readSse(`${s.url}/analyze/jobs/${r.body.job_id}/stream`, { 'x-org-id': 'org-a' }, { timeoutMs: 30_000 });
    await eventually(async () => (await call(`/analyze/jobs/${r.body.job_id}`)).body.status === 'running');
    await new Promise((res) => setTimeout(res, 100));
    const t0 = Date.now();
    await s.app.http!.close();
    expect(Date.now() - t0).toBeLessThan(1500);
    const stream = await reading;
    await s.close();
    expect(stream.ended).toBe(true);
    expect(stream.events.length).toBeGreaterThanOrEqual(1);
  });
});
