import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpWebhookSender } from '../../src/adapters/notify/webhook/httpWebhookSender.js';
import { isUpshiftError } from '../../src/core/errors.js';
import { startReceiver, type Receiver } from '../helpers/webhookReceiver.js';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const msg = (url: string) => ({ url, secret: SECRET, messageId: 'msg_test_1', timestamp: Date.now(), body: JSON.stringify({ type: 'async.job.completed', timestamp: new Date().toISOString(), data: { job_id: 'job_x' } }) });
const codeOf = (p: Promise<unknown>) => p.then(() => 'ok', (e: unknown) => (isUpshiftError(e) ? e.code : String(e)));

describe('HTTP webhook sender (loopback)', () => {
  let receiver: Receiver;
  let redirector: Server;
  let redirectUrl: string;
  beforeAll(async () => {
    receiver = await startReceiver({ secret: SECRET });
    redirector = createServer((_req, res) => res.writeHead(302, { location: receiver.url }).end());
    await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
    redirectUrl = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/`;
  });
  afterAll(async () => {
    await receiver.close();
    await new Promise((r) => redirector.close(r));
  });

  it('signs with standardwebhooks: the receiver verifies id, timestamp and signature', async () => {
    const sender = createHttpWebhookSender({ timeoutMs: 2_000, allowPrivate: true });
    receiver.setMode('ok');
    const r = await sender.send(msg(receiver.url));
    sender.close();
    expect(r).toEqual({ ok: true, statusCode: 200 });
    const last = receiver.received.at(-1)!;
    expect(last).toMatchObject({ id: 'msg_test_1', verified: true, status: 200 });
  });

  it('reports 5xx, refused connections, timeouts and redirects as retryable failures', async () => {
    const sender = createHttpWebhookSender({ timeoutMs: 300, allowPrivate: true });
    receiver.setMode('error');
    expect(await sender.send(msg(receiver.url))).toEqual({ ok: false, statusCode: 503, error: 'HTTP 503', retryable: true });
    receiver.setMode('hang');
    const started = Date.now();
    expect(await sender.send(msg(receiver.url))).toEqual({ ok: false, statusCode: null, error: 'timeout after 300 ms', retryable: true });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(await sender.send(msg(redirectUrl))).toMatchObject({ ok: false, statusCode: 302, retryable: true });
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    expect(await sender.send(msg(`http://127.0.0.1:${port}/`))).toEqual({ ok: false, statusCode: null, error: 'ECONNREFUSED', retryable: true });
    receiver.setMode('ok');
    sender.close();
  });

  it('refuses private targets at delivery time, also behind a host name (checked in the socket lookup)', async () => {
    // hooks.test first resolves to a public address (creation passes), then to loopback (rebinding).
    let answer = '93.184.216.34';
    const sender = createHttpWebhookSender({ timeoutMs: 1_000, allowPrivate: false, lookup: async () => [{ address: answer, family: 4 }] });
    await expect(codeOf(sender.checkTarget(`http://hooks.test:${receiver.port}/hook`))).resolves.toBe('ok');
    answer = '127.0.0.1';
    const before = receiver.received.length;
    const r = await sender.send(msg(`http://hooks.test:${receiver.port}/hook`));
    expect(r).toMatchObject({ ok: false, statusCode: null, retryable: false });
    expect(r.ok === false && r.error).toMatch(/forbidden/);
    expect(await sender.send(msg(receiver.url))).toMatchObject({ ok: false, retryable: false });
    expect(receiver.received.length).toBe(before);
    sender.close();
  });

  it('dials the address its own lookup returned (allow-private mode reaches loopback by name)', async () => {
    const sender = createHttpWebhookSender({ timeoutMs: 1_000, allowPrivate: true, lookup: async () => [{ address: '127.0.0.1', family: 4 }] });
    expect(await sender.send(msg(`http://hooks.test:${receiver.port}/hook`))).toEqual({ ok: true, statusCode: 200 });
    sender.close();
  });

  it('checkTarget: scheme, credentials, resolution and every resolved address', async () => {
    const answers: Record<string, string[]> = { 'public.test': ['93.184.216.34'], 'mixed.test': ['93.184.216.34', '10.0.0.7'], 'meta.test': ['169.254.169.254'] };
    const sender = createHttpWebhookSender({
      timeoutMs: 1_000,
      allowPrivate: false,
      lookup: async (host) => {
        const a = answers[host];
        if (!a) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
        return a.map((address) => ({ address, family: 4 }));
      },
    });
    await expect(codeOf(sender.checkTarget('https://public.test/x'))).resolves.toBe('ok');
    await expect(codeOf(sender.checkTarget('https://mixed.test/x'))).resolves.toBe('WEBHOOK_URL_FORBIDDEN');
    await expect(codeOf(sender.checkTarget('http://meta.test/latest'))).resolves.toBe('WEBHOOK_URL_FORBIDDEN');
    await expect(codeOf(sender.checkTarget('http://[fd00::1]/'))).resolves.toBe('WEBHOOK_URL_FORBIDDEN');
    await expect(codeOf(sender.checkTarget('https://nowhere.test/x'))).resolves.toBe('WEBHOOK_URL_INVALID');
    await expect(codeOf(sender.checkTarget('gopher://public.test/'))).resolves.toBe('WEBHOOK_URL_INVALID');
    await expect(codeOf(sender.checkTarget('https://a:b@public.test/'))).resolves.toBe('WEBHOOK_URL_INVALID');
    await expect(codeOf(sender.checkTarget('/relative'))).resolves.toBe('WEBHOOK_URL_INVALID');
    sender.close();
  });
});
