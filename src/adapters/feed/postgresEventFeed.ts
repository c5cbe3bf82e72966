import type pg from 'pg';
import { coerceError } from '../../core/errors.js';
import type { JobEvent } from '../../core/events.js';
import type { EventFeed } from '../../ports/eventFeed.js';
import { createClient, ident, resolveNames, type PgNames } from '../store/postgres/postgresConnection.js';
import { toEvent, type EventRow } from '../store/postgres/postgresRows.js';
import { buildSql, type PgSql } from '../store/postgres/postgresSql.js';

export interface PostgresEventFeedOptions {
  readonly url: string;
  readonly schema?: string;
  readonly internalRole?: string;
  /** Events read per query while catching up. Default 1000. */
  readonly batchSize?: number;
  /** Poll fallback: read anyway this often, in case a notification was lost. Default 1000 ms. */
  readonly pollMs?: number;
  /** First reconnect delay after the connection drops (doubles up to 5 s). Default 100 ms. */
  readonly reconnectMs?: number;
  /** Connection problems and listener errors; the feed itself keeps going. */
  readonly onError?: (e: unknown) => void;
  /** Deliver from this position on (exclusive). Default: the newest position at start. */
  readonly afterPosition?: number;
  /**
   * This process's store (same schema): its commits are delivered from memory when they
   * continue the feed without a gap, instead of being read back from the database.
   */
  readonly local?: { onCommitted(listener: (events: readonly JobEvent[]) => void): () => void };
}

export interface PostgresEventFeed extends EventFeed {
  /** Resolves once the feed is listening (and knows its start position). */
  ready(): Promise<void>;
  /**
   * Calls `listener` with the org when any process commits a webhook endpoint change in this
   * schema (the store NOTIFYs PgNames.endpointsChannel), and with null after the feed
   * reconnected (changes may have been missed meanwhile). Returns the unsubscribe function.
   */
  onEndpointsChanged(listener: (orgId: string | null) => void): () => void;
  /** Newest position delivered so far. */
  readonly position: number;
}

/**
 * Cross-process live feed. Every store commit that wrote events also NOTIFYs the schema's
 * channel with its newest position (a tiny payload; the events themselves are never sent
 * through NOTIFY). Each feed LISTENs on its own connection; a notification, or the poll
 * timer, makes it read the events after the last position it delivered, in position order,
 * in batches, and hand them to its subscribers. Because positions are commit-ordered (see
 * docs/postgres.md), "everything after P" never misses an event that commits later with a
 * smaller position: delivery has no gaps and no duplicates. After a dropped connection it
 * reconnects with backoff and catches up from the last delivered position.
 *
 * The connection runs `SET ROLE <internal role>`: the feed reads every tenant's events.
 */
