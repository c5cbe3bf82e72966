import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asOrgId } from '../../src/core/ids.js';
import { apiClient, eventually, startTestServer, type ApiRequest, type TestServer } from '../helpers/server.js';

// Bad input on every route: always a 4xx application/problem+json with a catalogue code,
// never a 5xx, never a crash, never a job created by a rejected request.

let server: TestServer;
let api: ReturnType<typeof apiClient>;

beforeAll(async () => {
  server = await startTestServer({ UPSHIFT_BODY_LIMIT_BYTES: '2048', UPSHIFT_UPLOAD_LIMIT_BYTES: '4096' });
  api = apiClient(server.url, 'bad-org');
});

afterAll(async () => {
  await server?.close();
});

const J = 'job_00000000000000000000000000'; // well-formed, never exists
const R = 'res_00000000000000000000000000';
const VALID = { analyzer: 'noop', input: { a: 1 } };
const JSON_CT = { 'content-type': 'application/json' };
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

interface Case extends ApiRequest {
  readonly name: string;
  readonly path: string;
  readonly status: number;
  readonly code: string;
  readonly detail?: RegExp;
}

/** Every route that acts for a tenant, with a request that would otherwise succeed or 404. */
const TENANT_ROUTES: readonly { method: string; path: string; body?: unknown }[] = [
  { method: 'POST', path: '/analyze/jobs', body: VALID },
  { method: 'POST', path: '/analyze', body: VALID },
  { method: 'GET', path: '/analyze/jobs' },
  { method: 'GET', path: `/analyze/jobs/${J}` },
  { method: 'GET', path: `/analyze/jobs/${J}/events` },
  { method: 'GET', path: `/analyze/jobs/${J}/stream` },
  { method: 'POST', path: `/analyze/jobs/${J}/cancel` },
  { method: 'GET', path: `/analyze/jobs/${J}/results` },
  { method: 'GET', path: `/analyze/results/${R}` },
];

const tenantCases: Case[] = TENANT_ROUTES.flatMap((r): Case[] => [
  { name: `${r.method} ${r.path}: no tenant`, ...r, org: null, status: 400, code: 'TENANT_MISSING' },
  { name: `${r.method} ${r.path}: malformed tenant`, ...r, org: 'bad org!', status: 400, code: 'TENANT_INVALID' },
  { name: `${r.method} ${r.path}: tenant too long`, ...r, org: 'a'.repeat(65), status: 400, code: 'TENANT_INVALID' },
  { name: `${r.method} ${r.path}: malformed X-Tenant-Id`, ...r, org: null, headers: { 'x-tenant-id': '../etc' }, status: 400, code: 'TENANT_INVALID' },
  {
    name: `${r.method} ${r.path}: X-Org-Id and X-Tenant-Id disagree`,
    ...r,
    org: 'bad-a',
    headers: { 'x-tenant-id': 'bad-b' },
    status: 400,
    code: 'TENANT_INVALID',
    detail: /disagree/,
  },
]);

const SUBMIT_PATHS = ['/analyze/jobs', '/analyze'] as const;

