import { createHash } from 'node:crypto';
import { coerceError, UpshiftError } from '../core/errors.js';
import type { JobEvent } from '../core/events.js';
import { isTerminalEvent } from '../core/events.js';
import { newJobId, type JobId, type OrgId, type ResultId } from '../core/ids.js';
import type { Job, JobResult, Json } from '../core/job.js';
import { isTerminal, type JobStatus } from '../core/jobState.js';
import type { Clock } from '../ports/clock.js';
import type { EventFeed } from '../ports/eventFeed.js';
import type { JobStore } from '../ports/jobStore.js';
import { noopTracer, type Tracer } from '../ports/tracer.js';
import type { AnalyzerRegistry } from './analyzerRegistry.js';
import { JobEventFanout } from './jobEventFanout.js';

export interface SubmitRequest {
  readonly analyzer: string;
  readonly input: unknown;
  readonly priority?: number;
  readonly maxAttempts?: number;
  readonly idempotencyKey?: string | null;
  readonly traceContext?: string | null;
}

export interface JobPage {
  readonly jobs: Job[];
  /** Opaque; pass back as `cursor` for the next (older) page. Null at the end. */
  readonly nextCursor: string | null;
}

export interface ListRequest {
  readonly status?: JobStatus;
  readonly analyzer?: string;
  readonly createdAfter?: number;
  readonly createdBefore?: number;
  readonly cursor?: string;
  readonly limit?: number;
}

export type PermalinkView = 'latest' | 'exact';

export interface Permalink {
  readonly resultId: ResultId;
  readonly requestedResultId: ResultId;
  readonly projectionMode: PermalinkView;
  readonly result: JobResult;
  readonly job: Job;
}

export interface JobServiceOptions {
  readonly store: JobStore;
  readonly feed: EventFeed;
  readonly registry: AnalyzerRegistry;
  readonly clock: Clock;
  readonly defaultMaxAttempts: number;
  /** Spans `upshift.submit`; default no-op. */
  readonly tracer?: Tracer;
}

const MAX_PAGE = 200;
/** Live events a follower holds before it drops them and re-reads the store (slow consumer). */
const MAX_LIVE_BACKLOG = 1000;

/** Positions one store read of an org's stream covers (and the most events it returns). */
export const ORG_SCAN_WINDOW = 2000;

/**
 * The live events a follower (follow, followOrg) holds between its pulls. Past MAX_LIVE_BACKLOG
 * (a slow consumer) it drops them and asks for a re-read of the store instead, which has them
 * all. `next()` resolves when there is something to do: an event, a re-read, or the abort.
 */
class LiveBuffer {
  private events: JobEvent[] = [];
  private wake: (() => void) | null = null;
  private readonly onAbort = (): void => this.wake?.();

  constructor(
    private reread: boolean,
    private readonly signal: AbortSignal,
  ) {
    signal.addEventListener('abort', this.onAbort);
  }

  push(e: JobEvent): void {
    if (this.events.length >= MAX_LIVE_BACKLOG) {
      this.events = [];
      this.reread = true;
    } else {
      this.events.push(e);
    }
    this.wake?.();
  }

  shift(): JobEvent | undefined {
    return this.events.shift();
  }

  requestReread(): void {
    this.reread = true;
  }

  /** True (once) when the store must be read before the next live event is used. */
  takeReread(): boolean {
    const r = this.reread;
    this.reread = false;
    return r;
  }

  async next(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      if (this.reread || this.events.length > 0 || this.signal.aborted) resolve();
    });
    this.wake = null;
  }

  close(): void {
    this.signal.removeEventListener('abort', this.onAbort);
  }
}

/** Tenant-facing use cases. Every method is bound to one org; other orgs' ids are "not found". */
export class JobService {
  private readonly fanout: JobEventFanout;

  constructor(private readonly opts: JobServiceOptions) {
    this.fanout = new JobEventFanout(opts.feed);
  }

