import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { api, startServer, type ServerProc } from '../helpers/proc.js';

interface JobView { job_id: string; status: string; attempt: number; result_id: string | null }
interface EventView { event_seq: number; type: string }

const dir = mkdtempSync(join(tmpdir(), 'upshift-crash-'));
const env = {
  UPSHIFT_DATABASE_URL: `sqlite:${join(dir, 'upshift.db')}`,
  UPSHIFT_DATA_DIR: dir,
  UPSHIFT_LEASE_MS: '1500',
  UPSHIFT_HEARTBEAT_MS: '300',
  UPSHIFT_BACKOFF_BASE_MS: '50',
  UPSHIFT_POLL_MS: '100',
};
const procs: ServerProc[] = [];
afterAll(() => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('SIGKILL of the embedded server mid-job', () => {
  it('recovers after restart: the job completes with no duplicate partials or terminal events', async () => {
    const first = await startServer(env);
    procs.push(first);
    const jobs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await api<JobView>(first.url, '/analyze/jobs', { body: { analyzer: 'sleep', input: { ms: 2400, steps: 8 }, max_attempts: 3 } });
      expect(r.status).toBe(202);
      jobs.push(r.body.job_id);
    }
    // Wait until every job has recorded some partials, then kill without any chance to clean up.
    for (;;) {
      const counts = await Promise.all(jobs.map(async (id) => (await api<{ events: EventView[] }>(first.url, `/analyze/jobs/${id}/events?limit=1000`)).body.events.filter((e) => e.type === 'job.partial').length));
      if (counts.every((c) => c >= 2)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');

    const second = await startServer(env);
    procs.push(second);
    for (const id of jobs) {
      for (;;) {
        const j = await api<JobView>(second.url, `/analyze/jobs/${id}`);
        expect(j.status).toBe(200);
        if (j.body.status === 'completed') break;
        expect(['queued', 'running']).toContain(j.body.status);
        await new Promise((r) => setTimeout(r, 100));
      }
      const job = (await api<JobView>(second.url, `/analyze/jobs/${id}`)).body;
      expect(job.attempt).toBe(2);
      const events = (await api<{ events: EventView[] }>(second.url, `/analyze/jobs/${id}/events?limit=1000`)).body.events;
      expect(events.map((e) => e.event_seq)).toEqual(events.map((_, i) => i + 1));
      expect(events.filter((e) => ['job.completed', 'job.failed', 'job.canceled'].includes(e.type))).toHaveLength(1);
      const partialEvents = events.filter((e) => e.type === 'job.partial');
      const results = (await api<{ results: { kind: string; chunk_key: string | null }[] }>(second.url, `/analyze/jobs/${id}/results`)).body.results;
      const partialKeys = results.filter((r) => r.kind === 'partial').map((r) => r.chunk_key);
      expect(new Set(partialKeys).size).toBe(partialKeys.length);
      expect(partialKeys).toHaveLength(8);
      expect(partialEvents).toHaveLength(8);
      expect(results.filter((r) => r.kind === 'final')).toHaveLength(1);
    }
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });
});
