import { describe, expect, it } from 'vitest';
import { isPublicAddress } from '../../src/adapters/notify/webhook/addressPolicy.js';
import { DeliveryRateLimiter } from '../../src/app/deliveryRateLimiter.js';
import { isOutboxEntryId, notificationIdOf, outboxEntryId, webhookChannel } from '../../src/core/notifications.js';

describe('webhook SSRF address policy', () => {
  it.each([
    '127.0.0.1', '127.1.2.3', '10.0.0.1', '172.16.5.4', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1',
    '0.0.0.0', '224.0.0.1', '255.255.255.255', '198.18.0.1', '192.0.2.10',
    '::', '::1', 'fe80::1', 'fc00::1', 'fd12:3456::1', 'ff02::1', '2001:db8::1',
    '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.1.2.3', '64:ff9b::a00:1', '64:ff9b::192.168.0.1', 'not-an-ip',
  ])('refuses %s', (a) => {
    expect(isPublicAddress(a)).toBe(false);
  });

  it.each(['8.8.8.8', '1.1.1.1', '93.184.216.34', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808'])('allows %s', (a) => {
    expect(isPublicAddress(a)).toBe(true);
  });
});

describe('DeliveryRateLimiter', () => {
  it('lets a burst through, then delays (never refuses) with successive slots', () => {
    const l = new DeliveryRateLimiter(60); // one per second
    const t = 1_000_000;
    for (let i = 0; i < 60; i++) expect(l.admit('acme:in_app', t)).toBe(0);
    const a = l.admit('acme:in_app', t);
    const b = l.admit('acme:in_app', t);
    expect(a).toBeGreaterThanOrEqual(t + 999);
    expect(b).toBeGreaterThanOrEqual(a + 999);
    // Another tenant is unaffected.
    expect(l.admit('globex:in_app', t)).toBe(0);
    // At its slot the first held-back entry gets a token.
    expect(l.admit('acme:in_app', a)).toBe(0);
  });

  it('0 per minute means unlimited', () => {
    const l = new DeliveryRateLimiter(0);
    expect(l.enabled).toBe(false);
    for (let i = 0; i < 1000; i++) expect(l.admit('x', 0)).toBe(0);
  });
});

describe('notification ids', () => {
  const job = 'job_06h0ff331f1qm7hy0dt45366c0';
  it('derive from the dedupe key: stable, distinct per channel and type', () => {
    const inApp = outboxEntryId(job, 'async.job.completed', 'in_app');
    const hook = outboxEntryId(job, 'async.job.completed', webhookChannel('whe_0123456789abcdefghjkmnpqrs'));
    expect(inApp).toBe('msg_06h0ff331f1qm7hy0dt45366c0_c');
    expect(hook).toBe('msg_06h0ff331f1qm7hy0dt45366c0_c_0123456789abcdefghjkmnpqrs');
    expect(outboxEntryId(job, 'async.job.failed', 'in_app')).not.toBe(inApp);
    expect([inApp, hook].every(isOutboxEntryId)).toBe(true);
    expect(notificationIdOf(job, 'async.job.canceled')).toBe('ntf_06h0ff331f1qm7hy0dt45366c0_x');
  });
});
