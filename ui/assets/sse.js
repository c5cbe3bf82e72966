// Server-Sent Events over fetch(). EventSource cannot send X-Org-Id or Authorization, so the
// UI reads the stream itself: a parser for the text/event-stream format (WHATWG HTML §9.2)
// and a follower that reconnects with Last-Event-ID, so no event is lost or repeated.
import { authHeaders } from './auth.js';
import { errorFrom } from './api.js';

/** Incremental text/event-stream parser: push() text chunks, get complete events back. */
export class SseParser {
  constructor() {
    this.buf = '';
    this.data = [];
    this.event = '';
    this.id = null;
    /** An `id:` of a block without data (dispatches no event; a resume point), or null. */
    this.announcedId = null;
    this.blockHasId = false;
    /** Reconnection delay sent by the server (`retry:`), or null. */
    this.retry = null;
  }

  /**
   * @param {string} chunk
   * @returns {Array<{id: string | null, event: string, data: string}>}
   */
  push(chunk) {
    this.buf += chunk;
    const out = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (m === null || (m[0] === '\r' && m.index === this.buf.length - 1)) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      if (line === '') {
        if (this.data.length > 0) out.push({ id: this.id, event: this.event || 'message', data: this.data.join('\n') });
        else if (this.blockHasId) this.announcedId = this.id;
        this.data = [];
        this.event = '';
        this.blockHasId = false;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.data.push(value);
      else if (field === 'event') this.event = value;
      else if (field === 'id' && !value.includes('\0')) {
        this.id = value;
        this.blockHasId = true;
      } else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
    }
    return out;
  }
}

/** Event types that end a job. */
export const TERMINAL = new Set(['job.completed', 'job.failed', 'job.canceled']);

/**
 * Follows an event stream: a job's (`/analyze/jobs/…/stream`, until its terminal event) or the
 * org's (`/analyze/events/stream`, `untilTerminal: false`: until stopped). Reconnects (after the
 * server's `retry:`, growing on repeated failures) from the last event id seen; a 4xx answer
 * (e.g. 404, 429) is final and reported through onError. Returns a function that stops following.
 * @param {string} path e.g. `/analyze/jobs/job_…/stream`
 * @param {{afterSeq?: number, untilTerminal?: boolean, onEvent: (e: any) => void, onState?: (state: 'connecting' | 'live' | 'reconnecting' | 'ended', detail?: string) => void, onError?: (e: import('./api.js').ApiError) => void}} opts
 */
export function followStream(path, opts) {
  const ac = new AbortController();
  let lastId = opts.afterSeq ?? 0;
  let delay = 1000;
  let failures = 0;
  const state = (s, detail) => opts.onState?.(s, detail);

  const run = async () => {
    while (!ac.signal.aborted) {
      state(failures === 0 ? 'connecting' : 'reconnecting');
      let terminal = false;
      try {
        const headers = { accept: 'text/event-stream', ...authHeaders() };
        if (lastId > 0) headers['last-event-id'] = String(lastId);
        const res = await fetch(path, { headers, signal: ac.signal, cache: 'no-store' });
        if (!res.ok) {
          const err = await errorFrom(res);
          if (res.status >= 400 && res.status < 500) {
            state('ended', err.problem.title);
            opts.onError?.(err);
            return;
          }
          throw err;
        }
        state('live');
        failures = 0;
        const parser = new SseParser();
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const frame of parser.push(value)) {
            const seq = Number(frame.id);
            // Never apply an event twice, even if a server replayed one.
            if (Number.isSafeInteger(seq) && seq <= lastId) continue;
            if (Number.isSafeInteger(seq)) lastId = seq;
            let event;
            try {
              event = JSON.parse(frame.data);
            } catch {
              continue;
            }
            opts.onEvent(event);
            if (opts.untilTerminal !== false && TERMINAL.has(frame.event)) terminal = true;
          }
          // An `id:` without an event (the org stream announces where it starts) is a resume point too.
          const announced = Number(parser.announcedId);
          if (parser.announcedId !== null && Number.isSafeInteger(announced) && announced > lastId) lastId = announced;
          if (parser.retry !== null) delay = parser.retry;
        }
      } catch (e) {
        if (ac.signal.aborted) return;
        failures += 1;
        state('reconnecting', e instanceof Error ? e.message : String(e));
      }
      if (terminal) {
        state('ended');
        return;
      }
      // The stream ended without a terminal event (server restart, proxy timeout): resume.
      await sleep(Math.min(30_000, delay * 2 ** Math.min(failures, 5)), ac.signal);
    }
  };
  void run();
  return () => ac.abort();
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });
}