const bodyCases: Case[] = SUBMIT_PATHS.flatMap((path): Case[] => [
  { name: `${path}: malformed JSON`, path, body: '{"analyzer":', headers: JSON_CT, status: 400, code: 'BODY_MALFORMED' },
  { name: `${path}: trailing garbage`, path, body: '{"analyzer":"noop","input":1}}', headers: JSON_CT, status: 400, code: 'BODY_MALFORMED' },
  { name: `${path}: prototype poisoning`, path, body: '{"analyzer":"noop","input":{"__proto__":{"x":1}}}', headers: JSON_CT, status: 400, code: 'BODY_MALFORMED' },
  { name: `${path}: empty JSON body`, path, body: '', headers: JSON_CT, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: no body at all`, path, method: 'POST', status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: body is an array`, path, body: [VALID], status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: body is a string`, path, body: '"noop"', headers: JSON_CT, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: body is null`, path, body: 'null', headers: JSON_CT, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: analyzer missing`, path, body: { input: 1 }, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: input missing`, path, body: { analyzer: 'noop' }, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: analyzer is a number`, path, body: { analyzer: 5, input: 1 }, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: analyzer is empty`, path, body: { analyzer: '', input: 1 }, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: priority is a string`, path, body: { ...VALID, priority: '5' }, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: priority is fractional`, path, body: { ...VALID, priority: 1.5 }, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: priority out of range`, path, body: { ...VALID, priority: 1001 }, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: max_attempts 0`, path, body: { ...VALID, max_attempts: 0 }, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: max_attempts 101`, path, body: { ...VALID, max_attempts: 101 }, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: unknown analyzer`, path, body: { analyzer: 'nope', input: {} }, status: 422, code: 'ANALYZER_NOT_FOUND' },
  { name: `${path}: invalid analyzer input`, path, body: { analyzer: 'sleep', input: { ms: -1 } }, status: 422, code: 'ANALYZER_INPUT_INVALID' },
  { name: `${path}: wrong input type`, path, body: { analyzer: 'sleep', input: 'fast' }, status: 422, code: 'ANALYZER_INPUT_INVALID' },
  // U+0000 cannot be stored by PostgreSQL: refused the same way on every store.
  { name: `${path}: NUL in an input string`, path, body: { analyzer: 'noop', input: { a: ['x', 'b\u0000c'] } }, status: 400, code: 'VALIDATION_FAILED', detail: /U\+0000.*\/a\/1/ },
  { name: `${path}: NUL in an input key`, path, body: { analyzer: 'noop', input: { 'k\u0000': 1 } }, status: 400, code: 'VALIDATION_FAILED', detail: /U\+0000/ },
  { name: `${path}: input nested 600 deep`, path, body: `{"analyzer":"noop","input":${'['.repeat(600)}1${']'.repeat(600)}}`, headers: JSON_CT, status: 400, code: 'VALIDATION_FAILED', detail: /deeper than 512/ },
  { name: `${path}: oversize JSON body`, path, body: { ...VALID, input: 'x'.repeat(3000) }, status: 413, code: 'BODY_TOO_LARGE' },
  { name: `${path}: text/plain`, path, body: 'analyzer=noop', headers: { 'content-type': 'text/plain' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: `${path}: application/xml`, path, body: '<a/>', headers: { 'content-type': 'application/xml' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: `${path}: form data`, path, body: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: `${path}: Idempotency-Key too long`, path, body: VALID, headers: { 'idempotency-key': 'k'.repeat(256) }, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: Idempotency-Key with a space`, path, body: VALID, headers: { 'idempotency-key': 'a b' }, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: empty Idempotency-Key`, path, body: VALID, headers: { 'idempotency-key': '' }, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: upload without analyzer`, path, body: 'a\n1\n', headers: { 'content-type': 'text/csv' }, status: 400, code: 'VALIDATION_FAILED' },
  {
    name: `${path}: octet-stream upload without format`,
    path: `${path}?analyzer=dataset-profile`,
    body: 'a\n1\n',
    headers: { 'content-type': 'application/octet-stream' },
    status: 400,
    code: 'VALIDATION_FAILED',
  },
  { name: `${path}: upload with bad format`, path: `${path}?analyzer=dataset-profile&format=xml`, body: 'a\n', headers: { 'content-type': 'text/csv' }, status: 400, code: 'VALIDATION_FAILED' },
  { name: `${path}: upload to unknown analyzer`, path: `${path}?analyzer=nope`, body: 'a\n1\n', headers: { 'content-type': 'text/csv' }, status: 422, code: 'ANALYZER_NOT_FOUND' },
  { name: `${path}: upload to an analyzer that takes no file`, path: `${path}?analyzer=sleep`, body: 'a\n1\n', headers: { 'content-type': 'text/csv' }, status: 422, code: 'ANALYZER_INPUT_INVALID' },
  { name: `${path}: upload over the limit`, path: `${path}?analyzer=dataset-profile`, body: 'a\n' + '1\n'.repeat(3000), headers: { 'content-type': 'text/csv' }, status: 413, code: 'BODY_TOO_LARGE' },
  { name: `${path}: upload priority not a number`, path: `${path}?analyzer=dataset-profile&priority=high`, body: 'a\n', headers: { 'content-type': 'text/csv' }, status: 400, code: 'VALIDATION_FAILED' },
]);

const JOB_SUBROUTES = ['', '/events', '/stream', '/cancel', '/results'] as const;
const BAD_JOB_IDS = ['nope', 'job_123', R, 'JOB_00000000000000000000000000', 'job_uuuuuuuuuuuuuuuuuuuuuuuuuu', `${J}0`, 'job_' + 'a'.repeat(400)];

const idCases: Case[] = [
  ...JOB_SUBROUTES.flatMap((sub) =>
    BAD_JOB_IDS.map((id): Case => ({
      name: `job${sub}: bad id ${id.slice(0, 40)}`,
      method: sub === '/cancel' ? 'POST' : 'GET',
      path: `/analyze/jobs/${id}${sub}`,
      status: 400,
      code: 'ID_INVALID',
    })),
  ),
  ...['nope', J, 'res_123', 'res_IIIIIIIIIIIIIIIIIIIIIIIIII'].map((id): Case => ({ name: `permalink: bad id ${id}`, path: `/analyze/results/${id}`, status: 400, code: 'ID_INVALID' })),
];

const queryCases: Case[] = [
  { name: 'list: cursor not base64 JSON', path: '/analyze/jobs?cursor=abc', status: 400, code: 'CURSOR_INVALID' },
  { name: 'list: cursor with a bad job id', path: `/analyze/jobs?cursor=${b64('{"b":"x"}')}`, status: 400, code: 'CURSOR_INVALID' },
  { name: 'list: cursor of another shape', path: `/analyze/jobs?cursor=${b64('[1,2]')}`, status: 400, code: 'CURSOR_INVALID' },
  { name: 'list: cursor too long', path: `/analyze/jobs?cursor=${'a'.repeat(600)}`, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'list: limit=abc', path: '/analyze/jobs?limit=abc', status: 400, code: 'VALIDATION_FAILED' },
  { name: 'list: limit=0', path: '/analyze/jobs?limit=0', status: 400, code: 'VALIDATION_FAILED' },
  { name: 'list: limit=201', path: '/analyze/jobs?limit=201', status: 400, code: 'VALIDATION_FAILED' },
  { name: 'list: limit=1.5', path: '/analyze/jobs?limit=1.5', status: 400, code: 'VALIDATION_FAILED' },
  { name: 'list: limit twice', path: '/analyze/jobs?limit=1&limit=2', status: 400, code: 'VALIDATION_FAILED' },
  { name: 'list: status=bogus', path: '/analyze/jobs?status=bogus', status: 400, code: 'VALIDATION_FAILED' },
  { name: 'list: created_after=yesterday', path: '/analyze/jobs?created_after=yesterday', status: 400, code: 'VALIDATION_FAILED' },
  { name: 'list: created_before impossible date', path: '/analyze/jobs?created_before=2024-13-45', status: 400, code: 'VALIDATION_FAILED' },
  { name: 'list: created_after number', path: '/analyze/jobs?created_after=12345', status: 400, code: 'VALIDATION_FAILED' },
  { name: 'events: after_seq=-1', path: `/analyze/jobs/${J}/events?after_seq=-1`, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'events: after_seq=abc', path: `/analyze/jobs/${J}/events?after_seq=abc`, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'events: limit=0', path: `/analyze/jobs/${J}/events?limit=0`, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'events: limit=1001', path: `/analyze/jobs/${J}/events?limit=1001`, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'stream: after_seq=-1', path: `/analyze/jobs/${J}/stream?after_seq=-1`, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'stream: Last-Event-ID=abc', path: `/analyze/jobs/${J}/stream`, headers: { 'last-event-id': 'abc' }, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'stream: Last-Event-ID=-1', path: `/analyze/jobs/${J}/stream`, headers: { 'last-event-id': '-1' }, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'permalink: view=bogus', path: `/analyze/results/${R}?view=bogus`, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'legacy: mode=bogus', path: '/analyze?mode=bogus', body: VALID, status: 400, code: 'VALIDATION_FAILED' },
  { name: 'cancel: malformed JSON body', path: `/analyze/jobs/${J}/cancel`, body: '{', headers: JSON_CT, status: 400, code: 'BODY_MALFORMED' },
  { name: 'cancel: oversize body', path: `/analyze/jobs/${J}/cancel`, body: { pad: 'x'.repeat(3000) }, status: 413, code: 'BODY_TOO_LARGE' },
  { name: 'cancel: text/csv', path: `/analyze/jobs/${J}/cancel`, body: 'a\n', headers: { 'content-type': 'text/csv' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'cancel: text/plain', path: `/analyze/jobs/${J}/cancel`, body: 'x', headers: { 'content-type': 'text/plain' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'well-formed unknown job', path: `/analyze/jobs/${J}`, status: 404, code: 'JOB_NOT_FOUND' },
  { name: 'well-formed unknown result', path: `/analyze/results/${R}`, status: 404, code: 'RESULT_NOT_FOUND' },
];

const routeCases: Case[] = [
  { name: 'unknown route', path: '/nope', status: 404, code: 'ROUTE_NOT_FOUND' },
  { name: 'unknown route without tenant', path: '/analyze/jobs/x/y/z', org: null, status: 404, code: 'ROUTE_NOT_FOUND' },
  { name: 'wrong method', method: 'DELETE', path: '/analyze/jobs', status: 404, code: 'ROUTE_NOT_FOUND' },
  { name: 'wrong method on a job', method: 'PUT', path: `/analyze/jobs/${J}`, body: VALID, status: 404, code: 'ROUTE_NOT_FOUND' },
  { name: 'bad percent-encoding', path: '/analyze/jobs/%E0%A4%A', status: 400, code: 'VALIDATION_FAILED' },
];

const ALL_CASES = [...tenantCases, ...bodyCases, ...idCases, ...queryCases, ...routeCases];

describe('bad input answers 4xx problem+json', () => {
  it.each(ALL_CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const r = await api(c.path, c);
    expect(r.status, r.text).toBeLessThan(500);
    expect(r.status, r.text).toBe(c.status);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(r.body).toMatchObject({
      type: `https://upshift.dev/errors/${c.code.toLowerCase().replaceAll('_', '-')}`,
      title: expect.any(String),
      status: c.status,
      detail: expect.any(String),
      code: c.code,
      instance: c.path.split('?')[0],
    });
    if (c.detail) expect(r.body.detail).toMatch(c.detail);
    if (c.code === 'VALIDATION_FAILED' && c.path !== '/analyze/jobs/%E0%A4%A') expect(Array.isArray(r.body.errors)).toBe(true);
  });

  it('validation problems name the failing fields', async () => {
    const r = await api('/analyze/jobs', { body: { analyzer: 5, input: 1, priority: 'x', extra: true } });
    expect(r.status).toBe(400);
    const fields = (r.body.errors as any[]).map((e) => `${e.in}:${e.field}`);
    expect(fields).toEqual(expect.arrayContaining(['body:analyzer', 'body:priority', 'body:extra']));
    const q = await api('/analyze/jobs?limit=abc&status=nope');
    expect((q.body.errors as any[]).map((e) => e.field)).toEqual(expect.arrayContaining(['limit', 'status']));
  });

  it('headers the fetch API cannot send: non-ASCII idempotency key, body without content type, chunked oversize upload', async () => {
    const http = server.app.http!;
    const nonAscii = await http.inject({
      method: 'POST',
      url: '/analyze/jobs',
      headers: { 'x-org-id': 'bad-org', 'content-type': 'application/json', 'idempotency-key': 'schlüssel' },
      payload: JSON.stringify(VALID),
    });
    expect(nonAscii.statusCode).toBe(400);
    expect(nonAscii.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(nonAscii.json().code).toBe('VALIDATION_FAILED');

    const noType = await http.inject({ method: 'POST', url: '/analyze/jobs', headers: { 'x-org-id': 'bad-org' }, payload: Buffer.from('{"x":1}') });
    expect(noType.statusCode).toBeGreaterThanOrEqual(400);
    expect(noType.statusCode).toBeLessThan(500);
    expect(noType.headers['content-type']).toMatch(/^application\/problem\+json/);

    async function* chunks() {
      for (let i = 0; i < 10; i++) yield Buffer.alloc(1000, 0x31);
    }
    const chunked = await http.inject({
      method: 'POST',
      url: '/analyze/jobs?analyzer=dataset-profile',
      headers: { 'x-org-id': 'bad-org', 'content-type': 'text/csv', 'transfer-encoding': 'chunked' },
      payload: Readable.from(chunks()),
    });
    expect(chunked.statusCode).toBe(413);
    expect(chunked.json().code).toBe('BODY_TOO_LARGE');
  });

  it('the server still serves, and no rejected request created a job or left a file', async () => {
    expect((await api('/health', { org: null })).status).toBe(200);
    for (const org of ['bad-org', 'bad-a', 'bad-b']) {
      const page = await server.app.service.list(asOrgId(org), { limit: 200 });
      expect(page.jobs, org).toHaveLength(0);
    }
    const uploads = join(server.dir, 'data', 'uploads');
    // Per-tenant folders may exist; no file may be left in any of them.
    const files = existsSync(uploads) ? (readdirSync(uploads, { recursive: true, withFileTypes: true })).filter((d) => d.isFile()) : [];
    expect(files.map((d) => d.name)).toEqual([]);
    const ok = await api('/analyze/jobs', { body: VALID, org: 'after-org' });
    expect(ok.status).toBe(202);
  });
});