  get store(): JobStore {
    return this.opts.store;
  }

  async submit(orgId: OrgId, req: SubmitRequest): Promise<{ job: Job; created: boolean }> {
    const { registry, store, clock } = this.opts;
    const input = registry.validateInput(req.analyzer, req.input);
    checkStorable(input);
    const analyzer = registry.get(req.analyzer);
    const maxAttempts = req.maxAttempts ?? analyzer.maxAttempts ?? this.opts.defaultMaxAttempts;
    const priority = req.priority ?? 0;
    const key = req.idempotencyKey ?? null;
    const now = clock.now();
    const jobId = newJobId(now);
    // The submit span's own context is what the job stores: the worker's spans join it.
    const span = (this.opts.tracer ?? noopTracer).startSpan('upshift.submit', {
      kind: 'producer',
      parent: req.traceContext ?? null,
      attributes: { 'upshift.job_id': jobId, 'upshift.org_id': orgId, 'upshift.analyzer': req.analyzer },
    });
    try {
      const r = await store.submitJob({
        jobId,
        orgId,
        analyzer: req.analyzer,
        input,
        priority,
        maxAttempts,
        idempotencyKey: key,
        requestHash: key === null ? null : requestHash(req.analyzer, input, priority, maxAttempts),
        traceContext: span.carrier(),
        now,
      });
      // An idempotent replay returns the first job (with its own trace context).
      if (!r.created) span.setAttributes({ 'upshift.job_id': r.job.jobId, 'upshift.idempotent_replay': true });
      span.end('ok');
      return r;
    } catch (e) {
      span.end('error', coerceError(e).message);
      throw e;
    }
  }

  async get(orgId: OrgId, jobId: JobId): Promise<Job> {
    const job = await this.opts.store.getJob(orgId, jobId);
    if (!job) throw new UpshiftError('JOB_NOT_FOUND', `job ${jobId} not found`);
    return job;
  }

  async list(orgId: OrgId, req: ListRequest): Promise<JobPage> {
    const limit = Math.min(Math.max(req.limit ?? 50, 1), MAX_PAGE);
    const jobs = await this.opts.store.listJobs(orgId, {
      ...(req.status !== undefined && { status: req.status }),
      ...(req.analyzer !== undefined && { analyzer: req.analyzer }),
      ...(req.createdAfter !== undefined && { createdAfter: req.createdAfter }),
      ...(req.createdBefore !== undefined && { createdBefore: req.createdBefore }),
      ...(req.cursor !== undefined && { beforeJobId: decodeCursor(req.cursor) }),
      limit: limit + 1,
    });
    const page = jobs.slice(0, limit);
    const last = page[page.length - 1];
    return { jobs: page, nextCursor: jobs.length > limit && last ? encodeCursor(last.jobId) : null };
  }

  async events(orgId: OrgId, jobId: JobId, afterSeq: number, limit: number): Promise<JobEvent[]> {
    await this.get(orgId, jobId);
    return this.opts.store.listEvents(orgId, jobId, afterSeq, limit);
  }

  async results(orgId: OrgId, jobId: JobId): Promise<JobResult[]> {
    await this.get(orgId, jobId);
    return this.opts.store.listResults(orgId, jobId);
  }

  async cancel(orgId: OrgId, jobId: JobId): Promise<{ job: Job; changed: boolean }> {
    const r = await this.opts.store.requestCancel(orgId, jobId, this.opts.clock.now());
    if (!r) throw new UpshiftError('JOB_NOT_FOUND', `job ${jobId} not found`);
    return r;
  }

