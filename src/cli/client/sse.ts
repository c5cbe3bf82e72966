/** One dispatched Server-Sent Event (WHATWG HTML §9.2 "event stream interpretation"). */
export interface SseMessage {
  /** The last `id:` seen on the stream so far (it persists across events), or null. */
  readonly id: string | null;
  readonly event: string;
  readonly data: string;
}

/**
 * Parses an event stream from a fetch body. Handles CRLF/CR/LF line ends split across
 * chunks, multi-line `data:`, comments (heartbeats) and `retry:` (ignored: the caller owns
 * reconnection). An event is dispatched only at its blank line, so a stream cut mid-event
 * never yields a half event. `onId`: called with the id of a block that has an `id:` but no
 * data — it dispatches no event, but it is the stream's last event id (a resume point).
 */
export async function* parseSse(body: ReadableStream<Uint8Array>, onId?: (id: string) => void): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder('utf-8');
  let buffer = '';
  let lastId: string | null = null;
  let event = '';
  let data: string[] = [];
  let sawData = false;
  /** The `id:` of the block being read, if it has one. */
  let blockId: string | null = null;

  const reader = body.getReader();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      finished = done;
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // A trailing CR might be the first half of CRLF: keep it until more arrives.
      let start = 0;
      for (;;) {
        const m = /\r\n|\r|\n/g;
        m.lastIndex = start;
        const hit = m.exec(buffer);
        if (!hit) break;
        if (hit[0] === '\r' && hit.index === buffer.length - 1 && !done) break;
        const line = buffer.slice(start, hit.index);
        start = hit.index + hit[0].length;
        if (line === '') {
          if (sawData) yield { id: lastId, event: event || 'message', data: data.join('\n') };
          // An id in a block without data dispatches nothing; it is still a resume point.
          else if (blockId !== null) onId?.(blockId);
          event = '';
          data = [];
          sawData = false;
          blockId = null;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') {
          data.push(value);
          sawData = true;
        } else if (field === 'event') event = value;
        else if (field === 'id' && !value.includes('\0')) {
          lastId = value;
          blockId = value;
        }
      }
      buffer = buffer.slice(start);
      if (done) return;
    }
  } finally {
    // The consumer stopped early (terminal event seen): close the connection, don't drain it.
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
