import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createPinoLogger, scrubSecrets } from '../../src/adapters/telemetry/pinoLogger.js';

// Secrets never reach log output (SPEC §7): header and secret fields are redacted by path,
// credentials quoted inside error texts are scrubbed. The sink is an in-memory stream.

function capture(level = 'debug') {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { logger: createPinoLogger(level, sink), text: () => chunks.join('') };
}

const API_KEY = 'upk_9fX2mQ7rL0aZ1bC3dE5gH7jK9nP2sT4v';
const WEBHOOK_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

describe('log redaction', () => {
  it('redacts Authorization headers and webhook secrets wherever the code puts them', () => {
    const { logger, text } = capture();
    logger.info({ req: { headers: { authorization: `Bearer ${API_KEY}`, 'x-api-key': API_KEY, cookie: 'sid=abc' } } }, 'incoming');
    logger.info({ headers: { Authorization: `Bearer ${API_KEY}` } }, 'outgoing');
    logger.info({ authorization: `Bearer ${API_KEY}` }, 'flat');
    logger.info({ endpoint: { id: 'we_1', url: 'https://hooks.example/x', secret: WEBHOOK_SECRET } }, 'webhook endpoint created');
    logger.info({ delivery: { endpoint: { secret: WEBHOOK_SECRET } } }, 'nested');
    logger.warn({ webhook_secret: WEBHOOK_SECRET, api_key: API_KEY, key: API_KEY, token: API_KEY, password: 'hunter2' }, 'flat fields');
    logger.child({ component: 'webhooks' }).error({ webhook: { secret: WEBHOOK_SECRET } }, 'child logger');
    const out = text();
    expect(out).not.toContain(API_KEY);
    expect(out).not.toContain(WEBHOOK_SECRET);
    expect(out).not.toContain('hunter2');
    expect(out).not.toContain('sid=abc');
    expect(out.match(/\[redacted\]/g)?.length).toBe(13);
    // Non-secret context survives.
    expect(out).toContain('https://hooks.example/x');
    expect(out.split('\n').filter(Boolean).every((l) => JSON.parse(l).service === 'upshift')).toBe(true);
  });

  it('scrubs credentials quoted in error messages and stacks', () => {
    const { logger, text } = capture();
    logger.error({ err: new Error(`delivery failed: upstream rejected Authorization: Bearer ${API_KEY} (secret ${WEBHOOK_SECRET})`) }, 'delivery failed');
    const line = JSON.parse(text().trim()) as { err: { message: string; stack: string; type: string } };
    expect(line.err.type).toBe('Error');
    expect(line.err.message).toBe('delivery failed: upstream rejected Authorization: Bearer [redacted] (secret whsec_[redacted])');
    expect(line.err.stack).not.toContain(API_KEY);
    expect(scrubSecrets('key upk_abc, bearer xyz.1 ok')).toBe('key upk_[redacted], bearer [redacted] ok');
  });

  it('scrubs a JWT quoted in an error without its Bearer prefix', () => {
    const jwt = 'eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJvcmdfaWQiOiJhY21lIn0.c2lnbmF0dXJl-_x';
    const { logger, text } = capture();
    logger.warn({ err: new Error(`token ${jwt} rejected`), token: jwt }, 'rejected');
    expect(text()).not.toContain('eyJvcmdfaWQiOiJhY21lIn0');
    expect(JSON.parse(text()).err.message).toBe('token [redacted-jwt] rejected');
    expect(scrubSecrets(`a ${jwt}, b`)).toBe('a [redacted-jwt], b');
    expect(scrubSecrets('eyes.on.it')).toBe('eyes.on.it');
  });
});