  /**
   * Resolves a permalink. `exact` returns that very result; `latest` the newest result of its
   * job (final if any, else newest partial). Removed by retention → RESULT_GONE (410) for its
   * own tenant; another tenant's id → RESULT_NOT_FOUND like an unknown id.
   */
  async permalink(orgId: OrgId, resultId: ResultId, view: PermalinkView): Promise<Permalink> {
    const { store } = this.opts;
    const requested = await store.getResult(orgId, resultId);
    if (!requested) {
      const removed = await store.getRemovedResult(orgId, resultId);
      if (removed) throw new UpshiftError('RESULT_GONE', `result ${resultId} was removed by retention`, { details: { job_id: removed.jobId } });
      throw new UpshiftError('RESULT_NOT_FOUND', `result ${resultId} not found`);
    }
    const result = view === 'latest' ? ((await store.getLatestResult(orgId, requested.jobId)) ?? requested) : requested;
    const job = await this.get(orgId, requested.jobId);
    return { resultId: result.resultId, requestedResultId: resultId, projectionMode: view, result, job };
  }

  /**
   * Follows a job's events from `afterSeq`: replays stored events, then live ones, with no gap
   * and no duplicate (ordered strictly by eventSeq). Ends after the terminal event, or when
   * `signal` aborts. Subscribes before reading so nothing committed in between is lost.
   * Live events come straight from the feed while they continue the sequence (no store read
   * per event); a feed event that skips a seq, or a backlog a slow consumer let grow past
   * MAX_LIVE_BACKLOG, falls back to reading the store from the last yielded seq.
   */
  async *follow(orgId: OrgId, jobId: JobId, afterSeq: number, signal: AbortSignal): AsyncGenerator<JobEvent> {
    const initial = await this.get(orgId, jobId);
    // Read the store from `last` before taking live events: at the start, after a gap, after an overflow.
    const live = new LiveBuffer(true, signal);
    const unfollow = this.fanout.follow(jobId, (e) => {
      if (e.orgId === orgId) live.push(e);
    });
    try {
      let last = afterSeq;
      let firstPass = true;
      while (!signal.aborted) {
        if (live.takeReread()) {
          for (;;) {
            const batch = await this.opts.store.listEvents(orgId, jobId, last, 500);
            for (const e of batch) {
              last = e.eventSeq;
              yield e;
              if (isTerminalEvent(e.type)) return;
            }
            if (batch.length < 500) break;
          }
          // Terminal before we started and nothing after `afterSeq` is terminal: the caller
          // already has the end of the log.
          if (firstPass && isTerminal(initial.status)) return;
          firstPass = false;
          continue;
        }
        const e = live.shift();
        if (e) {
          if (e.eventSeq <= last) continue; // already read from the store
          if (e.eventSeq !== last + 1) {
            live.requestReread(); // the feed skipped something: the store has it
            continue;
          }
          last = e.eventSeq;
          yield e;
          if (isTerminalEvent(e.type)) return;
          continue;
        }
        await live.next();
      }
    } finally {
      unfollow();
      live.close();
    }
  }

  /**
   * The org's event stream (GET /analyze/events/stream): every event of the org's jobs with a
   * position after `afterPosition`, once each, in position (= commit) order — the stored ones
   * first, read window by window up to the head (each read bounded by ORG_SCAN_WINDOW positions,
   * whatever other tenants wrote), then live ones from the feed; from now on = after
   * headPosition(). A follower that falls MAX_LIVE_BACKLOG events behind drops
   * its buffer and re-reads the store from its last position, as `follow` does. Never ends on
   * its own; `signal` stops it.
   */
  async *followOrg(orgId: OrgId, afterPosition: number, signal: AbortSignal): AsyncGenerator<JobEvent> {
    const { store } = this.opts;
    // Subscribed before the store is read: what commits meanwhile is buffered, not lost.
    const live = new LiveBuffer(true, signal);
    const unfollow = this.fanout.followOrg(orgId, (e) => live.push(e));
    try {
      let last = afterPosition;
      while (!signal.aborted) {
        if (live.takeReread()) {
          const head = await store.headPosition();
          while (last < head && !signal.aborted) {
            const upTo = Math.min(head, last + ORG_SCAN_WINDOW);
            const batch = await store.listOrgEvents(orgId, last, upTo, ORG_SCAN_WINDOW);
            for (const e of batch) {
              last = e.position;
              yield e;
            }
            // A full batch may have stopped inside the window: go on after its last event.
            if (batch.length < ORG_SCAN_WINDOW) last = upTo;
          }
          continue;
        }
        const e = live.shift();
        if (e) {
          if (e.position <= last) continue; // already read from the store
          last = e.position;
          yield e;
          continue;
        }
        await live.next();
      }
    } finally {
      unfollow();
      live.close();
    }
  }

