import { loadSqliteDriver } from '../../src/adapters/store/sqlite/sqliteDriver.js';

/** GET requests (`<org> <path>`) and what they answered: status and parsed JSON body. */
export interface Recording {
  readonly paths: string[];
  readonly responses: { status: number; body: unknown }[];
}

/**
 * Ids to ask the HTTP API about, sampled from an embedded store file: per org, jobs of every
 * status (and the SSE replay of finished ones), results, removed results (410), notifications,
 * webhook endpoints and deliveries.
 */
export function sampleRequests(file: string, orgs: readonly string[]): string[] {
  const Db = loadSqliteDriver();
  const db = new Db(file, { readonly: true });
  try {
    const ids = (sql: string, ...params: unknown[]): string[] => db.prepare(sql).pluck().all(...params) as string[];
    const out: string[] = [];
    for (const org of orgs) {
      const get = (path: string): number => out.push(`${org} ${path}`);
      for (const status of ['completed', 'failed', 'canceled', 'queued']) {
        // Deterministic but spread over the history: every n-th job of the status.
        const all = ids(`SELECT job_id FROM jobs WHERE org_id = ? AND status = ? ORDER BY job_id`, org, status);
        const step = Math.max(1, Math.floor(all.length / 6));
        for (let i = 0; i < all.length && i < step * 6; i += step) {
          const job = all[i] as string;
          for (const sub of ['', '/events?limit=1000', '/events?after_seq=2&limit=2', '/results', '/notifications?channel=in_app']) get(`/analyze/jobs/${job}${sub}`);
          // The SSE replay of a finished job ends with its terminal event.
          if (status !== 'queued' && i === 0) get(`/analyze/jobs/${job}/stream`);
        }
        get(`/analyze/jobs?status=${status}&limit=20`);
      }
      for (const r of ids(`SELECT result_id FROM job_results WHERE org_id = ? ORDER BY result_id LIMIT 8`, org)) {
        get(`/analyze/results/${r}`);
        get(`/analyze/results/${r}?view=latest`);
      }
      for (const r of ids(`SELECT result_id FROM removed_results WHERE org_id = ? ORDER BY result_id LIMIT 3`, org)) get(`/analyze/results/${r}`);
      get('/analyze/jobs?limit=50');
      get('/notifications?limit=50');
      get('/notifications?unread=true&limit=50');
      for (const n of ids(`SELECT job_id FROM notifications WHERE org_id = ? AND read_at IS NOT NULL ORDER BY notification_id LIMIT 3`, org)) get(`/analyze/jobs/${n}/notifications`);
      get('/webhooks');
      for (const w of ids(`SELECT endpoint_id FROM webhook_endpoints WHERE org_id = ? ORDER BY endpoint_id`, org)) {
        get(`/webhooks/${w}`);
        get(`/webhooks/${w}/deliveries?limit=20`);
        get(`/webhooks/${w}/deliveries?status=failed&limit=5`);
        for (const d of ids(`SELECT entry_id FROM notification_outbox WHERE org_id = ? AND endpoint_id = ? ORDER BY entry_id LIMIT 2`, org, w)) get(`/webhooks/${w}/deliveries/${d}`);
      }
    }
    return out;
  } finally {
    db.close();
  }
}

/**
 * Replays `requests` against a server. Listings are followed one page further through their
 * `next_cursor`, so cursors minted by one store are also asked of the other.
 */
export async function recordContract(baseUrl: string, requests: readonly string[], followCursors: boolean): Promise<Recording> {
  const paths: string[] = [];
  const responses: Recording['responses'] = [];
  const queue = [...requests];
  for (let i = 0; i < queue.length; i++) {
    const line = queue[i] as string;
    const space = line.indexOf(' ');
    const org = line.slice(0, space);
    const path = line.slice(space + 1);
    const res = await fetch(baseUrl + path, { headers: { 'x-org-id': org } });
    const text = await res.text();
    const sse = (res.headers.get('content-type') ?? '').startsWith('text/event-stream');
    // Bodies compare as JSON values: rows a PostgreSQL store wrote before migration 0011 hold
    // jsonb, which keeps object keys in its own order (by length, then bytes). For the same
    // reason SSE frames are compared as (id, event, parsed data), not as bytes.
    const body: unknown = text === '' ? null : sse ? sseFrames(text) : JSON.parse(text);
    paths.push(line);
    responses.push({ status: res.status, body });
    const next = (body as { next_cursor?: unknown } | null)?.next_cursor;
    if (followCursors && typeof next === 'string' && !path.includes('cursor=')) queue.splice(i + 1, 0, `${org} ${path}${path.includes('?') ? '&' : '?'}cursor=${encodeURIComponent(next)}`);
  }
  return { paths, responses };
}

/** An SSE body as its frames: comments and `retry:` kept as lines, `data:` parsed as JSON. */
function sseFrames(text: string): unknown[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) =>
      block.split('\n').map((line) => (line.startsWith('data: ') ? { data: JSON.parse(line.slice('data: '.length)) as unknown } : line)),
    );
}
