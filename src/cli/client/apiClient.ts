import { coerceError } from '../../core/errors.js';
import { CliError, EXIT } from '../io.js';

/** Where and as whom client commands talk to a running server. */
export interface ClientTarget {
  readonly url: string;
  readonly org?: string | undefined;
  /** Sent as `Authorization: Bearer <credential>`: an API key (`upk_…`) or a JWT. */
  readonly bearer?: string | undefined;
}

/** A problem+json (or any non-2xx) answer: printed as `code: detail`, exit 1. */
export class ProblemError extends CliError {
  constructor(
    readonly code: string,
    readonly detail: string,
    readonly status: number,
  ) {
    super(`${code}: ${detail}`, EXIT.failure, true);
    this.name = 'ProblemError';
  }
}

export interface RequestOptions {
  readonly json?: unknown;
  /** A streamed body (uploads); sent with `duplex: 'half'` so it is never buffered whole. */
  readonly body?: ReadableStream<Uint8Array>;
  readonly headers?: Record<string, string>;
  readonly signal?: AbortSignal;
}

/** Thin fetch wrapper: base URL, tenant header, bearer key, problem mapping. */
export class ApiClient {
  private readonly base: URL;

  constructor(private readonly target: ClientTarget) {
    try {
      this.base = new URL(target.url);
    } catch {
      throw new CliError(`--url: "${target.url}" is not a URL (e.g. http://127.0.0.1:8080)`, EXIT.usage);
    }
  }

  url(path: string): string {
    return new URL(path.replace(/^\//, ''), this.base.href.endsWith('/') ? this.base : `${this.base.href}/`).href;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json, application/problem+json', ...extra };
    if (this.target.org) h['x-org-id'] = this.target.org;
    if (this.target.bearer) h.authorization = `Bearer ${this.target.bearer}`;
    return h;
  }

  /** Sends a request; resolves with the raw response once it is known to be 2xx. */
  async send(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const extra: Record<string, string> = { ...opts.headers };
    let body: RequestInit['body'];
    if (opts.json !== undefined) {
      extra['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.body) {
      body = opts.body as RequestInit['body'];
    }
    const url = this.url(path);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: this.headers(extra),
        ...(body !== undefined && { body }),
        ...(opts.body && { duplex: 'half' as const }),
        ...(opts.signal && { signal: opts.signal }),
      });
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      throw new CliError(`cannot reach ${this.base.origin}: ${networkReason(e)}`);
    }
    if (!res.ok) throw await toProblem(res);
    return res;
  }

  async json<T = Record<string, unknown>>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, opts);
    const text = await res.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`unexpected non-JSON answer from ${method} ${path} (HTTP ${res.status})`);
    }
  }
}

export async function toProblem(res: Response): Promise<ProblemError> {
  const text = await res.text().catch(() => '');
  try {
    const p = JSON.parse(text) as { code?: unknown; detail?: unknown; title?: unknown; message?: unknown };
    const code = typeof p.code === 'string' ? p.code : `HTTP_${res.status}`;
    const detail = [p.detail, p.title, p.message].find((v) => typeof v === 'string') as string | undefined;
    return new ProblemError(code, detail ?? res.statusText, res.status);
  } catch {
    return new ProblemError(`HTTP_${res.status}`, text.trim().slice(0, 200) || res.statusText, res.status);
  }
}

/** fetch hides the socket error in `cause`; surface ECONNREFUSED & co. */
function networkReason(e: unknown): string {
  const err = coerceError(e);
  const cause = (err as { cause?: unknown }).cause;
  if (cause && typeof cause === 'object') {
    const c = cause as { code?: unknown; message?: unknown };
    if (typeof c.code === 'string') return c.code;
    if (typeof c.message === 'string') return c.message;
  }
  return err.message;
}
