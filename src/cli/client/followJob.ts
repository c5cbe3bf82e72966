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

/**
 * Follows GET /analyze/jobs/{id}/stream until the job's terminal event. When the connection
 * drops (server restart, proxy timeout) it reconnects with `Last-Event-ID` = the last
 * `event_seq` seen, so no event is shown twice or skipped. 4xx answers are final.
 * Resolves with the terminal event type.
 */
export async function followJob(client: ApiClient, jobId: string, view: ProgressView, opts: FollowOptions = {}): Promise<string> {
  const maxReconnects = opts.maxReconnects ?? 60;
  const path = `analyze/jobs/${encodeURIComponent(jobId)}/stream`;
  let lastSeq = 0;
  let failures = 0;
  for (;;) {
    let reason: string;
    try {
      const res = await client.send('GET', path, {
        headers: { accept: 'text/event-stream', ...(lastSeq > 0 && { 'last-event-id': String(lastSeq) }) },
        ...(opts.signal && { signal: opts.signal }),
      });
      if (!res.body) throw new CliError('the stream response has no body');
      for await (const msg of parseSse(res.body)) {
        const seq = msg.id === null ? NaN : Number(msg.id);
        if (Number.isSafeInteger(seq)) {
          if (seq <= lastSeq) continue; // a replay after reconnect: already shown
          lastSeq = seq;
        }
        failures = 0;
        let data: StreamEvent;
        try {
          data = JSON.parse(msg.data) as StreamEvent;
        } catch {
          continue; // not a job event (e.g. a keep-alive with a text payload)
        }
        const type = typeof data.type === 'string' ? data.type : msg.event;
        view.event(type, { ...data, ...(data.event_seq === undefined && Number.isSafeInteger(seq) && { event_seq: seq }) });
        if (TERMINAL.has(type)) return type;
      }
      reason = 'stream ended';
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      if (e instanceof ProblemError && e.status < 500) throw e;
      reason = e instanceof CliError ? e.message : coerceError(e).message;
    }
    failures++;
    if (failures > maxReconnects) throw new CliError(`lost the event stream of ${jobId} (${reason}); gave up after ${maxReconnects} reconnects`);
    view.note(`${reason}; reconnecting${lastSeq > 0 ? ` after event ${lastSeq}` : ''}…`);
    await sleep(Math.min(250 * 2 ** Math.min(failures - 1, 4), 2_000), undefined, opts.signal ? { signal: opts.signal } : undefined);
  }
}
