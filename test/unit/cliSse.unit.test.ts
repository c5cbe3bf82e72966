import { describe, expect, it } from 'vitest';
import { parseSse, type SseMessage } from '../../src/cli/client/sse.js';

/** A fetch-like body delivering `chunks` one by one. */
const body = (chunks: string[]): ReadableStream<Uint8Array> =>
  new ReadableStream({
    start(c) {
      for (const chunk of chunks) c.enqueue(new TextEncoder().encode(chunk));
      c.close();
    },
  });

describe('parseSse (CLI client)', () => {
  it('dispatches events only at their blank line and reports an id-only block as a resume point', async () => {
    const ids: string[] = [];
    const out: SseMessage[] = [];
    const chunks = ['retry: 1000\n\nid: 7\n\nid: 8\nev', 'ent: job.queued\ndata: {"a"', ':1}\n\n: ping\n\nid: 9\ndata: x\n'];
    for await (const m of parseSse(body(chunks), (id) => ids.push(id))) out.push(m);
    expect(ids).toEqual(['7']); // 8 belongs to an event; 9's block never ended
    expect(out).toEqual([{ id: '8', event: 'job.queued', data: '{"a":1}' }]);
  });
});
