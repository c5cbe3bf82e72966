import type { ServerResponse } from 'node:http';
import type { JobService } from '../app/jobService.js';
import { coerceError } from '../core/errors.js';
import type { JobEvent } from '../core/events.js';
import type { JobId, OrgId } from '../core/ids.js';
import type { Logger } from '../ports/logger.js';
import { toEventJson } from './presenters.js';

/**
 * Server-Sent Events, written on the raw (hijacked) response: one job's (resumption by
 * `event_seq`: service.follow replays stored events after the resume point, then live ones) or
 * an org's (by `position`: service.followOrg), so a client that reconnects with Last-Event-ID
 * sees every event exactly once.
 */

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
  // An event stream is never reused for another request; closing it keeps shutdown prompt.
  connection: 'close',
} as const;

/** Long-lived requests (streams, sync waits) the server must end before it can close. */
export class OpenRequests {
  private readonly open = new Set<{ readonly abort: AbortController; readonly done: Promise<void> }>();
  private closing = false;

  get isClosing(): boolean {
    return this.closing;
  }

  get size(): number {
    return this.open.size;
  }

  /** Runs `fn` with a signal that aborts on server shutdown; tracked until it settles. */
  async track<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const abort = new AbortController();
    if (this.closing) abort.abort('shutdown');
    let release!: () => void;
    const entry = { abort, done: new Promise<void>((r) => (release = r)) };
    this.open.add(entry);
    try {
      return await fn(abort.signal);
    } finally {
      this.open.delete(entry);
      release();
    }
  }

  /** Aborts everything open and waits (bounded) for it to wind down. */
  async closeAll(timeoutMs: number): Promise<void> {
    this.closing = true;
    const pending = [...this.open];
    for (const e of pending) e.abort.abort('shutdown');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(pending.map((e) => e.done)),
      new Promise<void>((r) => {
        timer = setTimeout(r, timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }
}

export interface StreamOptions {
  readonly service: JobService;
  readonly orgId: OrgId;
  readonly jobId: JobId;
  readonly afterSeq: number;
  readonly heartbeatMs: number;
  readonly logger: Logger;
  /** Aborts on server shutdown. */
  readonly shutdown: AbortSignal;
}

/** One job's stream (`id:` = event_seq) until the terminal event, client disconnect or shutdown. */
export function streamJobEvents(res: ServerResponse, opts: StreamOptions): Promise<void> {
  return writeEventStream(res, {
    events: (signal) => opts.service.follow(opts.orgId, opts.jobId, opts.afterSeq, signal),
    idOf: (e) => e.eventSeq,
    heartbeatMs: opts.heartbeatMs,
    logger: opts.logger,
    shutdown: opts.shutdown,
    logContext: { job_id: opts.jobId, org_id: opts.orgId },
  });
}

export interface OrgStreamOptions {
  readonly service: JobService;
  readonly orgId: OrgId;
  /** The position the stream starts after (the client's resume point, or the head for "from now"). */
  readonly afterPosition: number;
  /** Send `afterPosition` as a lone `id:` first (a stream "from now": the client has no id yet). */
  readonly announce: boolean;
  readonly heartbeatMs: number;
  readonly logger: Logger;
  readonly shutdown: AbortSignal;
}

/**
 * The org's stream of every job's events (`id:` = position) until client disconnect or shutdown.
 * A stream that starts "from now" first sends an `id:` line alone with the position it starts
 * after: SSE clients take it as their last event id without an event, so a reconnect before the
 * first event resumes from there instead of from a later "now" (no gap).
 */
export function streamOrgEvents(res: ServerResponse, opts: OrgStreamOptions): Promise<void> {
  return writeEventStream(res, {
    events: (signal) => opts.service.followOrg(opts.orgId, opts.afterPosition, signal),
    ...(opts.announce && { initialId: opts.afterPosition }),
    idOf: (e) => e.position,
    heartbeatMs: opts.heartbeatMs,
    logger: opts.logger,
    shutdown: opts.shutdown,
    logContext: { org_id: opts.orgId },
  });
}

interface EventStream {
  readonly events: (signal: AbortSignal) => AsyncIterable<JobEvent>;
  /** The frame's `id:` — what a client sends back as Last-Event-ID to resume after it. */
  readonly idOf: (e: JobEvent) => number;
  readonly heartbeatMs: number;
  readonly logger: Logger;
  readonly shutdown: AbortSignal;
  readonly logContext: Record<string, string>;
  /** Sent as a lone `id:` line before the first event (the resume point of a stream from now). */
  readonly initialId?: number;
}

/** Writes the stream until `events` ends, the client disconnects or the server shuts down; then ends it. */
async function writeEventStream(res: ServerResponse, opts: EventStream): Promise<void> {
  const ac = new AbortController();
  const stop = () => ac.abort();
  res.on('close', stop);
  opts.shutdown.addEventListener('abort', stop);
  if (opts.shutdown.aborted) stop();
  const heartbeat = setInterval(() => {
    if (!res.writableEnded) res.write(': ping\n\n');
  }, opts.heartbeatMs);
  try {
    res.writeHead(200, SSE_HEADERS);
    // Tell EventSource to reconnect quickly; flushes headers so clients see the stream open.
    res.write(opts.initialId === undefined ? 'retry: 1000\n\n' : `retry: 1000\n\nid: ${opts.initialId}\n\n`);
    for await (const e of opts.events(ac.signal)) {
      const ok = res.write(`id: ${opts.idOf(e)}\nevent: ${e.type}\ndata: ${JSON.stringify(toEventJson(e))}\n\n`);
      if (!ok) await drained(res, ac.signal);
      if (ac.signal.aborted) break;
    }
  } catch (e) {
    opts.logger.error({ err: coerceError(e), ...opts.logContext }, 'event stream failed');
  } finally {
    clearInterval(heartbeat);
    res.off('close', stop);
    opts.shutdown.removeEventListener('abort', stop);
    if (!res.writableEnded) res.end();
  }
}

function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.once('drain', done);
    signal.addEventListener('abort', done);
  });
}