describe('tenant isolation', () => {
  it("another org's job and results answer 404 exactly like unknown ids, on every route", async () => {
    const a = apiClient(server.url, 'iso-a');
    const b = apiClient(server.url, 'iso-b');
    const submitted = await a('/analyze/jobs', { body: { analyzer: 'sleep', input: { ms: 30, steps: 2 } } });
    expect(submitted.status).toBe(202);
    const id = submitted.body.job_id as string;
    const job = await eventually(async () => {
      const r = await a(`/analyze/jobs/${id}`);
      return r.body.status === 'completed' ? r.body : null;
    });
    const results = (await a(`/analyze/jobs/${id}/results`)).body.results as any[];
    expect(results.length).toBe(3);

    const strip = (body: any) => ({ type: body.type, title: body.title, status: body.status, code: body.code, keys: Object.keys(body).sort() });
    for (const [method, sub] of [['GET', ''], ['GET', '/events'], ['GET', '/stream'], ['POST', '/cancel'], ['GET', '/results']] as const) {
      const theirs = await b(`/analyze/jobs/${id}${sub}`, { method });
      const unknown = await b(`/analyze/jobs/${J}${sub}`, { method });
      expect(theirs.status, `${method} ${sub}`).toBe(404);
      expect(theirs.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(theirs.body.code).toBe('JOB_NOT_FOUND');
      expect(strip(theirs.body)).toEqual(strip(unknown.body));
      expect(theirs.text).not.toContain('iso-a');
    }
    for (const r of results) {
      for (const view of ['exact', 'latest']) {
        const theirs = await b(`/analyze/results/${r.result_id}?view=${view}`);
        const unknown = await b(`/analyze/results/${R}?view=${view}`);
        expect(theirs.status).toBe(404);
        expect(theirs.body.code).toBe('RESULT_NOT_FOUND');
        expect(strip(theirs.body)).toEqual(strip(unknown.body));
      }
    }
    expect((await b('/analyze/jobs')).body.jobs).toHaveLength(0);
    // B's cancel attempt changed nothing; A still sees its job as before.
    const after = await a(`/analyze/jobs/${id}`);
    expect(after.body).toEqual(job);
    expect((await a(`/analyze/results/${job.result_id}`)).status).toBe(200);
  });
});

describe('rate limit', () => {
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startTestServer({ UPSHIFT_RATE_LIMIT_PER_MINUTE: '3', UPSHIFT_WORKER_ENABLED: 'false' });
  });
  afterAll(async () => {
    await limited?.close();
  });

  it('answers 429 RATE_LIMITED with Retry-After per tenant', async () => {
    const call = apiClient(limited.url, 'busy-org');
    for (let i = 0; i < 3; i++) expect((await call('/analyze/jobs')).status).toBe(200);
    const r = await call('/analyze/jobs');
    expect(r.status).toBe(429);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(r.body.code).toBe('RATE_LIMITED');
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await call('/analyze/jobs', { org: 'calm-org' })).status).toBe(200);
    expect((await call('/health', { org: null })).status).toBe(200);
  });
});
