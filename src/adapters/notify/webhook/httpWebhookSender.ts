import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { coerceError, UpshiftError } from '../../../core/errors.js';
import type { WebhookMessage, WebhookSender, WebhookSendResult } from '../../../ports/webhookSender.js';
import { isPublicAddress } from './addressPolicy.js';

export interface HttpWebhookSenderOptions {
  /** Whole-attempt deadline: connect, send, and the response status line. */
  readonly timeoutMs: number;
  /** Allow loopback/private/link-local targets (UPSHIFT_WEBHOOK_ALLOW_PRIVATE). */
  readonly allowPrivate: boolean;
  /** Max open sockets per receiver host. Default 64. */
  readonly maxSocketsPerHost?: number;
  /** DNS resolver (tests). Default node:dns lookup. */
  readonly lookup?: (host: string) => Promise<LookupAddress[]>;
}

const FORBIDDEN = 'target forbidden: it resolves to a private, loopback or link-local address';
/** Response bodies are not needed; reading stops after this many bytes. */
const MAX_RESPONSE_BYTES = 64 * 1024;

const systemLookup = (host: string): Promise<LookupAddress[]> =>
  new Promise((resolve, reject) => dnsLookup(host, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));

class TargetError extends Error {
  constructor(
    message: string,
    readonly forbidden: boolean,
  ) {
    super(message);
  }
}

/**
 * Webhook delivery over node:http(s). SSRF: the URL is checked at creation (checkTarget) and
 * again for every attempt inside the socket's DNS lookup, so the address that is checked is
 * the address that is dialled (a DNS answer that changes in between — rebinding — is caught).
 * Signatures are made with the `standardwebhooks` package.
 */
export function createHttpWebhookSender(opts: HttpWebhookSenderOptions): WebhookSender & { close(): void } {
  const resolveHost = opts.lookup ?? systemLookup;
  const agentOpts = { keepAlive: true, maxSockets: opts.maxSocketsPerHost ?? 64 };
  const agents = { http: new HttpAgent(agentOpts), https: new HttpsAgent(agentOpts) };

  const parse = (raw: string): URL => {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new TargetError('not a valid absolute URL', false);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TargetError('only http and https URLs are allowed', false);
    if (url.username !== '' || url.password !== '') throw new TargetError('credentials in the URL are not allowed (use the signature to authenticate)', false);
    if (url.hostname === '') throw new TargetError('the URL has no host', false);
    return url;
  };
  const hostOf = (url: URL): string => url.hostname.replace(/^\[(.*)\]$/, '$1');

  /** Resolves and checks every address; throws TargetError. */
  const checkedAddresses = async (host: string): Promise<LookupAddress[]> => {
    if (isIP(host)) {
      if (!opts.allowPrivate && !isPublicAddress(host)) throw new TargetError(FORBIDDEN, true);
      return [{ address: host, family: isIP(host) }];
    }
    let addresses: LookupAddress[];
    try {
      addresses = await resolveHost(host);
    } catch (e) {
      throw new TargetError(`host ${host} does not resolve (${(e as NodeJS.ErrnoException).code ?? 'DNS error'})`, false);
    }
    if (addresses.length === 0) throw new TargetError(`host ${host} does not resolve`, false);
    // Every address must pass: a client may dial any of them (happy eyeballs).
    if (!opts.allowPrivate && addresses.some((a) => !isPublicAddress(a.address))) throw new TargetError(FORBIDDEN, true);
    return addresses;
  };

  const guardedLookup: LookupFunction = (hostname, options, callback) => {
    checkedAddresses(hostname).then(
      (addresses) => {
        const wanted = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
        if (wanted.length === 0) callback(Object.assign(new Error(`no IPv${options.family} address for ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
        else if (options.all) (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, wanted);
        else callback(null, (wanted[0] as LookupAddress).address, (wanted[0] as LookupAddress).family);
      },
      (e: unknown) => callback(e as NodeJS.ErrnoException, '', 0),
    );
  };

  const send = async (m: WebhookMessage): Promise<WebhookSendResult> => {
    let url: URL;
    try {
      url = parse(m.url);
      // IP literals never reach the lookup hook: check them here.
      if (isIP(hostOf(url))) await checkedAddresses(hostOf(url));
    } catch (e) {
      return { ok: false, statusCode: null, error: coerceError(e).message, retryable: false };
    }
    const signature = new Webhook(m.secret).sign(m.messageId, new Date(m.timestamp), m.body);
    const headers = {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(m.body)),
      'user-agent': 'Upshift-Webhooks/1',
      'webhook-id': m.messageId,
      'webhook-timestamp': String(Math.floor(m.timestamp / 1000)),
      'webhook-signature': signature,
    };
    const https = url.protocol === 'https:';
    return new Promise<WebhookSendResult>((resolve) => {
      let settled = false;
      const finish = (r: WebhookSendResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(r);
      };
      const req = (https ? httpsRequest : httpRequest)(
        url,
        { method: 'POST', headers, agent: https ? agents.https : agents.http, lookup: guardedLookup },
        (res: IncomingMessage) => {
          const status = res.statusCode ?? 0;
          drain(res);
          if (status >= 200 && status < 300) finish({ ok: true, statusCode: status });
          else finish({ ok: false, statusCode: status, error: `HTTP ${status}`, retryable: true });
        },
      );
      const timer = setTimeout(() => {
        finish({ ok: false, statusCode: null, error: `timeout after ${opts.timeoutMs} ms`, retryable: true });
        req.destroy();
      }, opts.timeoutMs);
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e instanceof TargetError) finish({ ok: false, statusCode: null, error: e.message, retryable: !e.forbidden });
        else finish({ ok: false, statusCode: null, error: e.code ?? e.message.slice(0, 200), retryable: true });
      });
      req.end(m.body);
    });
  };

  return {
    async checkTarget(raw) {
      try {
        const url = parse(raw);
        // With private targets allowed there is nothing to learn from DNS at creation time.
        if (!opts.allowPrivate) await checkedAddresses(hostOf(url));
      } catch (e) {
        if (e instanceof TargetError) throw new UpshiftError(e.forbidden ? 'WEBHOOK_URL_FORBIDDEN' : 'WEBHOOK_URL_INVALID', `webhook url rejected: ${e.message}`);
        throw e;
      }
    },
    send,
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

/** Reads (and drops) a little of the response so the socket can be reused, then lets go. */
function drain(res: IncomingMessage): void {
  let seen = 0;
  res.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > MAX_RESPONSE_BYTES) res.destroy();
  });
  res.on('error', () => {});
}
