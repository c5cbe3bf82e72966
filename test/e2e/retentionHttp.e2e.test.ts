import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, eventually, startTestServer, type TestServer } from '../helpers/server.js';

// What tenants see after retention removed a job's results and events: the job answers 200
// with its status and metadata, its own permalinks 410 RESULT_GONE, other tenants still 404.

let server: TestServer;
let api: ReturnType<typeof apiClient>;

beforeAll(async () => {
  server = await startTestServer();
  api = apiClient(server.url, 'org-a');
});

afterAll(async () => {
  await server?.close();
});

async function completedJob(org = 'org-a'): Promise<{ jobId: string; job: Record<string, unknown>; resultIds: string[] }> {
  const r = await api('/analyze/jobs', { org, body: { analyzer: 'sleep', input: { ms: 20, steps: 2 } } });
  expect(r.status, r.text).toBe(202);
  const jobId = r.body.job_id as string;
  const job = await eventually(async () => {
    const g = await api(`/analyze/jobs/${jobId}`, { org });
    return g.body.status === 'completed' ? (g.body as Record<string, unknown>) : null;
  });
  const results = await api(`/analyze/jobs/${jobId}/results`, { org });
  return { jobId, job, resultIds: (results.body.results as Array<{ result_id: string }>).map((x) => x.result_id) };
}

describe('permalinks after retention', () => {
  it('own removed result → 410 problem+json RESULT_GONE, other tenant → 404, job still 200', async () => {
    const { jobId, job, resultIds } = await completedJob();
    expect(resultIds).toHaveLength(3); // two partials and the final
    const finalId = job.result_id as string;
    expect((await api(`/analyze/results/${finalId}?view=latest`)).status).toBe(200);

    const report = await server.app.runRetention({ resultsTtlMs: 0, eventsTtlMs: 0, dryRun: false, pauseMs: 0 });
    expect(report.results.delete_count).toBeGreaterThanOrEqual(3);
    expect(report.events.delete_count).toBeGreaterThan(0);

    for (const id of resultIds) {
      for (const view of ['exact', 'latest']) {
        const gone = await api(`/analyze/results/${id}?view=${view}`);
        expect(gone.status, gone.text).toBe(410);
        expect(gone.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(gone.body).toMatchObject({ status: 410, code: 'RESULT_GONE' });
        expect(gone.text).not.toContain('"payload"');
        const foreign = await api(`/analyze/results/${id}?view=${view}`, { org: 'org-b' });
        expect(foreign.status).toBe(404);
        expect(foreign.body).toMatchObject({ code: 'RESULT_NOT_FOUND' });
      }
    }
    const after = await api(`/analyze/jobs/${jobId}`);
    expect(after.status).toBe(200);
    expect(after.body).toEqual(job); // status, timestamps, attempt, partial_count, result_id: unchanged
    expect((await api(`/analyze/jobs/${jobId}`, { org: 'org-b' })).status).toBe(404);
    expect((await api(`/analyze/jobs/${jobId}/results`)).body.results).toEqual([]);
    expect((await api(`/analyze/jobs/${jobId}/events`)).body.events).toEqual([]);
    // The stream of a terminal job whose log is gone ends at once instead of hanging.
    const stream = await fetch(`${server.url}/analyze/jobs/${jobId}/stream`, { headers: { 'x-org-id': 'org-a' }, signal: AbortSignal.timeout(5000) });
    expect(stream.status).toBe(200);
    expect(await stream.text()).not.toContain('event:');
  });

  it('an unknown result id is still 404 for everyone', async () => {
    const r = await api('/analyze/results/res_00000000000000000000000000');
    expect(r.status).toBe(404);
  });
});

describe('scheduled retention (UPSHIFT_RETENTION_INTERVAL_MS)', () => {
  it('runs on the interval, removes eligible results and records the run in /metrics', async () => {
    const scheduled = await startTestServer({
      UPSHIFT_RETENTION_INTERVAL_MS: '100',
      UPSHIFT_RETENTION_RESULTS_TTL_SECONDS: '0',
      UPSHIFT_RETENTION_EVENTS_TTL_SECONDS: '0',
      UPSHIFT_RETENTION_PAUSE_MS: '0',
    });
    try {
      const sapi = apiClient(scheduled.url, 'org-a');
      const r = await sapi('/analyze/jobs', { body: { analyzer: 'noop', input: { x: 1 } } });
      const jobId = r.body.job_id as string;
      const job = await eventually(async () => {
        const g = await sapi(`/analyze/jobs/${jobId}`);
        return g.body.status === 'completed' ? g.body : null;
      });
      await eventually(async () => (await sapi(`/analyze/results/${job.result_id}`)).status === 410, 10_000);
      // The run reports (and records its metrics) once it has examined every job. The 410 may
      // come from a run still in progress, after an earlier run (that found nothing) recorded
      // exit code 0: wait for the deleting run's own report.
      const metrics = await eventually(async () => {
        const m = await sapi('/metrics', { org: null });
        return /^upshift_retention_deleted_total\{kind="results"\} [1-9]/m.test(m.text) ? m : null;
      }, 10_000);
      expect(metrics.text).toMatch(/^upshift_retention_last_exit_code 0$/m);
    } finally {
      await scheduled.close();
    }
  });
});
