import { describe, expect, it } from 'vitest';
import { flagDecision, parseFeatureFlags, rolloutBucket } from '../../src/core/featureFlags.js';

const parse = (doc: unknown) => parseFeatureFlags(JSON.stringify(doc), 'TEST');

describe('feature flags', () => {
  it('kill switch beats everything; tenants_off beats tenants_on; no rule is off', () => {
    expect(flagDecision({}, 'legacy_async_default', 'acme')).toEqual({ on: false, reason: 'no_rule' });
    const killed = parse({ legacy_async_default: { enabled: false, percentage: 100, tenants_on: ['acme'] } });
    expect(flagDecision(killed, 'legacy_async_default', 'acme')).toEqual({ on: false, reason: 'kill_switch' });
    const both = parse({ legacy_async_default: { enabled: true, tenants_on: ['acme'], tenants_off: ['acme', 'globex'] } });
    expect(flagDecision(both, 'legacy_async_default', 'acme')).toEqual({ on: false, reason: 'tenant_off' });
    const on = parse({ legacy_async_default: { enabled: true, tenants_on: ['acme'] } });
    expect(flagDecision(on, 'legacy_async_default', 'acme')).toEqual({ on: true, reason: 'tenant_on' });
    expect(flagDecision(on, 'legacy_async_default', 'initech')).toEqual({ on: false, reason: 'rollout' });
  });

  it('rollout buckets are stable, spread evenly, and a higher percentage only adds tenants', () => {
    const orgs = Array.from({ length: 10_000 }, (_, i) => `org-${i}`);
    expect(orgs.map((o) => rolloutBucket('legacy_async_default', o))).toEqual(orgs.map((o) => rolloutBucket('legacy_async_default', o)));
    const at = (pct: number) => new Set(orgs.filter((o) => flagDecision(parse({ legacy_async_default: { enabled: true, percentage: pct } }), 'legacy_async_default', o).on));
    const p10 = at(10);
    const p30 = at(30);
    expect(p30.size / orgs.length).toBeGreaterThan(0.28);
    expect(p30.size / orgs.length).toBeLessThan(0.32);
    for (const o of p10) expect(p30.has(o)).toBe(true);
    expect(at(0).size).toBe(0);
    expect(at(100).size).toBe(orgs.length);
    // Independent per flag name: the bucket depends on the flag too.
    expect(orgs.filter((o) => rolloutBucket('a', o) === rolloutBucket('b', o)).length).toBeLessThan(50);
  });

  it('refuses unknown flags and fields, wrong types, bad org ids and out-of-range percentages', () => {
    expect(parseFeatureFlags('', 'TEST')).toEqual({});
    const bad = (text: string, msg: RegExp) => expect(() => parseFeatureFlags(text, 'TEST')).toThrow(msg);
    bad('{', /not valid JSON/);
    bad('[]', /JSON object/);
    bad(JSON.stringify({ async_everything: { enabled: true } }), /unknown flag "async_everything"/);
    bad(JSON.stringify({ legacy_async_default: { enabled: 'yes' } }), /enabled: expected true or false/);
    bad(JSON.stringify({ legacy_async_default: { enabled: true, percentage: 101 } }), /percentage/);
    bad(JSON.stringify({ legacy_async_default: { enabled: true, tenants_on: ['ok', 'not ok'] } }), /tenants_on/);
    bad(JSON.stringify({ legacy_async_default: { enabled: true, rollout: 5 } }), /unknown field "rollout"/);
    try {
      parseFeatureFlags('{', 'TEST');
    } catch (e) {
      expect((e as { code: string }).code).toBe('CONFIG_INVALID');
    }
  });
});
