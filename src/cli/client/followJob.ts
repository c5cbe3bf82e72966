import { setTimeout as sleep } from 'node:timers/promises';
import { coerceError } from '../../core/errors.js';
import { CliError } from '../io.js';
import { ProblemError, type ApiClient } from './apiClient.js';
import type { ProgressView, StreamEvent } from './progressView.js';
import { parseSse } from './sse.js';

const TERMINAL = new Set(['job.completed', 'job.failed', 'job.canceled']);

export interface FollowOptions {
  /** Give up after this many reconnects in a row that deliver no event. */
  readonly maxReconnects?: number;
  readonly signal?: AbortSignal;
}

interface StreamFollow extends FollowOptions {
  readonly path: string;
  /** What the stream is, for the give-up message ("the event stream of job_…"). */
  readonly what: string;
  /** Resume after this event id; 0: from where the server starts without one. */
  readonly afterId: number;
  /** One event (its JSON data); true stops following. */
  readonly onEvent: (type: string, data: StreamEvent, id: number | null) => boolean;
  readonly onReconnect: (reason: string, lastId: number) => void;
}

/**
 * Follows a Server-Sent Events stream of the API until `onEvent` says stop. When the connection
 * drops (server restart, proxy timeout) it reconnects with `Last-Event-ID` = the last id seen,
 * so no event is shown twice or skipped. 4xx answers are final.
 */
async function followStream(client: ApiClient, f: StreamFollow): Promise<void> {
  const maxReconnects = f.maxReconnects ?? 60;
  let lastId = f.afterId;
  let failures = 0;
  for (;;) {
    let reason: string;
    try {
      const res = await client.send('GET', f.path, {
        headers: { accept: 'text/event-stream', ...(lastId > 0 && { 'last-event-id': String(lastId) }) },
        ...(f.signal && { signal: f.signal }),
      });
      if (!res.body) throw new CliError('the stream response has no body');
      const noteId = (text: string): void => {
        const id = Number(text);
        if (Number.isSafeInteger(id) && id > lastId) lastId = id;
      };
      for await (const msg of parseSse(res.body, noteId)) {
        const id = msg.id === null ? NaN : Number(msg.id);
        if (Number.isSafeInteger(id)) {
          if (id <= lastId) continue; // a replay after reconnect: already shown
          lastId = id;
        }
        failures = 0;
        let data: StreamEvent;
        try {
          data = JSON.parse(msg.data) as StreamEvent;
        } catch {
          continue; // not a job event (e.g. a keep-alive with a text payload)
        }
        const type = typeof data.type === 'string' ? data.type : msg.event;
        if (f.onEvent(type, data, Number.isSafeInteger(id) ? id : null)) return;
      }
      reason = 'stream ended';
    } catch (e) {
      if (f.signal?.aborted) throw e;
      if (e instanceof ProblemError && e.status < 500) throw e;
      reason = e instanceof CliError ? e.message : coerceError(e).message;
    }
    failures++;
    if (failures > maxReconnects) throw new CliError(`lost ${f.what} (${reason}); gave up after ${maxReconnects} reconnects`);
    f.onReconnect(reason, lastId);
    await sleep(Math.min(250 * 2 ** Math.min(failures - 1, 4), 2_000), undefined, f.signal ? { signal: f.signal } : undefined);
  }
}

/**
 * Follows GET /analyze/jobs/{id}/stream until the job's terminal event (ids are `event_seq`).
 * Resolves with the terminal event type.
 */
export async function followJob(client: ApiClient, jobId: string, view: ProgressView, opts: FollowOptions = {}): Promise<string> {
  let terminal = '';
  await followStream(client, {
    ...opts,
    path: `analyze/jobs/${encodeURIComponent(jobId)}/stream`,
    what: `the event stream of ${jobId}`,
    afterId: 0,
    onEvent: (type, data, seq) => {
      view.event(type, { ...data, ...(data.event_seq === undefined && seq !== null && { event_seq: seq }) });
      if (!TERMINAL.has(type)) return false;
      terminal = type;
      return true;
    },
    onReconnect: (reason, lastSeq) => view.note(`${reason}; reconnecting${lastSeq > 0 ? ` after event ${lastSeq}` : ''}…`),
  });
  return terminal;
}

/**
 * Follows GET /analyze/events/stream (every job of the org; ids are positions) from
 * `afterPosition` (null: from now) until `onEvent` says stop or `signal` aborts.
 */
export async function followOrgEvents(
  client: ApiClient,
  afterPosition: number | null,
  onEvent: (data: StreamEvent) => boolean,
  onReconnect: (note: string) => void,
  opts: FollowOptions = {},
): Promise<void> {
  await followStream(client, {
    ...opts,
    path: afterPosition === null ? 'analyze/events/stream' : `analyze/events/stream?after_position=${afterPosition}`,
    what: "the org's event stream",
    afterId: 0,
    onEvent: (_type, data) => onEvent(data),
    onReconnect: (reason, lastId) => onReconnect(`${reason}; reconnecting${lastId > 0 ? ` after position ${lastId}` : ''}…`),
  });
}