  /** The newest committed event position of the store (where a stream "from now" starts). */
  headPosition(): Promise<number> {
    return this.opts.store.headPosition();
  }

  /** Waits until the job is terminal (or `signal` aborts) and returns it. */
  async waitForTerminal(orgId: OrgId, jobId: JobId, signal: AbortSignal): Promise<Job> {
    const job = await this.get(orgId, jobId);
    if (isTerminal(job.status)) return job;
    const seen = await this.opts.store.listEvents(orgId, jobId, 0, 1_000_000);
    const lastSeq = seen[seen.length - 1]?.eventSeq ?? 0;
    for await (const e of this.follow(orgId, jobId, lastSeq, signal)) {
      if (isTerminalEvent(e.type)) break;
    }
    return this.get(orgId, jobId);
  }
}

/** Canonical hash of what makes two submits "the same request" for idempotency. */
export function requestHash(analyzer: string, input: Json, priority: number, maxAttempts: number): string {
  return createHash('sha256').update(canonicalJson({ analyzer, input, priority, max_attempts: maxAttempts })).digest('hex');
}

function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']';
  const o = v as Record<string, unknown>;
  return '{' + Object.keys(o).sort().map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k])).join(',') + '}';
}

export function encodeCursor(jobId: JobId): string {
  return Buffer.from(JSON.stringify({ b: jobId }), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): JobId {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (parsed && typeof parsed === 'object' && 'b' in parsed && typeof parsed.b === 'string' && /^job_[0-9a-z]{26}$/.test(parsed.b)) {
      return parsed.b as JobId;
    }
  } catch {
    // fall through
  }
  throw new UpshiftError('CURSOR_INVALID', 'cursor is not valid');
}

/** Deepest input nesting accepted: deeper JSON overflows the call stack of JSON.stringify and PostgreSQL's jsonb parser. */
export const MAX_INPUT_DEPTH = 512;

/**
 * Refuses input no store can keep, the same way on every store: nesting deeper than
 * MAX_INPUT_DEPTH, and U+0000 in any string or key (PostgreSQL text and jsonb cannot hold it).
 * Iterative, so arbitrarily deep input is refused rather than overflowing the stack here.
 */
function checkStorable(input: Json): void {
  const refuse = (pointer: string, message: string): never => {
    const field = `input${pointer.replaceAll('/', '.')}`;
    throw new UpshiftError('VALIDATION_FAILED', `input ${message} (at ${pointer || '/'})`, { details: { errors: [{ in: 'body', field, message }] } });
  };
  const stack: Array<[Json, string, number]> = [[input, '', 0]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [v, at, depth] = next;
    if (typeof v === 'string') {
      if (v.includes('\u0000')) refuse(at, 'must not contain the NUL character (U+0000)');
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (depth >= MAX_INPUT_DEPTH) refuse(at, `must not be nested deeper than ${MAX_INPUT_DEPTH} levels`);
    const entries: Array<[string, Json]> = Array.isArray(v) ? v.map((x, i) => [String(i), x as Json]) : Object.entries(v);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [k, x] = entries[i] as [string, Json];
      const key = `${at}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      if (k.includes('\u0000')) refuse(key, 'must not contain the NUL character (U+0000)');
      stack.push([x, key, depth + 1]);
    }
  }
}
