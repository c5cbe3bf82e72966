import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, startTestServer, type TestServer } from '../helpers/server.js';

// GET /analyze/stats over a real socket (SQLite here; PostgreSQL in the e2e-postgres project):
// the read model for flagged tenants, the source tables for the others, tenant isolation.
describe('GET /analyze/stats', () => {
  let srv: TestServer;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    srv = await startTestServer({
      UPSHIFT_FEATURE_FLAGS: JSON.stringify({ stats_read_model: { enabled: true, tenants_on: ['acme', 'initech'] } }),
      UPSHIFT_PROJECTIONS_ENABLED: 'true',
      UPSHIFT_PROJECTIONS_POLL_MS: '50',
    });
    api = apiClient(srv.url);
  });
  afterAll(async () => {
    await srv.close();
  });

  async function runJobs(org: string, jobs: { analyzer: string; input: unknown }[]): Promise<void> {
    const ids: string[] = [];
    for (const j of jobs) {
      const r = await api<{ job_id: string }>('/analyze/jobs', { org, body: j });
      expect(r.status).toBe(202);
      ids.push(r.body.job_id);
    }
    for (const id of ids) {
      for (let i = 0; ; i++) {
        const r = await api<{ status: string }>(`/analyze/jobs/${id}`, { org });
        if (['completed', 'failed', 'canceled'].includes(r.body.status)) break;
        if (i > 400) throw new Error(`job ${id} did not finish`);
        await new Promise((res) => setTimeout(res, 25));
      }
    }
  }

  async function upToDateStats(org: string): Promise<any> {
    for (let i = 0; ; i++) {
      const r = await api(`/analyze/stats`, { org });
      expect(r.status).toBe(200);
      if (r.body.source !== 'read_model' || r.body.projection.up_to_date) return r.body;
      if (i > 200) throw new Error(`stats of ${org} never caught up: ${r.text}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  it('answers from the read model for a flagged tenant, with the same numbers as the source tables', async () => {
    await runJobs('acme', [
      { analyzer: 'noop', input: { a: 1 } },
      { analyzer: 'noop', input: { a: 2 } },
      { analyzer: 'sleep', input: { ms: 30 } },
    ]);
    const stats = await upToDateStats('acme');
    expect(stats.source).toBe('read_model');
    expect(stats.org_id).toBe('acme');
    expect(stats.counts).toEqual({ queued: 0, running: 0, completed: 3, failed: 0, canceled: 0, total: 3 });
    const sleep = stats.analyzers.find((a: { analyzer: string }) => a.analyzer === 'sleep');
    expect(sleep.run_time_ms.count).toBe(1);
    expect(sleep.run_time_ms.p50).toBeGreaterThanOrEqual(25);
    expect(stats.throughput.find((t: { window_minutes: number }) => t.window_minutes === 60).completed).toBe(3);
    expect(stats.projection.position).toBeGreaterThan(0);
    expect(stats.projection.pending_events).toBe(0);

    const source = await srv.app.stats.fromSource('acme' as never);
    expect(source.counts).toEqual(stats.counts);
    expect(source.analyzers.map((a) => [a.analyzer, a.runTime.count, a.runTime.p50Ms, a.runTime.p95Ms])).toEqual(
      stats.analyzers.map((a: any) => [a.analyzer, a.run_time_ms.count, a.run_time_ms.p50, a.run_time_ms.p95]),
    );
  });

  it('computes from the source tables when the flag is off, and never shows another tenant’s jobs', async () => {
    await runJobs('globex', [{ analyzer: 'noop', input: { g: 1 } }]);
    const globex = (await api('/analyze/stats', { org: 'globex' })).body;
    expect(globex.source).toBe('source_tables');
    expect(globex.projection).toBeNull();
    expect(globex.counts.total).toBe(1);
    // initech (flag on) has no jobs: empty stats, not acme's or globex's.
    const initech = await upToDateStats('initech');
    expect(initech.source).toBe('read_model');
    expect(initech.counts.total).toBe(0);
    expect(initech.analyzers).toEqual([]);
    const acme = await upToDateStats('acme');
    expect(acme.counts.total).toBe(3);
  });

  it('is tenant-scoped like every route: no tenant header → 400 problem', async () => {
    const r = await api('/analyze/stats', { org: null });
    expect(r.status).toBe(400);
    expect(r.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(r.body.code).toBe('TENANT_MISSING');
    const doc = await api('/openapi.json');
    expect(doc.body.paths['/analyze/stats'].get.responses['200']).toBeDefined();
  });
});
