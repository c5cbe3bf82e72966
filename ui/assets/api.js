// The UI's only way to the server: the public HTTP API v1 (docs/api.md), with the tenant or
// API key from auth.js. Every failure becomes an ApiError carrying the problem+json body.
import { authHeaders } from './auth.js';

/** An API answer that is not 2xx, or no answer at all (status 0). */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {{title?: string, detail?: string, code?: string, status?: number, errors?: Array<{in: string, field: string, message: string}>}} problem
   */
  constructor(status, problem) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.problem = problem;
  }
}

/** Turns a non-2xx response into an ApiError (problem+json when the server sent one). */
export async function errorFrom(res) {
  const text = await res.text().catch(() => '');
  let problem;
  try {
    problem = JSON.parse(text);
  } catch {
    problem = null;
  }
  if (problem === null || typeof problem !== 'object') problem = { title: `HTTP ${res.status} ${res.statusText}`.trim(), detail: text.slice(0, 500) };
  return new ApiError(res.status, problem);
}

/**
 * Calls the API. `body`: an object (sent as JSON), a string (sent as is, as JSON unless
 * `contentType` says otherwise) or a Blob/File (sent as is). Answers parsed JSON (or null).
 * @param {string} path
 * `onResponse` sees the successful response (e.g. for its headers) before the body is parsed.
 * @param {{method?: string, body?: unknown, contentType?: string, headers?: Record<string, string>, signal?: AbortSignal, onResponse?: (res: Response) => void}} [opts]
 */
export async function api(path, opts = {}) {
  const headers = { accept: 'application/json', ...authHeaders(), ...opts.headers };
  let body;
  if (opts.body !== undefined) {
    if (typeof opts.body === 'string' || opts.body instanceof Blob) body = opts.body;
    else body = JSON.stringify(opts.body);
    headers['content-type'] = opts.contentType ?? 'application/json';
  }
  let res;
  try {
    res = await fetch(path, { method: opts.method ?? (body === undefined ? 'GET' : 'POST'), headers, body, signal: opts.signal });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(0, { title: 'Network error', detail: `the server did not answer (${e instanceof Error ? e.message : String(e)})` });
  }
  if (!res.ok) throw await errorFrom(res);
  opts.onResponse?.(res);
  const text = await res.text();
  return text === '' ? null : JSON.parse(text);
}

/** `{a: 1, b: undefined}` → `?a=1` (empty values left out). */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}

/** Path segment encoding for ids taken from the URL. */
export const seg = (id) => encodeURIComponent(id);

/**
 * Runs `load` every `intervalMs` while the page is visible, until the page goes away. `load`
 * may return an error it showed: on 429 RATE_LIMITED the next run waits the `Retry-After`
 * the server asked for, so an open tab never keeps a rate-limited tenant over its limit.
 * @param {() => Promise<unknown>} load
 * @param {number} intervalMs
 */
export function poll(load, intervalMs) {
  let timer = null;
  const tick = async () => {
    let wait = intervalMs;
    if (document.visibilityState === 'visible') {
      const err = await load();
      if (err instanceof ApiError && err.status === 429) wait = Math.max(intervalMs, (Number(err.problem.retry_after_seconds) || 1) * 1000);
    }
    timer = setTimeout(tick, wait);
  };
  timer = setTimeout(tick, intervalMs);
  window.addEventListener('pagehide', () => clearTimeout(timer), { once: true });
}
