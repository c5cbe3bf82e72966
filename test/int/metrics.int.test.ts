import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPromtool, promtool } from '../helpers/promtool.js';
import { apiClient, eventually, startTestServer, type TestServer } from '../helpers/server.js';

// GET /metrics on a real server: the series move with real jobs and requests, labels stay
// bounded, and the live exposition passes `promtool check metrics`.

const ORG = 'acme-metrics';
const PERMALINK = '/analyze/results/:result_id';

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one sample matching name + labels (subset), or undefined. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${hits.length} series`);
  return hits[0]?.value;
}

async function scrape(server: TestServer): Promise<{ text: string; contentType: string | null; samples: Sample[] }> {
  const res = await fetch(`${server.url}/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, contentType: res.headers.get('content-type'), samples: parseExposition(text) };
}

async function runToTerminal(api: ReturnType<typeof apiClient>, body: unknown): Promise<any> {
  const r = await api('/analyze/jobs', { body });
  expect(r.status).toBe(202);
  return eventually(async () => {
    const j = await api(`/analyze/jobs/${r.body.job_id}`);
    return ['completed', 'failed', 'canceled'].includes(j.body.status) ? j.body : null;
  });
}

describe('GET /metrics (worker + API process)', () => {
  let server: TestServer;
  let api: ReturnType<typeof apiClient>;
  const tool = findPromtool();

  beforeAll(async () => {
    server = await startTestServer({ UPSHIFT_WORKER_CONCURRENCY: '4' });
    api = apiClient(server.url, ORG);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('counts job events, settled attempts and durations from real jobs', async () => {
    const done = [];
    for (let i = 0; i < 3; i++) done.push(await runToTerminal(api, { analyzer: 'noop', input: { i } }));
    const failed = await runToTerminal(api, { analyzer: 'sleep', input: { ms: 1, fail: 'permanent' } });
    expect(done.map((j) => j.status)).toEqual(['completed', 'completed', 'completed']);
    expect(failed.status).toBe('failed');

    const { samples } = await eventually(async () => {
      const s = await scrape(server);
      return (value(s.samples, 'upshift_job_events_total', { type: 'job.failed' }) ?? 0) >= 1 ? s : null;
    });
    expect(value(samples, 'upshift_job_events_total', { type: 'job.queued' })).toBe(4);
    expect(value(samples, 'upshift_job_events_total', { type: 'job.started' })).toBe(4);
    expect(value(samples, 'upshift_job_events_total', { type: 'job.completed' })).toBe(3);
    expect(value(samples, 'upshift_job_events_total', { type: 'job.canceled' })).toBe(0);
    expect(value(samples, 'upshift_jobs_finished_total', { analyzer: 'noop', status: 'completed' })).toBe(3);
    expect(value(samples, 'upshift_jobs_finished_total', { analyzer: 'sleep', status: 'failed' })).toBe(1);
    expect(value(samples, 'upshift_job_duration_seconds_count', { analyzer: 'noop', status: 'completed' })).toBe(3);
    expect(value(samples, 'upshift_job_duration_seconds_bucket', { analyzer: 'noop', status: 'completed', le: '+Inf' })).toBe(3);
    expect(value(samples, 'upshift_queue_jobs', { status: 'queued' })).toBe(0);
    expect(value(samples, 'upshift_queue_jobs', { status: 'running' })).toBe(0);
    expect(value(samples, 'upshift_queue_oldest_ready_age_seconds')).toBe(0);
    expect(value(samples, 'upshift_worker_slots')).toBe(4);
    expect(value(samples, 'upshift_worker_busy_slots')).toBe(0);
  });

  it('times HTTP requests by route template, never by raw URL', async () => {
    const job = await runToTerminal(api, { analyzer: 'noop', input: 'permalink' });
    expect((await api(`/analyze/results/${job.result_id}`)).status).toBe(200);
    expect((await api(`/analyze/results/res_00000000000000000000000000`)).status).toBe(404);
    expect((await api('/no/such/route/abc123')).status).toBe(404);

    const { text, samples } = await scrape(server);
    const count = (labels: Record<string, string>) => value(samples, 'upshift_http_request_duration_seconds_count', labels);
    expect(count({ method: 'GET', route: PERMALINK, status_code: '200' })).toBe(1);
    expect(count({ method: 'GET', route: PERMALINK, status_code: '404' })).toBe(1);
    expect(count({ method: 'GET', route: 'unmatched', status_code: '404' })).toBe(1);
    expect(count({ method: 'POST', route: '/analyze/jobs', status_code: '202' })).toBeGreaterThanOrEqual(5);
    expect(value(samples, 'upshift_http_request_duration_seconds_bucket', { method: 'GET', route: PERMALINK, status_code: '200', le: '1.2' })).toBe(1);
    // Bounded labels only: no org, job, result ids or raw paths anywhere in the exposition.
    expect(text).not.toContain(ORG);
    expect(text).not.toMatch(/job_[0-9a-z]{26}|res_[0-9a-z]{26}|abc123/);
    for (const s of samples) expect(Object.keys(s.labels)).not.toEqual(expect.arrayContaining(['org_id']));
  });

  it('exports the metrics other features feed once they report', async () => {
    const before = await scrape(server);
    expect(value(before.samples, 'upshift_retention_last_exit_code')).toBeUndefined();
    expect(value(before.samples, 'upshift_retention_deleted_total', { kind: 'results' })).toBe(0);
    expect(value(before.samples, 'upshift_retention_deleted_total', { kind: 'notifications' })).toBe(0);
    expect(value(before.samples, 'upshift_retention_runs_total', { mode: 'live', outcome: 'failure' })).toBe(0);
    expect(value(before.samples, 'upshift_notifications_delivered_total', { channel: 'webhook', status: 'delivered' })).toBe(0);
    // The composition root wires this gauge to the store's notification outbox: nothing pending.
    expect(value(before.samples, 'upshift_terminal_jobs_without_in_app_notification')).toBe(0);

    const inAppBefore = value(before.samples, 'upshift_notifications_delivered_total', { channel: 'in_app', status: 'delivered' }) ?? 0;
    const m = server.app.metrics;
    m.retentionRun({ dry_run: true, results: { delete_count: 100 }, events: { delete_count: 100 }, notifications: { delete_count: 100 } }, 0);
    m.retentionRun({ dry_run: false, results: { delete_count: 5 }, events: { delete_count: 7 }, notifications: { delete_count: 2 } }, 0);
    m.retentionRun(null, 3);
    m.notificationDelivered('in_app', 'delivered');
    m.notificationDelivered('webhook', 'failed');
    m.setTerminalWithoutInAppProvider(async () => 2);

    const { samples } = await scrape(server);
    expect(value(samples, 'upshift_retention_deleted_total', { kind: 'results' })).toBe(5);
    expect(value(samples, 'upshift_retention_deleted_total', { kind: 'events' })).toBe(7);
    expect(value(samples, 'upshift_retention_deleted_total', { kind: 'notifications' })).toBe(2);
    expect(value(samples, 'upshift_retention_runs_total', { mode: 'dry_run', outcome: 'success' })).toBe(1);
    expect(value(samples, 'upshift_retention_runs_total', { mode: 'live', outcome: 'success' })).toBe(1);
    expect(value(samples, 'upshift_retention_runs_total', { mode: 'live', outcome: 'failure' })).toBe(1);
    expect(value(samples, 'upshift_retention_last_exit_code')).toBe(3);
    expect(Math.abs(value(samples, 'upshift_retention_last_run_timestamp_seconds')! - Date.now() / 1000)).toBeLessThan(60);
    // The dispatcher also counts the in-app notifications of the jobs above (real deliveries).
    expect(value(samples, 'upshift_notifications_delivered_total', { channel: 'in_app', status: 'delivered' })).toBeGreaterThanOrEqual(inAppBefore + 1);
    expect(value(samples, 'upshift_notifications_delivered_total', { channel: 'webhook', status: 'failed' })).toBe(1);
    expect(value(samples, 'upshift_terminal_jobs_without_in_app_notification')).toBe(2);
  });

  it('docs/metrics.md lists exactly the exported upshift_* families with their types', async () => {
    const { text } = await scrape(server);
    const exported = Object.fromEntries([...text.matchAll(/^# TYPE (upshift_\w+) (\w+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const doc = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
    const documented = Object.fromEntries([...doc.matchAll(/^\| `(upshift_[a-z_]+)` \| (\w+) \|/gm)].map((m) => [m[1]!, m[2]!]));
    expect(documented).toEqual(exported);
  });

  it('leaves out the default gauges promtool rejects, keeps the rest of the process metrics', async () => {
    const { text, contentType } = await scrape(server);
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      expect(text).not.toMatch(new RegExp(`^${name}\\b`, 'm'));
    }
  });

  it.runIf(tool.run)('the live scrape passes `promtool check metrics`', async () => {
    const { text } = await scrape(server);
    const r = promtool(tool, ['check', 'metrics'], { input: text });
    expect(r.output).toBe('');
    expect(r.status, r.output).toBe(0);
    // The check is real: it flags the gauges we dropped.
    const bad = promtool(tool, ['check', 'metrics'], { input: '# HELP x_total x\n# TYPE x_total gauge\nx_total 1\n' });
    expect(bad.status).not.toBe(0);
  });
});

describe('GET /metrics (API-only process with a backlog)', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({ UPSHIFT_WORKER_ENABLED: 'false' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('reports queue depth and lag from the store, and no worker slots', async () => {
    const api = apiClient(server.url, ORG);
    for (let i = 0; i < 2; i++) expect((await api('/analyze/jobs', { body: { analyzer: 'noop', input: i } })).status).toBe(202);
    await new Promise((r) => setTimeout(r, 1100)); // past the 1 s scrape cache
    const { samples } = await scrape(server);
    expect(value(samples, 'upshift_queue_jobs', { status: 'queued' })).toBe(2);
    expect(value(samples, 'upshift_queue_jobs', { status: 'running' })).toBe(0);
    expect(value(samples, 'upshift_queue_oldest_ready_age_seconds')).toBeGreaterThan(0.5);
    expect(value(samples, 'upshift_worker_slots')).toBe(0);
    expect(value(samples, 'upshift_worker_busy_slots')).toBe(0);
  });
});

describe('GET /metrics (a worker holding prefetched jobs)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ UPSHIFT_WORKER_CONCURRENCY: '1', UPSHIFT_WORKER_PREFETCH: '2' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('counts held jobs apart from busy slots: running in the store, not started', async () => {
    const api = apiClient(server.url, ORG);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await api('/analyze/jobs', { body: { analyzer: 'sleep', input: { ms: 10_000 } } });
      expect(r.status).toBe(202);
      ids.push(r.body.job_id);
    }
    // One runs, two are claimed into the prefetch room and wait for the slot.
    const { samples } = await eventually(async () => {
      const s = await scrape(server);
      return value(s.samples, 'upshift_worker_held_jobs') === 2 && value(s.samples, 'upshift_queue_jobs', { status: 'running' }) === 3 ? s : null;
    });
    expect(value(samples, 'upshift_worker_busy_slots')).toBe(1);
    expect(value(samples, 'upshift_worker_slots')).toBe(1);
    for (const id of ids) expect((await api(`/analyze/jobs/${id}/cancel`, { method: 'POST' })).status).toBeLessThan(300);
    await eventually(async () => {
      const s = await scrape(server);
      return value(s.samples, 'upshift_worker_held_jobs') === 0 && value(s.samples, 'upshift_worker_busy_slots') === 0 ? s : null;
    });
  });
});