export function createPostgresEventFeed(opts: PostgresEventFeedOptions): PostgresEventFeed {
  const names: PgNames = resolveNames({ schema: opts.schema, internalRole: opts.internalRole });
  const sql: PgSql = buildSql(names.schema);
  const batchSize = Math.max(1, opts.batchSize ?? 1000);
  const onError = opts.onError ?? (() => undefined);
  const listeners = new Set<(events: readonly JobEvent[]) => void>();
  const endpointListeners = new Set<(orgId: string | null) => void>();
  let listenedBefore = false;
  let position = opts.afterPosition ?? -1;
  let client: pg.Client | null = null;
  let closed = false;
  let pumping: Promise<void> | null = null;
  let again = false;
  let reconnectDelay = opts.reconnectMs ?? 100;
  let reconnectTimer: NodeJS.Timeout | null = null;
  let readyResolve: () => void = () => undefined;
  const readyPromise = new Promise<void>((r) => (readyResolve = r));

  const poll = setInterval(() => void pump(), Math.max(10, opts.pollMs ?? 1000));
  poll.unref();
  // This process's committed events, by position, not delivered yet. Positions are commit
  // order (docs/postgres.md): once the commit holding P is visible, nothing below P can still
  // appear. So local events that continue the feed without a gap (position + 1, + 2, …) are
  // exactly what a read would return, and are delivered without one; a gap (another process's
  // commit, or a rolled-back transaction) is filled by a normal read, which also returns them.
  let local: JobEvent[] = [];
  let localDuringRead = false;
  const offLocal = opts.local?.onCommitted((events) => {
    if (closed || events.length === 0) return;
    local.push(...events);
    local.sort((a, b) => a.position - b.position);
    // During a read the pump delivers them when it is done (its snapshot may predate them).
    if (pumping) localDuringRead = true;
    else if (!deliverLocal()) void pump();
  });

  async function connect(): Promise<void> {
    if (closed) return;
    const c = createClient(opts.url, `upshift-feed:${names.schema}`);
    c.on('error', (e) => lost(c, e));
    c.on('end', () => lost(c, new Error('feed connection ended')));
    c.on('notification', (msg) => {
      if (msg.channel === names.endpointsChannel) endpointsChanged(msg.payload ?? null);
      // (Both, should a 63-byte schema name make the two channel names coincide.)
      if (msg.channel !== names.channel) return;
      // The payload is the newest position of that commit. This process's own commits usually
      // arrive from memory too (see `local`), possibly a moment later than their NOTIFY: look
      // again after the pending I/O callbacks before reading.
      const newest = Number(msg.payload);
      if (newest <= position) return;
      setImmediate(() => {
        if (!(newest <= position)) void pump();
      });
    });
    try {
      await c.connect();
      await c.query(`SET ROLE ${ident(names.internalRole)}`);
      await c.query(`LISTEN ${ident(names.channel)}`);
      await c.query(`LISTEN ${ident(names.endpointsChannel)}`);
      if (position < 0) {
        const r = await c.query<{ position: number }>(sql.maxPosition);
        position = r.rows[0]?.position ?? 0;
      }
    } catch (e) {
      lost(c, e);
      return;
    }
    if (closed) {
      await c.end().catch(() => undefined);
      return;
    }
    client = c;
    reconnectDelay = opts.reconnectMs ?? 100;
    readyResolve();
    // Endpoint changes committed while the feed was not listening were not signalled.
    if (listenedBefore) endpointsChanged(null);
    listenedBefore = true;
    // Catch up on whatever committed while we were not listening.
    void pump();
  }

  const dead = new WeakSet<pg.Client>();
  function lost(c: pg.Client, e: unknown): void {
    // 'error' and 'end' may both fire for one drop: handle each connection once.
    if (dead.has(c)) return;
    dead.add(c);
    if (client === c) client = null;
    c.removeAllListeners('notification');
    c.end().catch(() => undefined);
    if (closed || reconnectTimer !== null) return;
    onError(coerceError(e));
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      void connect();
    }, reconnectDelay);
    reconnectDelay = Math.min(5000, reconnectDelay * 2);
  }

  function endpointsChanged(orgId: string | null): void {
    for (const l of endpointListeners) {
      try {
        l(orgId);
      } catch (e) {
        onError(e);
      }
    }
  }

  function deliver(events: readonly JobEvent[]): void {
    position = events.at(-1)?.position ?? position;
    for (const l of listeners) {
      try {
        l(events);
      } catch (e) {
        onError(e);
      }
    }
  }

  /**
   * Delivers the local events that continue the feed without a gap. Returns false when some
   * are left behind a gap (a read is needed). Only between reads (never while one is in flight).
   */
  function deliverLocal(): boolean {
    if (position < 0) return local.length === 0;
    let i = 0;
    while (i < local.length && (local[i] as JobEvent).position <= position) i++;
    let j = i;
    while (j < local.length && (local[j] as JobEvent).position === position + 1 + (j - i)) j++;
    const run = local.slice(i, j);
    local = local.slice(j);
    if (run.length > 0) deliver(run);
    return local.length === 0;
  }

  /** Reads and delivers everything after `position`; coalesces concurrent triggers. */
  function pump(): Promise<void> {
    if (pumping) {
      again = true;
      return pumping;
    }
    pumping = (async () => {
      do {
        again = false;
        localDuringRead = false;
        const before = position;
        for (;;) {
          const c = client;
          if (!c || closed || position < 0) return;
          let rows: EventRow[];
          try {
            rows = (await c.query<EventRow>({ name: sql.names.eventsAfter, text: sql.eventsAfter, values: [position, batchSize] })).rows;
          } catch (e) {
            lost(c, e);
            return;
          }
          if (rows.length === 0) break;
          // Local events delivered while the read was in flight are not delivered twice.
          const events = rows.map(toEvent).filter((e) => e.position > position);
          if (events.length > 0) deliver(events);
          if (rows.length < batchSize) break;
        }
        // Local events behind a gap the read just filled, or committed meanwhile. Still behind a
        // gap: read again only if this round got somewhere or they committed after the read
        // began (else the gap is another process's commit in flight: its NOTIFY or the poll
        // brings it).
        if (!closed && !deliverLocal() && (position > before || localDuringRead)) again = true;
      } while (again && !closed);
    })().finally(() => {
      pumping = null;
    });
    return pumping;
  }

  void connect();

  return {
    get position() {
      return position;
    },
    ready: () => readyPromise,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onEndpointsChanged(listener) {
      endpointListeners.add(listener);
      return () => endpointListeners.delete(listener);
    },
    async close() {
      closed = true;
      offLocal?.();
      clearInterval(poll);
      if (reconnectTimer) clearTimeout(reconnectTimer);
      readyResolve();
      await pumping;
      listeners.clear();
      endpointListeners.clear();
      const c = client;
      client = null;
      if (c) {
        dead.add(c);
        await c.end().catch(() => undefined);
      }
    },
  };
}
