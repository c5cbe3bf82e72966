import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isUpshiftError, type ErrorCode } from '../../src/core/errors.js';
import type { JobEvent } from '../../src/core/events.js';
import { isTerminalEvent } from '../../src/core/events.js';
import { asJobId, asOrgId, newJobId, newResultId, type JobId, type OrgId, type ResultId } from '../../src/core/ids.js';
import type { ClaimedJob, Job, LeaseRef } from '../../src/core/job.js';
import { isTerminal } from '../../src/core/jobState.js';
import type { JobStore, SubmitJobCommand } from '../../src/ports/jobStore.js';

/**
 * The JobStore conformance suite. Adapter-agnostic: it uses only the port and core, so every
 * adapter (SQLite, PostgreSQL) runs exactly these tests. `factory` must return a fresh, empty
 * store (its own file/schema); the suite calls `migrate()` itself and `cleanup()` after each test.
 * Time is always passed explicitly (T0 + n), never read from a clock.
 */
export function jobStoreContract(name: string, factory: () => Promise<{ store: JobStore; cleanup: () => Promise<void> }>): void {
  describe(`JobStore contract: ${name}`, () => {
    const T0 = Date.UTC(2026, 0, 1);
    const A = asOrgId('org-a');
    const B = asOrgId('org-b');
    const LEASE_MS = 30_000;
    let store: JobStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await factory());
      await store.migrate();
    });
    afterEach(async () => {
      await cleanup();
    });

    const submit = async (over: Partial<SubmitJobCommand> = {}): Promise<Job> => {
      const now = over.now ?? T0;
      const cmd: SubmitJobCommand = {
        jobId: newJobId(now),
        orgId: A,
        analyzer: 'noop',
        input: { n: 1, nested: { ok: true } },
        priority: 0,
        maxAttempts: 3,
        idempotencyKey: null,
        requestHash: null,
        traceContext: null,
        now,
        ...over,
      };
      return (await store.submitJob(cmd)).job;
    };
    const claim = (orgId: OrgId = A, now = T0, limit = 10, analyzers: readonly string[] | null = null): Promise<ClaimedJob[]> =>
      store.claimJobs({ orgId, limit, workerId: 'w1', now, leaseMs: LEASE_MS, analyzers });
    const claimOne = async (orgId: OrgId = A, now = T0): Promise<ClaimedJob> => {
      const [job] = await claim(orgId, now, 1);
      expect(job).toBeDefined();
      return job!;
    };
    const leaseOf = (j: ClaimedJob): LeaseRef => ({ orgId: j.orgId, jobId: j.jobId, attempt: j.attempt, leaseToken: j.leaseToken });
    /** Submits and claims one job. Claims every ready job of the org, so call it sequentially. */
    const running = async (over: Partial<SubmitJobCommand> = {}): Promise<{ job: ClaimedJob; lease: LeaseRef }> => {
      const s = await submit(over);
      const [job] = (await claim(s.orgId, over.now ?? T0, 100)).filter((j) => j.jobId === s.jobId);
      expect(job).toBeDefined();
      return { job: job!, lease: leaseOf(job!) };
    };
    const events = (jobId: JobId, orgId: OrgId = A): Promise<JobEvent[]> => store.listEvents(orgId, jobId, 0, 10_000);
    const types = async (jobId: JobId): Promise<string[]> => (await events(jobId)).map((e) => e.type);
    const expectCode = async (p: Promise<unknown>, code: ErrorCode): Promise<void> => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isUpshiftError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
    };
    const completed = (resultId: ResultId = newResultId(Date.now())) => ({ status: 'completed' as const, resultId, payload: { done: true } });

    describe('migrations and health', () => {
      it('migrate is idempotent and ping succeeds on a migrated store', async () => {
        expect((await store.migrate()).applied).toEqual([]);
        await expect(store.ping()).resolves.toBeUndefined();
        expect(typeof store.kind).toBe('string');
      });
    });

    describe('submit, get, list', () => {
      it('creates a queued job with a job.queued event and returns it from getJob', async () => {
        const { job, created } = await store.submitJob({
          jobId: newJobId(T0), orgId: A, analyzer: 'noop', input: { a: [1, 'x', null] }, priority: 7, maxAttempts: 4,
          idempotencyKey: null, requestHash: null, traceContext: '00-abc-def-01', now: T0,
        });
        expect(created).toBe(true);
        expect(job).toMatchObject({
          orgId: A, analyzer: 'noop', input: { a: [1, 'x', null] }, status: 'queued', attempt: 1, maxAttempts: 4, priority: 7,
          idempotencyKey: null, progress: { fraction: 0, message: null }, createdAt: T0, runAt: T0, startedAt: null,
          finishedAt: null, cancelRequestedAt: null, resultId: null, partialCount: 0, error: null, traceContext: '00-abc-def-01',
        });
        expect(await store.getJob(A, job.jobId)).toEqual(job);
        expect(await store.getJob(B, job.jobId)).toBeUndefined();
        expect(await store.getJob(A, newJobId(T0))).toBeUndefined();
        const [ev] = await events(job.jobId);
        expect(ev).toMatchObject({ jobId: job.jobId, orgId: A, eventSeq: 1, type: 'job.queued', status: 'queued', occurredAt: T0 });
      });

      it('honours a delayed runAt', async () => {
        const job = await submit({ runAt: T0 + 5000 });
        expect(job.runAt).toBe(T0 + 5000);
      });

      it('lists newest first with filters, cursor paging and limit, only for the own org', async () => {
        const jobs: Job[] = [];
        for (let i = 0; i < 12; i++) jobs.push(await submit({ now: T0 + i * 10, analyzer: i % 3 === 0 ? 'profile' : 'noop' }));
        await submit({ orgId: B, now: T0 + 500 });
        const newestFirst = [...jobs].reverse().map((j) => j.jobId);
        expect((await store.listJobs(A, { limit: 100 })).map((j) => j.jobId)).toEqual(newestFirst);
        const page1 = await store.listJobs(A, { limit: 5 });
        const page2 = await store.listJobs(A, { limit: 5, beforeJobId: page1[4]!.jobId });
        const page3 = await store.listJobs(A, { limit: 5, beforeJobId: page2[4]!.jobId });
        expect([...page1, ...page2, ...page3].map((j) => j.jobId)).toEqual(newestFirst);
        expect(page3).toHaveLength(2);
        expect((await store.listJobs(A, { limit: 100, analyzer: 'profile' })).map((j) => j.jobId)).toEqual(
          newestFirst.filter((id) => jobs.find((j) => j.jobId === id)!.analyzer === 'profile'),
        );
        // createdAfter inclusive, createdBefore exclusive.
        const window = await store.listJobs(A, { limit: 100, createdAfter: T0 + 30, createdBefore: T0 + 70 });
        expect(window.map((j) => j.createdAt)).toEqual([T0 + 60, T0 + 50, T0 + 40, T0 + 30]);
        await claim(A, T0 + 1000, 2);
        const runningJobs = await store.listJobs(A, { limit: 100, status: 'running' });
        expect(runningJobs).toHaveLength(2);
        expect(runningJobs.every((j) => j.status === 'running')).toBe(true);
        expect(await store.listJobs(A, { limit: 100, status: 'queued', analyzer: 'nope' })).toEqual([]);
        expect((await store.listJobs(B, { limit: 100 })).every((j) => j.orgId === B)).toBe(true);
        expect(await store.listJobs(B, { limit: 100 })).toHaveLength(1);
      });
      it('keeps JSON as written: input, partial and final payloads and event payloads read back with their keys in the written order', async () => {
        // Keys out of every "natural" order (jsonb would sort them by length, then bytes).
        const input = { zeta: 1, a: { yy: true, b: [{ long_key: 1, k: 2 }] }, mid: 'x' };
        const { job, lease } = await running({ input });
        expect(JSON.stringify((await store.getJob(A, job.jobId))!.input)).toBe(JSON.stringify(input));
        const partial = { rows_seen: 10, n: 1, columns: { zz: 1, a: 2 } };
        await store.recordPartial(lease, 'chunk-1', partial, T0 + 1);
        const final = { summary: 'ok', id: 7, nested: { beta: 2, a: 1 } };
        await store.finishJob(lease, { status: 'completed', resultId: newResultId(T0 + 2), payload: final }, T0 + 2);
        const payloads = (await store.listResults(A, job.jobId)).map((r) => JSON.stringify(r.payload));
        expect(payloads).toEqual([JSON.stringify(partial), JSON.stringify(final)]);
        // Event payloads: the keys in the order the SQLite store writes them (events.ts shapes).
        const log = await events(job.jobId);
        expect(log.map((e) => Object.keys(e.payload as object).join(','))).toEqual([
          'analyzer,priority,max_attempts,run_at',
          'attempt,worker_id',
          'result_id,chunk_key,seq',
          'result_id,attempt',
        ]);
      });
    });

    describe('idempotency', () => {
      const keyed = (key: string, hash: string, orgId: OrgId = A): SubmitJobCommand => ({
        jobId: newJobId(T0), orgId, analyzer: 'noop', input: { hash }, priority: 0, maxAttempts: 1,
        idempotencyKey: key, requestHash: hash, traceContext: null, now: T0,
      });

      it('same key and same body returns the existing job; a different body conflicts', async () => {
        const first = await store.submitJob(keyed('k1', 'h1'));
        const again = await store.submitJob(keyed('k1', 'h1'));
        expect(first.created).toBe(true);
        expect(again).toEqual({ job: first.job, created: false });
        await expectCode(store.submitJob(keyed('k1', 'h2')), 'IDEMPOTENCY_CONFLICT');
        expect(await store.listJobs(A, { limit: 10 })).toHaveLength(1);
        expect(await types(first.job.jobId)).toEqual(['job.queued']);
      });

      it('keys are per org', async () => {
        const a = await store.submitJob(keyed('k', 'h'));
        const b = await store.submitJob(keyed('k', 'other', B));
        expect(b.created).toBe(true);
        expect(b.job.jobId).not.toBe(a.job.jobId);
      });

      it('concurrent submits with one key create exactly one job', async () => {
        const results = await Promise.all(Array.from({ length: 25 }, () => store.submitJob(keyed('race', 'h'))));
        expect(results.filter((r) => r.created)).toHaveLength(1);
        expect(new Set(results.map((r) => r.job.jobId)).size).toBe(1);
        const mixed = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => store.submitJob(keyed('mixed', i % 2 ? 'x' : 'y'))));
        const ok = mixed.filter((r) => r.status === 'fulfilled');
        expect(ok.filter((r) => r.value.created)).toHaveLength(1);
        expect(new Set(ok.map((r) => r.value.job.jobId)).size).toBe(1);
        for (const r of mixed) if (r.status === 'rejected') expect(isUpshiftError(r.reason, 'IDEMPOTENCY_CONFLICT')).toBe(true);
        expect(await store.listJobs(A, { limit: 10 })).toHaveLength(2);
      });
    });

    describe('event log', () => {
      it('eventSeq is gap-free from 1 and positions increase; listEvents pages and is tenant-bound', async () => {
        const { job, lease } = await running();
        await store.recordProgress(lease, 0.5, 'half', T0 + 1);
        await store.recordPartial(lease, 'c1', { rows: 1 }, T0 + 2);
        await store.requestCancel(A, job.jobId, T0 + 3);
        await store.finishJob(lease, { status: 'canceled', reason: 'cancel_observed' }, T0 + 4);
        const all = await events(job.jobId);
        expect(all.map((e) => e.type)).toEqual(['job.queued', 'job.started', 'job.progress', 'job.partial', 'job.cancel_requested', 'job.canceled']);
        expect(all.map((e) => e.eventSeq)).toEqual([1, 2, 3, 4, 5, 6]);
        expect(all.map((e) => e.status)).toEqual(['queued', 'running', 'running', 'running', 'running', 'canceled']);
        for (let i = 1; i < all.length; i++) expect(all[i]!.position).toBeGreaterThan(all[i - 1]!.position);
        expect((await store.listEvents(A, job.jobId, 2, 2)).map((e) => e.eventSeq)).toEqual([3, 4]);
        expect(await store.listEvents(B, job.jobId, 0, 100)).toEqual([]);
      });

      it('interleaved writes to many jobs keep every job gap-free', async () => {
        const jobs: Array<{ job: ClaimedJob; lease: LeaseRef }> = [];
        for (let i = 0; i < 20; i++) jobs.push(await running());
        await Promise.all(jobs.flatMap(({ lease }, i) => [
          store.recordProgress(lease, 0.1, null, T0 + 1),
          store.recordPartial(lease, `c${i}`, i, T0 + 2),
          store.recordProgress(lease, 0.9, null, T0 + 3),
        ]));
        await Promise.all(jobs.map(({ lease }) => store.finishJob(lease, completed(), T0 + 4)));
        const positions: number[] = [];
        for (const { job } of jobs) {
          const evs = await events(job.jobId);
          expect(evs.map((e) => e.eventSeq)).toEqual(evs.map((_, i) => i + 1));
          positions.push(...evs.map((e) => e.position));
        }
        expect(new Set(positions).size).toBe(positions.length);
      });

      it('listOrgEvents reads one org\'s events of a position window, ascending and limited; headPosition is the newest', async () => {
        expect(await store.headPosition()).toBe(0);
        const a1 = await submit();
        const b1 = await submit({ orgId: B });
        const a2 = await submit();
        await store.requestCancel(A, a1.jobId, T0 + 1);
        const mine = [...(await events(a1.jobId)), ...(await events(a2.jobId))].sort((x, y) => x.position - y.position);
        const theirs = await events(b1.jobId, B);
        const head = await store.headPosition();
        expect(head).toBe(Math.max(...mine.map((e) => e.position), ...theirs.map((e) => e.position)));
        expect(await store.listOrgEvents(A, 0, head, 100)).toEqual(mine);
        expect(await store.listOrgEvents(B, 0, head, 100)).toEqual(theirs);
        // The window bounds both ends; the limit keeps the oldest.
        const [first, second, third] = mine;
        expect(await store.listOrgEvents(A, first!.position, third!.position - 1, 100)).toEqual([second]);
        expect(await store.listOrgEvents(A, 0, head, 2)).toEqual([first, second]);
        expect(await store.listOrgEvents(A, head, head + 1000, 100)).toEqual([]);
        expect(await store.listOrgEvents(A, 5, 5, 100)).toEqual([]);
        expect(await store.listOrgEvents(asOrgId('org-none'), 0, head, 100)).toEqual([]);
      });
    });

    describe('claim', () => {
      it('orders by priority, then runAt, then submission order', async () => {
        const low1 = await submit({ now: T0 - 2, runAt: T0 });
        const high2 = await submit({ now: T0 - 1, priority: 5, runAt: T0 + 2 });
        const high1 = await submit({ now: T0, priority: 5, runAt: T0 + 1 });
        const low2 = await submit({ now: T0 + 1, runAt: T0 });
        const got = await claim(A, T0 + 10, 10);
        expect(got.map((j) => j.jobId)).toEqual([high1.jobId, high2.jobId, low1.jobId, low2.jobId]);
      });

      it('moves the job to running with a lease and a job.started event', async () => {
        const s = await submit();
        const j = await claimOne(A, T0 + 5);
        expect(j).toMatchObject({ jobId: s.jobId, status: 'running', attempt: 1, workerId: 'w1', startedAt: T0 + 5, leaseExpiresAt: T0 + 5 + LEASE_MS });
        expect(j.leaseToken.length).toBeGreaterThanOrEqual(16);
        expect((await store.getJob(A, s.jobId))!.status).toBe('running');
        const [, started] = await events(s.jobId);
        expect(started).toMatchObject({ type: 'job.started', status: 'running', eventSeq: 2, payload: { attempt: 1, worker_id: 'w1' } });
      });

      it('respects limit, org and analyzer filters; delayed jobs wait for runAt', async () => {
        for (let i = 0; i < 3; i++) await submit({ analyzer: 'noop' });
        await submit({ analyzer: 'profile' });
        const delayed = await submit({ runAt: T0 + 60_000 });
        expect(await claim(B)).toEqual([]);
        expect((await claim(A, T0, 1, ['profile'])).map((j) => j.analyzer)).toEqual(['profile']);
        expect(await claim(A, T0, 10, [])).toEqual([]);
        expect(await claim(A, T0, 2)).toHaveLength(2);
        expect(await claim(A, T0, 10)).toHaveLength(1);
        expect(await claim(A, T0 + 59_999, 10)).toEqual([]);
        expect((await claim(A, T0 + 60_000, 10)).map((j) => j.jobId)).toEqual([delayed.jobId]);
      });

      it('concurrent claimers never get the same job', async () => {
        await Promise.all(Array.from({ length: 200 }, (_, i) => submit({ now: T0 + (i % 7) })));
        const batches = await Promise.all(Array.from({ length: 40 }, () => claim(A, T0 + 100, 10)));
        const ids = batches.flat().map((j) => j.jobId);
        expect(ids).toHaveLength(200);
        expect(new Set(ids).size).toBe(200);
        const tokens = batches.flat().map((j) => j.leaseToken);
        expect(new Set(tokens).size).toBe(200);
      });
    });

    describe('claim by id', () => {
      const byId = (jobs: Array<{ orgId: OrgId; jobId: JobId }>, now = T0, workerId = 'w1') =>
        store.claimJobsById({ jobs, workerId, now, leaseMs: LEASE_MS });

      it('claims the named queued jobs like claimJobs, and tells gone and not-due apart', async () => {
        const due = await submit();
        const other = await submit({ orgId: B });
        const later = await submit({ runAt: T0 + 60_000 });
        const done = await submit();
        await store.requestCancel(A, done.jobId, T0);
        const results = await byId([
          { orgId: A, jobId: due.jobId },
          // Another org's job named with this org's id: gone, and untouched.
          { orgId: A, jobId: other.jobId },
          { orgId: A, jobId: later.jobId },
          { orgId: A, jobId: done.jobId },
          { orgId: A, jobId: asJobId('job_00000000000000000000000000') },
        ], T0 + 5);
        expect(results.map((r) => r.kind)).toEqual(['claimed', 'gone', 'not_due', 'gone', 'gone']);
        expect(results[2]).toEqual({ kind: 'not_due', runAt: T0 + 60_000 });
        const claimed = results[0];
        if (claimed?.kind !== 'claimed') throw new Error('not claimed');
        expect(claimed.job).toMatchObject({ jobId: due.jobId, orgId: A, status: 'running', attempt: 1, workerId: 'w1', startedAt: T0 + 5, leaseExpiresAt: T0 + 5 + LEASE_MS });
        expect(claimed.job.leaseToken.length).toBeGreaterThanOrEqual(16);
        const [, started] = await events(due.jobId);
        expect(started).toMatchObject({ type: 'job.started', status: 'running', eventSeq: 2, payload: { attempt: 1, worker_id: 'w1' } });
        expect((await store.getJob(B, other.jobId))!.status).toBe('queued');
        expect(await types(other.jobId)).toEqual([]);
        expect((await store.listEvents(B, other.jobId, 0, 10)).map((e) => e.type)).toEqual(['job.queued']);
        // Claimed once: the lease works for the finish, and a second claim finds it gone.
        await store.finishJob(leaseOf(claimed.job), completed(), T0 + 6);
        expect((await byId([{ orgId: A, jobId: due.jobId }], T0 + 7)).map((r) => r.kind)).toEqual(['gone']);
        // Due now.
        expect((await byId([{ orgId: A, jobId: later.jobId }], T0 + 60_000)).map((r) => r.kind)).toEqual(['claimed']);
        expect(await byId([])).toEqual([]);
      });

      it('a job named twice, or by concurrent claimers, is claimed exactly once', async () => {
        const jobs = await Promise.all(Array.from({ length: 60 }, () => submit()));
        const twice = await byId([{ orgId: A, jobId: (jobs[0] as Job).jobId }, { orgId: A, jobId: (jobs[0] as Job).jobId }], T0 + 1);
        expect(twice.map((r) => r.kind)).toEqual(['claimed', 'gone']);
        // Every job named by three claimers in the same turn (as duplicated queue entries would).
        const rest = jobs.slice(1);
        const rounds = await Promise.all(
          [0, 1, 2].flatMap((k) => rest.map((j) => byId([{ orgId: A, jobId: j.jobId }], T0 + 2, `w${k}`))),
        );
        const claimed = rounds.flat().filter((r) => r.kind === 'claimed');
        expect(claimed).toHaveLength(rest.length);
        expect(new Set(claimed.map((r) => (r.kind === 'claimed' ? r.job.jobId : ''))).size).toBe(rest.length);
        expect(rounds.flat().filter((r) => r.kind !== 'claimed').every((r) => r.kind === 'gone' || r.kind === 'busy')).toBe(true);
        for (const j of rest) expect(await types(j.jobId)).toEqual(['job.queued', 'job.started']);
      });
    });

    describe('heartbeat and progress', () => {
      it('extends held leases, reports lost ones and cancel requests', async () => {
        const { job, lease } = await running();
        const other = await running();
        const stale = { ...lease, leaseToken: 'lse_stale' };
        const res = await store.heartbeat({ workerId: 'w1', leases: [lease, stale, { ...lease, attempt: 2 }, { ...lease, orgId: B }], now: T0 + 10_000, leaseMs: LEASE_MS });
        expect(res).toEqual([
          { jobId: job.jobId, held: true, cancelRequested: false },
          { jobId: job.jobId, held: false, cancelRequested: false },
          { jobId: job.jobId, held: false, cancelRequested: false },
          { jobId: job.jobId, held: false, cancelRequested: false },
        ]);
        // The extended lease is not expired at the original expiry, the other one is.
        const moved = await store.recoverExpiredLeases(T0 + LEASE_MS + 1, 10, () => T0 + LEASE_MS + 1);
        expect(moved.map((j) => j.jobId)).toEqual([other.job.jobId]);
        await store.requestCancel(A, job.jobId, T0 + 11_000);
        const [hb] = await store.heartbeat({ workerId: 'w1', leases: [lease], now: T0 + 12_000, leaseMs: LEASE_MS });
        expect(hb).toEqual({ jobId: job.jobId, held: true, cancelRequested: true });
      });

      it('an expired lease that was not recovered yet is still held and gets extended', async () => {
        const { job, lease } = await running();
        const late = T0 + 3 * LEASE_MS;
        expect(await store.heartbeat({ workerId: 'w1', leases: [lease], now: late, leaseMs: LEASE_MS })).toEqual([
          { jobId: job.jobId, held: true, cancelRequested: false },
        ]);
        expect(await store.recoverExpiredLeases(late + 1, 10, () => late)).toEqual([]);
        expect(await store.recoverExpiredLeases(late + LEASE_MS + 1, 10, () => late)).toHaveLength(1);
      });

      it('records progress with an event; a lost lease changes nothing', async () => {
        const { job, lease } = await running();
        await store.recordProgress(lease, 0.25, 'a quarter', T0 + 1);
        expect((await store.getJob(A, job.jobId))!.progress).toEqual({ fraction: 0.25, message: 'a quarter' });
        const ev = (await events(job.jobId)).at(-1)!;
        expect(ev).toMatchObject({ type: 'job.progress', status: 'running', payload: { fraction: 0.25, message: 'a quarter' } });
        const before = await store.getJob(A, job.jobId);
        await expectCode(store.recordProgress({ ...lease, leaseToken: 'lse_x' }, 0.9, null, T0 + 2), 'JOB_LEASE_LOST');
        await expectCode(store.recordProgress({ ...lease, orgId: B }, 0.9, null, T0 + 2), 'JOB_LEASE_LOST');
        expect(await store.getJob(A, job.jobId)).toEqual(before);
        expect(await events(job.jobId)).toHaveLength(3);
      });
    });

    describe('partial results', () => {
      it('is idempotent by chunk key and updates the latest result', async () => {
        const { job, lease } = await running();
        const p1 = await store.recordPartial(lease, 'rows-0-999', { rows: 1000 }, T0 + 1);
        expect(p1.created).toBe(true);
        expect(p1.result).toMatchObject({ jobId: job.jobId, orgId: A, kind: 'partial', chunkKey: 'rows-0-999', seq: 1, payload: { rows: 1000 }, createdAt: T0 + 1 });
        expect(p1.result.resultId).toMatch(/^res_/);
        const again = await store.recordPartial(lease, 'rows-0-999', { rows: 'different' }, T0 + 2);
        expect(again).toEqual({ result: p1.result, created: false });
        const p2 = await store.recordPartial(lease, 'rows-1000-1999', { rows: 2000 }, T0 + 3);
        expect(p2.result.seq).toBe(2);
        const after = (await store.getJob(A, job.jobId))!;
        expect(after).toMatchObject({ resultId: p2.result.resultId, partialCount: 2 });
        expect(await types(job.jobId)).toEqual(['job.queued', 'job.started', 'job.partial', 'job.partial']);
        expect((await events(job.jobId))[2]!.payload).toMatchObject({ result_id: p1.result.resultId, chunk_key: 'rows-0-999' });
        expect(await store.getLatestResult(A, job.jobId)).toEqual(p2.result);
        expect(await store.getResult(A, p1.result.resultId)).toEqual(p1.result);
        expect(await store.getResult(B, p1.result.resultId)).toBeUndefined();
        expect(await store.getLatestResult(B, job.jobId)).toBeUndefined();
        expect(await store.listResults(B, job.jobId)).toEqual([]);
        await expectCode(store.recordPartial({ ...lease, orgId: B }, 'x', 1, T0), 'JOB_LEASE_LOST');
        await expectCode(store.recordPartial({ ...lease, leaseToken: 'lse_x' }, 'rows-0-999', 1, T0), 'JOB_LEASE_LOST');
      });

      it('a replay after requeue with a new lease creates no duplicate', async () => {
        const { job, lease } = await running();
        const first = await store.recordPartial(lease, 'c1', { v: 1 }, T0 + 1);
        await store.finishJob(lease, { status: 'retry', error: { code: 'ANALYZER_FAILED', message: 'boom' }, retryAt: T0 + 100 }, T0 + 2);
        const second = await claimOne(A, T0 + 100);
        expect(second).toMatchObject({ jobId: job.jobId, attempt: 2 });
        expect(second.leaseToken).not.toBe(lease.leaseToken);
        const replay = await store.recordPartial(leaseOf(second), 'c1', { v: 2 }, T0 + 101);
        expect(replay).toEqual({ result: first.result, created: false });
        await expectCode(store.recordPartial(lease, 'c2', { v: 3 }, T0 + 102), 'JOB_LEASE_LOST');
        expect(await store.listResults(A, job.jobId)).toEqual([first.result]);
        expect((await store.getJob(A, job.jobId))!.partialCount).toBe(1);
      });
    });

    describe('finishJob', () => {
      it('completed: final result row, latest result, progress 1, job.completed', async () => {
        const { job, lease } = await running();
        const partial = await store.recordPartial(lease, 'c', { p: 1 }, T0 + 1);
        const resultId = newResultId(Date.now());
        const done = await store.finishJob(lease, { status: 'completed', resultId, payload: { total: 42 } }, T0 + 2);
        expect(done).toMatchObject({ status: 'completed', finishedAt: T0 + 2, resultId, progress: { fraction: 1 }, attempt: 1, error: null });
        expect(await store.getJob(A, job.jobId)).toEqual(done);
        const final = await store.getResult(A, resultId);
        expect(final).toEqual({ resultId, jobId: job.jobId, orgId: A, kind: 'final', chunkKey: null, seq: 2, payload: { total: 42 }, createdAt: T0 + 2 });
        expect(await store.listResults(A, job.jobId)).toEqual([partial.result, final]);
        expect(await store.getLatestResult(A, job.jobId)).toEqual(final);
        const last = (await events(job.jobId)).at(-1)!;
        expect(last).toMatchObject({ type: 'job.completed', status: 'completed', payload: { result_id: resultId } });
      });

      it('failed: stores the error and writes job.failed', async () => {
        const { job, lease } = await running();
        const failed = await store.finishJob(lease, { status: 'failed', error: { code: 'ANALYZER_FAILED', message: 'bad input' } }, T0 + 1);
        expect(failed).toMatchObject({ status: 'failed', finishedAt: T0 + 1, error: { code: 'ANALYZER_FAILED', message: 'bad input' } });
        expect((await events(job.jobId)).at(-1)).toMatchObject({ type: 'job.failed', status: 'failed', payload: { error: { code: 'ANALYZER_FAILED', message: 'bad input' } } });
        expect(await store.getLatestResult(A, job.jobId)).toBeUndefined();
      });

      it('retry: back to queued with attempt+1 and runAt, claimable again at runAt', async () => {
        const { job, lease } = await running();
        const error = { code: 'ANALYZER_FAILED', message: 'transient' };
        const requeued = await store.finishJob(lease, { status: 'retry', error, retryAt: T0 + 5000 }, T0 + 1);
        expect(requeued).toMatchObject({ status: 'queued', attempt: 2, runAt: T0 + 5000, finishedAt: null });
        expect((await events(job.jobId)).at(-1)).toMatchObject({ type: 'job.retrying', status: 'queued', payload: { attempt: 2, run_at: T0 + 5000, error } });
        expect(await claim(A, T0 + 4999)).toEqual([]);
        const again = await claimOne(A, T0 + 5000);
        expect(again).toMatchObject({ jobId: job.jobId, attempt: 2, startedAt: T0 + 5000 });
        await expectCode(store.finishJob(lease, completed(), T0 + 5001), 'JOB_LEASE_LOST');
        expect((await store.finishJob(leaseOf(again), completed(), T0 + 5002)).status).toBe('completed');
      });

      it('retry of a job with a cancel request cancels it instead', async () => {
        const { job, lease } = await running();
        await store.requestCancel(A, job.jobId, T0 + 1);
        const after = await store.finishJob(lease, { status: 'retry', error: { code: 'X', message: 'x' }, retryAt: T0 + 10 }, T0 + 2);
        expect(after.status).toBe('canceled');
        expect(await types(job.jobId)).toEqual(['job.queued', 'job.started', 'job.cancel_requested', 'job.canceled']);
      });

      it('canceled: job.canceled with the reason', async () => {
        const { job, lease } = await running();
        const after = await store.finishJob(lease, { status: 'canceled', reason: 'cancel_forced' }, T0 + 1);
        expect(after).toMatchObject({ status: 'canceled', finishedAt: T0 + 1 });
        expect((await events(job.jobId)).at(-1)).toMatchObject({ type: 'job.canceled', status: 'canceled', payload: { reason: 'cancel_forced' } });
      });

      it('fencing: a stale token, wrong attempt or other org is JOB_LEASE_LOST and changes nothing', async () => {
        const { job, lease } = await running();
        const before = await store.getJob(A, job.jobId);
        for (const bad of [{ ...lease, leaseToken: 'lse_stale' }, { ...lease, attempt: 2 }, { ...lease, orgId: B }, { ...lease, jobId: newJobId(T0) }]) {
          await expectCode(store.finishJob(bad, completed(), T0 + 1), 'JOB_LEASE_LOST');
          await expectCode(store.finishJob(bad, { status: 'failed', error: { code: 'X', message: 'x' } }, T0 + 1), 'JOB_LEASE_LOST');
        }
        expect(await store.getJob(A, job.jobId)).toEqual(before);
        expect(await events(job.jobId)).toHaveLength(2);
        expect(await store.listResults(A, job.jobId)).toEqual([]);
      });

      it('one failing op in a concurrent batch does not affect the others', async () => {
        const { lease } = await running();
        await submit({ idempotencyKey: 'k', requestHash: 'h1' });
        const settled = await Promise.allSettled([
          store.finishJob({ ...lease, leaseToken: 'lse_stale' }, completed(), T0 + 1),
          store.submitJob({ jobId: newJobId(T0), orgId: A, analyzer: 'noop', input: 1, priority: 0, maxAttempts: 1, idempotencyKey: 'k', requestHash: 'h2', traceContext: null, now: T0 }),
          store.finishJob(lease, completed(), T0 + 1),
          store.submitJob({ jobId: newJobId(T0), orgId: A, analyzer: 'noop', input: 2, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now: T0 }),
        ]);
        expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'fulfilled', 'fulfilled']);
        expect((await store.getJob(A, lease.jobId))!.status).toBe('completed');
        expect(await store.listJobs(A, { limit: 10 })).toHaveLength(3);
      });
    });

    describe('terminal immutability', () => {
      it('no write changes a terminal job or adds events', async () => {
        const finals: Array<{ job: ClaimedJob; lease: LeaseRef }> = [];
        for (const outcome of [completed(), { status: 'failed' as const, error: { code: 'X', message: 'x' } }, { status: 'canceled' as const, reason: 'cancel_observed' as const }]) {
          const r = await running();
          await store.finishJob(r.lease, outcome, T0 + 1);
          finals.push(r);
        }
        const queuedCanceled = await submit();
        await store.requestCancel(A, queuedCanceled.jobId, T0 + 1);
        for (const { job, lease } of finals) {
          const before = await store.getJob(A, job.jobId);
          const evBefore = await events(job.jobId);
          await expectCode(store.recordProgress(lease, 0.5, null, T0 + 2), 'JOB_LEASE_LOST');
          await expectCode(store.recordPartial(lease, 'late', 1, T0 + 2), 'JOB_LEASE_LOST');
          await expectCode(store.finishJob(lease, completed(), T0 + 2), 'JOB_LEASE_LOST');
          await expectCode(store.finishJob(lease, { status: 'retry', error: { code: 'X', message: 'x' }, retryAt: T0 }, T0 + 2), 'JOB_LEASE_LOST');
          await expectCode(store.finishJob(lease, { status: 'canceled', reason: 'cancel_forced' }, T0 + 2), 'JOB_LEASE_LOST');
          expect((await store.heartbeat({ workerId: 'w1', leases: [lease], now: T0 + 2, leaseMs: LEASE_MS }))[0]!.held).toBe(false);
          expect(await store.requestCancel(A, job.jobId, T0 + 2)).toEqual({ job: before, changed: false });
          expect(await store.recoverExpiredLeases(T0 + 10 * LEASE_MS, 100, () => T0)).toEqual([]);
          expect(await store.getJob(A, job.jobId)).toEqual(before);
          expect(await events(job.jobId)).toEqual(evBefore);
        }
        expect(await claim(A, T0 + 10 * LEASE_MS, 100)).toEqual([]);
      });
    });

    describe('requestCancel', () => {
      it('queued → canceled now, idempotent, tenant-bound', async () => {
        const job = await submit();
        expect(await store.requestCancel(B, job.jobId, T0 + 1)).toBeUndefined();
        expect(await store.requestCancel(A, newJobId(T0), T0 + 1)).toBeUndefined();
        const first = await store.requestCancel(A, job.jobId, T0 + 1);
        expect(first).toMatchObject({ changed: true, job: { status: 'canceled', finishedAt: T0 + 1 } });
        expect(await store.requestCancel(A, job.jobId, T0 + 2)).toEqual({ job: first!.job, changed: false });
        expect(await types(job.jobId)).toEqual(['job.queued', 'job.canceled']);
        expect(await claim()).toEqual([]);
      });

      it('running → cancel requested once; the worker then finishes it as canceled', async () => {
        const { job, lease } = await running();
        const first = await store.requestCancel(A, job.jobId, T0 + 1);
        expect(first).toMatchObject({ changed: true, job: { status: 'running', cancelRequestedAt: T0 + 1 } });
        expect(await store.requestCancel(A, job.jobId, T0 + 2)).toMatchObject({ changed: false, job: { cancelRequestedAt: T0 + 1 } });
        expect(await store.listStaleCancels(T0 + 2, 10)).toMatchObject([{ jobId: job.jobId, status: 'running', attempt: 1, leaseToken: lease.leaseToken }]);
        expect(await store.listStaleCancels(T0 + 2, 0)).toEqual([]);
        expect(await store.listStaleCancels(T0 + 1, 10)).toEqual([]);
        await store.finishJob(lease, { status: 'canceled', reason: 'cancel_observed' }, T0 + 3);
        expect(await types(job.jobId)).toEqual(['job.queued', 'job.started', 'job.cancel_requested', 'job.canceled']);
        expect(await store.listStaleCancels(T0 + 100, 10)).toEqual([]);
      });
    });

    describe('cancel-vs-complete races', () => {
      it('1,000 races: each job ends in exactly one terminal state with one terminal event', async () => {
        const N = 1000;
        for (let i = 0; i < N; i += 250) await Promise.all(Array.from({ length: Math.min(250, N - i) }, () => submit()));
        const claimed: ClaimedJob[] = [];
        while (claimed.length < N) claimed.push(...(await claim(A, T0, 250)));
        expect(claimed).toHaveLength(N);
        // Random delays spread both paths over several store round trips, so either can win.
        // The unit is a real write round trip (a cancel of an unknown job: changes nothing),
        // because a round trip is one event-loop turn for the embedded store but milliseconds
        // for a networked one.
        const jitter = async (): Promise<void> => {
          for (let n = Math.floor(Math.random() * 4); n > 0; n--) await store.requestCancel(B, newJobId(T0), T0);
        };
        const paths: Array<() => Promise<unknown>> = [];
        for (const job of claimed) {
          const lease = leaseOf(job);
          paths.push(async () => {
            await jitter();
            return store.finishJob(lease, completed(), T0 + 1);
          });
          paths.push(async () => {
            await jitter();
            await store.requestCancel(A, job.jobId, T0 + 1);
            return store.finishJob(lease, { status: 'canceled', reason: 'cancel_observed' }, T0 + 2);
          });
        }
        for (let i = paths.length - 1; i > 0; i--) {
          const k = Math.floor(Math.random() * (i + 1));
          [paths[i], paths[k]] = [paths[k]!, paths[i]!];
        }
        const settled = await Promise.allSettled(paths.map((p) => p()));
        for (const s of settled) if (s.status === 'rejected') expect(isUpshiftError(s.reason, 'JOB_LEASE_LOST')).toBe(true);
        expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(N);
        for (const job of claimed) {
          const after = (await store.getJob(A, job.jobId))!;
          expect(isTerminal(after.status)).toBe(true);
          const evs = await events(job.jobId);
          expect(evs.filter((e) => isTerminalEvent(e.type))).toHaveLength(1);
          expect(evs.at(-1)!.status).toBe(after.status);
          expect(evs.map((e) => e.eventSeq)).toEqual(evs.map((_, i) => i + 1));
          await expectCode(store.finishJob(leaseOf(job), { status: 'failed', error: { code: 'X', message: 'late' } }, T0 + 3), 'JOB_LEASE_LOST');
          expect((await store.requestCancel(A, job.jobId, T0 + 3))!.changed).toBe(false);
        }
        const finals = (await Promise.all(claimed.map((j) => store.listResults(A, j.jobId)))).flat();
        const completedCount = (await store.listJobs(A, { limit: N, status: 'completed' })).length;
        const canceledCount = (await store.listJobs(A, { limit: N, status: 'canceled' })).length;
        expect(finals).toHaveLength(completedCount);
        expect(completedCount + canceledCount).toBe(N);
        // Both sides won some races (overwhelmingly likely with 1,000 jobs and random delays).
        expect(completedCount).toBeGreaterThan(0);
        expect(canceledCount).toBeGreaterThan(0);
        // ~5,000 store calls, the checks one by one: on a disk with slow fsync (3 ms here) and a
        // loaded machine this takes longer than the default 30 s; it checks correctness, not speed.
      }, 120_000);
    });

    describe('recoverExpiredLeases', () => {
      it('requeues, fails at max attempts, cancels when requested; leaves live leases alone', async () => {
        const retryable = await running({ maxAttempts: 3 });
        const exhausted = await running({ maxAttempts: 1 });
        const canceled = await running({ maxAttempts: 3 });
        await store.requestCancel(A, canceled.job.jobId, T0 + 1);
        const live = await running({ now: T0 + 20_000 });
        const at = T0 + LEASE_MS + 1;
        const seen: Job[] = [];
        const moved = await store.recoverExpiredLeases(at, 100, (job) => {
          seen.push(job);
          return at + 1000;
        });
        expect(new Set(moved.map((j) => j.jobId))).toEqual(new Set([retryable.job.jobId, exhausted.job.jobId, canceled.job.jobId]));
        expect(seen.map((j) => j.jobId)).toEqual([retryable.job.jobId]);
        expect(seen[0]).toMatchObject({ status: 'running', attempt: 1 });
        expect(await store.getJob(A, retryable.job.jobId)).toMatchObject({ status: 'queued', attempt: 2, runAt: at + 1000 });
        expect((await events(retryable.job.jobId)).at(-1)).toMatchObject({ type: 'job.retrying', payload: { attempt: 2, run_at: at + 1000, error: { code: 'LEASE_EXPIRED' } } });
        expect(await store.getJob(A, exhausted.job.jobId)).toMatchObject({ status: 'failed', error: { code: 'LEASE_EXPIRED' }, finishedAt: at });
        expect((await events(exhausted.job.jobId)).at(-1)).toMatchObject({ type: 'job.failed', payload: { error: { code: 'LEASE_EXPIRED' } } });
        expect(await store.getJob(A, canceled.job.jobId)).toMatchObject({ status: 'canceled', finishedAt: at });
        expect((await events(canceled.job.jobId)).at(-1)).toMatchObject({ type: 'job.canceled' });
        expect((await store.getJob(A, live.job.jobId))!.status).toBe('running');
        await expectCode(store.finishJob(retryable.lease, completed(), at + 1), 'JOB_LEASE_LOST');
        expect(await store.recoverExpiredLeases(at, 100, () => at)).toEqual([]);
      });

      it('is atomic: a throwing retryAt moves nothing', async () => {
        const first = await running({ now: T0 });
        const second = await running({ now: T0 + 1 });
        const at = T0 + 2 * LEASE_MS;
        let calls = 0;
        const settled = await Promise.allSettled([
          store.recoverExpiredLeases(at, 10, () => {
            if (++calls === 2) throw new Error('backoff policy exploded');
            return at;
          }),
          submit({ now: T0 + 2 }),
        ]);
        expect(settled.map((s) => s.status)).toEqual(['rejected', 'fulfilled']);
        expect((await store.getJob(A, first.job.jobId))!.status).toBe('running');
        expect((await store.getJob(A, second.job.jobId))!.status).toBe('running');
        expect(await types(first.job.jobId)).toEqual(['job.queued', 'job.started']);
        expect(await store.recoverExpiredLeases(at, 10, () => at)).toHaveLength(2);
      });

      it('honours the limit and is safe when run concurrently', async () => {
        await Promise.all(Array.from({ length: 30 }, () => submit()));
        expect(await claim(A, T0, 30)).toHaveLength(30);
        const at = T0 + LEASE_MS + 1;
        expect(await store.recoverExpiredLeases(at, 5, () => at)).toHaveLength(5);
        const runs = await Promise.all(Array.from({ length: 6 }, () => store.recoverExpiredLeases(at, 10, () => at)));
        const ids = runs.flat().map((j) => j.jobId);
        expect(ids).toHaveLength(25);
        expect(new Set(ids).size).toBe(25);
      });
    });

    describe('readyOrgs and fairness', () => {
      it('a 10,000-job backlog of one org does not hide another org', async () => {
        for (let i = 0; i < 10_000; i += 1000) {
          await Promise.all(Array.from({ length: 1000 }, (_, k) => submit({ now: T0 + ((i + k) % 50) })));
        }
        const bJob = await submit({ orgId: B, now: T0 + 100 });
        await claim(A, T0 + 200, 3);
        const ready = await store.readyOrgs(T0 + 200, null);
        expect([...ready].sort((x, y) => x.orgId.localeCompare(y.orgId))).toEqual([
          { orgId: 'org-a', running: 3 },
          { orgId: 'org-b', running: 0 },
        ]);
        expect((await claim(B, T0 + 200, 5)).map((j) => j.jobId)).toEqual([bJob.jobId]);
        expect((await store.readyOrgs(T0 + 200, null)).map((r) => r.orgId)).toEqual(['org-a']);
      });

      it('skips orgs with only delayed or non-matching work', async () => {
        await submit({ orgId: A, analyzer: 'noop' });
        await submit({ orgId: B, analyzer: 'profile', runAt: T0 + 1000 });
        await submit({ orgId: asOrgId('org-c'), analyzer: 'profile' });
        expect((await store.readyOrgs(T0, null)).map((r) => r.orgId).sort()).toEqual(['org-a', 'org-c']);
        expect((await store.readyOrgs(T0, ['profile'])).map((r) => r.orgId)).toEqual(['org-c']);
        expect((await store.readyOrgs(T0 + 1000, ['profile'])).map((r) => r.orgId).sort()).toEqual(['org-b', 'org-c']);
        expect(await store.readyOrgs(T0, [])).toEqual([]);
      });
    });

    describe('onCommitted', () => {
      it('delivers exactly the committed events in position order, never rolled-back ones', async () => {
        const got: JobEvent[] = [];
        const off = store.onCommitted((evs) => got.push(...evs));
        const { job, lease } = await running();
        await Promise.allSettled([
          store.recordProgress(lease, 0.3, null, T0 + 1),
          store.finishJob({ ...lease, leaseToken: 'lse_bad' }, completed(), T0 + 1),
          store.submitJob({ jobId: job.jobId, orgId: A, analyzer: 'dup', input: null, priority: 0, maxAttempts: 1, idempotencyKey: null, requestHash: null, traceContext: null, now: T0 }),
          store.recordPartial(lease, 'c', 1, T0 + 2),
        ]);
        await store.finishJob(lease, completed(), T0 + 3);
        const stored = await events(job.jobId);
        await waitFor(() => got.length >= stored.length);
        expect(got).toEqual(stored);
        off();
        await submit();
        await new Promise((r) => setTimeout(r, 50));
        expect(got).toHaveLength(stored.length);
      });
    });

    describe('queueStats and stale cancels', () => {
      it('counts queued and running and measures the oldest ready job', async () => {
        expect(await store.queueStats(T0)).toEqual({ queued: 0, running: 0, oldestReadyAgeMs: 0 });
        await submit({ runAt: T0 - 4000 });
        await submit({ runAt: T0 - 1000 });
        await submit({ runAt: T0 + 9000 });
        await submit({ orgId: B, runAt: T0 - 500 });
        expect(await store.queueStats(T0)).toEqual({ queued: 4, running: 0, oldestReadyAgeMs: 4000 });
        await claim(A, T0, 1);
        expect(await store.queueStats(T0 + 1000)).toEqual({ queued: 3, running: 1, oldestReadyAgeMs: 2000 });
      });
    });

    describe('API keys and removed results', () => {
      it('creates, finds, lists and revokes keys', async () => {
        const k1 = { keyId: 'key_1', orgId: A, hash: 'h'.repeat(64), label: 'ci', createdAt: T0, revokedAt: null };
        const k2 = { keyId: 'key_2', orgId: B, hash: 'g'.repeat(64), label: null, createdAt: T0 + 1, revokedAt: null };
        await store.createApiKey(k1);
        await store.createApiKey(k2);
        await expectCode(store.createApiKey({ ...k1, keyId: 'key_3' }), 'STORE_CONFLICT');
        expect(await store.findApiKeyByHash(k1.hash)).toEqual(k1);
        expect(await store.findApiKeyByHash('nope')).toBeUndefined();
        expect(await store.listApiKeys(A)).toEqual([k1]);
        expect(await store.listApiKeys(null)).toEqual([k1, k2]);
        expect(await store.revokeApiKey('key_1', T0 + 5)).toBe(true);
        expect(await store.revokeApiKey('key_1', T0 + 6)).toBe(true);
        expect(await store.revokeApiKey('key_unknown', T0 + 6)).toBe(false);
        expect(await store.findApiKeyByHash(k1.hash)).toEqual({ ...k1, revokedAt: T0 + 5 });
      });

      it('getRemovedResult is undefined for unknown ids', async () => {
        expect(await store.getRemovedResult(A, newResultId(Date.now()))).toBeUndefined();
      });
    });
  });
}

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
