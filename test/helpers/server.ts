import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type ConfigKey } from '../../src/config/config.js';
import type { Analyzer } from '../../src/core/analyzer.js';
import type { Logger } from '../../src/ports/logger.js';
import type { Tracer } from '../../src/ports/tracer.js';
import { createUpshift, type Upshift } from '../../src/main.js';
import { inject } from 'vitest';
import { dropSchema, POSTGRES_TEST_URL, testSchemaName } from './services.js';

/**
 * The store the HTTP suites run on: SQLite files by default; PostgreSQL (a fresh schema per
 * server, dropped on close) in the `e2e-postgres` vitest project, which sets
 * UPSHIFT_TEST_STORE=postgres for the same test files (see vitest.config.ts).
 */
export const TEST_STORE: 'sqlite' | 'postgres' = process.env.UPSHIFT_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite';

export interface TestServer {
  /** The whole composition (service, apiKeys, http, …). */
  readonly app: Upshift;
  /** Base URL of the server on a loopback port, no trailing slash. */
  readonly url: string;
  /** Temp dir holding the SQLite file (SQLite runs) and the data dir (`<dir>/data`). */
  readonly dir: string;
  /** PostgreSQL runs: the server's own schema (dropped by close()); null on SQLite. */
  readonly schema: string | null;
  close(): Promise<void>;
}

/**
 * An Upshift on a temp SQLite file (or its own PostgreSQL schema, see TEST_STORE), listening
 * on 127.0.0.1 with an ephemeral port, tuned for fast tests (short poll, silent logs).
 * `overrides` are config keys as in the environment.
 */
export async function startTestServer(
  overrides: Partial<Record<ConfigKey, string>> = {},
  opts: { analyzers?: readonly Analyzer<never, unknown>[]; tracer?: Tracer; logger?: Logger } = {},
): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'upshift-http-'));
  const schema = TEST_STORE === 'postgres' ? testSchemaName() : null;
  // The project's own database (postgresDatabase.setup.ts), else the shared test database.
  const pgUrl = schema === null ? null : (inject('upshiftPostgresUrl') ?? POSTGRES_TEST_URL);
  const store: Partial<Record<ConfigKey, string>> =
    schema === null || pgUrl === null ? { UPSHIFT_DATABASE_URL: `sqlite:${join(dir, 'upshift.db')}` } : { UPSHIFT_DATABASE_URL: pgUrl, UPSHIFT_DATABASE_SCHEMA: schema };
  const cleanup = async (): Promise<void> => {
    rmSync(dir, { recursive: true, force: true });
    if (schema !== null && pgUrl !== null) await dropSchema(pgUrl, schema);
  };
  const config = loadConfig(
    {},
    {
      UPSHIFT_HOST: '127.0.0.1',
      UPSHIFT_PORT: '0',
      ...store,
      UPSHIFT_DATA_DIR: join(dir, 'data'),
      UPSHIFT_POLL_MS: '20',
      UPSHIFT_LOG_LEVEL: 'silent',
      UPSHIFT_SHUTDOWN_GRACE_MS: '2000',
      UPSHIFT_CANCEL_GRACE_MS: '500',
      UPSHIFT_BACKOFF_BASE_MS: '50',
      UPSHIFT_BACKOFF_MAX_MS: '200',
      ...overrides,
    },
  );
  let app: Upshift;
  try {
    app = await createUpshift({ config, ...(opts.analyzers && { analyzers: opts.analyzers }), ...(opts.tracer && { tracer: opts.tracer }), ...(opts.logger && { logger: opts.logger }) });
  } catch (e) {
    await cleanup();
    throw e;
  }
  let url: string | null;
  try {
    url = await app.start();
  } catch (e) {
    await app.close();
    await cleanup();
    throw e;
  }
  if (url === null) throw new Error('HTTP server was not built');
  let closed = false;
  return {
    app,
    url: url.replace(/\/$/, ''),
    dir,
    schema,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await cleanup();
    },
  };
}

export interface ApiResponse<T = any> {
  readonly status: number;
  readonly headers: Headers;
  readonly body: T;
  readonly text: string;
}

export interface ApiRequest {
  readonly method?: string;
  /** JSON-encoded unless a string/Buffer (sent as is). */
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  /** Sent as X-Org-Id unless null. */
  readonly org?: string | null;
}

/** A tiny fetch wrapper: JSON in, parsed JSON (or text) out. */
export function apiClient(baseUrl: string, defaultOrg: string | null = null) {
  return async function api<T = any>(path: string, req: ApiRequest = {}): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { ...req.headers };
    const org = req.org === undefined ? defaultOrg : req.org;
    if (org !== null) headers['x-org-id'] = org;
    let body: string | Buffer | undefined;
    if (req.body !== undefined) {
      if (typeof req.body === 'string' || Buffer.isBuffer(req.body)) {
        body = req.body;
      } else {
        body = JSON.stringify(req.body);
        headers['content-type'] ??= 'application/json';
      }
    }
    const res = await fetch(baseUrl + path, { method: req.method ?? (body === undefined ? 'GET' : 'POST'), headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, headers: res.headers, body: parsed as T, text };
  };
}

export interface SseEvent {
  readonly id: string | null;
  readonly event: string | null;
  readonly data: string;
}

/**
 * Reads an SSE response until it ends, `stopAfter` events arrived, or `timeoutMs` passed.
 * Returns the events, the raw text (comments included) and the response headers.
 */
export async function readSse(
  url: string,
  headers: Record<string, string>,
  opts: { stopAfter?: number; timeoutMs?: number } = {},
): Promise<{ status: number; headers: Headers; events: SseEvent[]; raw: string; ended: boolean }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), opts.timeoutMs ?? 20_000);
  const events: SseEvent[] = [];
  let raw = '';
  let ended = false;
  const res = await fetch(url, { headers, signal: ac.signal });
  try {
    if (!res.body) return { status: res.status, headers: res.headers, events, raw, ended: true };
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch {
        break; // aborted (timeout)
      }
      if (chunk.done) {
        ended = true;
        break;
      }
      const text = decoder.decode(chunk.value, { stream: true });
      raw += text;
      buf += text;
      let idx: number;
      // Events past `stopAfter` in the same chunk are dropped, as by a client that disconnects
      // after exactly that many (a resume with Last-Event-ID then gets them again).
      while ((opts.stopAfter === undefined || events.length < opts.stopAfter) && (idx = buf.indexOf('\n\n')) !== -1) {
        const block = buf.slice(0, idx);
        buf = buf.slice(idx + 2);
        let id: string | null = null;
        let event: string | null = null;
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':') || line === '') continue;
          const colon = line.indexOf(':');
          const field = colon === -1 ? line : line.slice(0, colon);
          const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'id') id = value;
          else if (field === 'event') event = value;
          else if (field === 'data') data.push(value);
        }
        if (data.length > 0) events.push({ id, event, data: data.join('\n') });
      }
      if (opts.stopAfter !== undefined && events.length >= opts.stopAfter) {
        await reader.cancel().catch(() => {});
        break;
      }
    }
    return { status: res.status, headers: res.headers, events, raw, ended };
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

/** Polls `fn` until it returns a truthy value (or throws after `timeoutMs`). */
export async function eventually<T>(fn: () => Promise<T | null | undefined | false>, timeoutMs = 15_000, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
