import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPinoLogger } from '../../src/adapters/telemetry/pinoLogger.js';
import { parseOrgId } from '../../src/core/ids.js';
import { apiClient, eventually, startTestServer, type TestServer } from '../helpers/server.js';

// A real server (api-key auth) logging to memory: every transition is a JSON line with
// job_id, org_id, status and occurred_at (SPEC §1.4, §4.3), and the API key never appears.

const ORG = 'acme-logs';

describe('structured logs of a real server', () => {
  const lines: string[] = [];
  let server: TestServer;
  let key: string;

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        cb();
      },
    });
    server = await startTestServer({ UPSHIFT_AUTH_MODE: 'api-key' }, { logger: createPinoLogger('debug', sink) });
    key = (await server.app.apiKeys.create(parseOrgId(ORG), 'logs test')).key;
  });
  afterAll(async () => {
    await server?.close();
  });

  const records = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);

  it('logs every transition with job_id, org_id, status and occurred_at', async () => {
    const api = apiClient(server.url, null);
    const auth = { authorization: `Bearer ${key}` };
    const ok = await api('/analyze/jobs', { body: { analyzer: 'sleep', input: { ms: 1 } }, headers: auth });
    const bad = await api('/analyze/jobs', { body: { analyzer: 'sleep', input: { ms: 1, fail: 'permanent' } }, headers: auth });
    expect([ok.status, bad.status]).toEqual([202, 202]);
    for (const id of [ok.body.job_id, bad.body.job_id]) {
      await eventually(async () => records().some((r) => r.job_id === id && (r.status === 'completed' || r.status === 'failed')));
    }
    const transitions = (id: string) => records().filter((r) => r.msg === 'job transition' && r.job_id === id);
    expect(transitions(ok.body.job_id).map((r) => [r.event, r.status])).toEqual([
      ['job.queued', 'queued'],
      ['job.started', 'running'],
      ['job.completed', 'completed'],
    ]);
    expect(transitions(bad.body.job_id).map((r) => r.status)).toEqual(['queued', 'running', 'failed']);
    for (const r of [...transitions(ok.body.job_id), ...transitions(bad.body.job_id)]) {
      expect(r).toMatchObject({ org_id: ORG, service: 'upshift', level: 30 });
      expect(r.occurred_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    }
  });

  it('never writes the API key or the Authorization header to the log', async () => {
    const api = apiClient(server.url, null);
    await api('/analyze/jobs', { body: { analyzer: 'noop', input: 1 }, headers: { authorization: `Bearer ${key}` } });
    await api('/analyze/jobs', { body: { analyzer: 'noop', input: 1 }, headers: { authorization: `Bearer ${key}x` } }); // 401
    server.app.logger.info({ req: { headers: { authorization: `Bearer ${key}` } } }, 'a careless log call');
    server.app.logger.error({ err: new Error(`upstream said: Authorization: Bearer ${key}`) }, 'a careless error');
    const out = lines.join('\n');
    expect(out).toContain('a careless log call');
    expect(out).not.toContain(key);
    expect(out).not.toContain(key.slice(4)); // not even without its prefix
  });
});
