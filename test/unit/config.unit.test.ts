import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configOverrides } from '../../src/cli/configFlags.js';
import { CONFIG_KEYS, isLoopback, loadConfig, parseDatabaseUrl, resolveSqliteWriter, type ConfigKey } from '../../src/config/config.js';
import { isUpshiftError, type UpshiftError } from '../../src/core/errors.js';

/** Runs loadConfig and returns the CONFIG_INVALID it throws (fails the test if it does not). */
function invalid(env: Record<string, string>, overrides: Partial<Record<ConfigKey, string>> = {}): UpshiftError {
  try {
    loadConfig(env, overrides);
  } catch (e) {
    if (isUpshiftError(e, 'CONFIG_INVALID')) return e;
    throw e;
  }
  throw new Error(`expected CONFIG_INVALID for ${JSON.stringify({ env, overrides })}`);
}

describe('loadConfig defaults', () => {
  const c = loadConfig({});

  it('uses the documented defaults for an empty environment', () => {
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8080);
    expect(c.database).toEqual({ kind: 'sqlite', file: resolve('./data/upshift.db') });
    expect(c.dataDir).toBe(resolve('./data'));
    expect(c.auth).toEqual({ mode: 'trusted-header', allowTrustedHeaderOnPublicBind: false, jwt: null });
    expect(c.worker).toEqual({
      enabled: true,
      concurrency: 16,
      prefetch: 'auto',
      leaseMs: 30_000,
      heartbeatMs: 10_000,
      pollMs: 1_000,
      cancelGraceMs: 5_000,
      jobTimeoutMs: 900_000,
      maxAttempts: 3,
      backoffBaseMs: 1_000,
      backoffMaxMs: 300_000,
      shutdownGraceMs: 10_000,
    });
    expect(c.fairness).toEqual({ weights: {}, maxRunning: {}, defaultMaxRunning: 0 });
    expect(c.http).toEqual({ bodyLimitBytes: 1_048_576, uploadLimitBytes: 1_073_741_824, syncTimeoutMs: 60_000, sseHeartbeatMs: 15_000, rateLimitPerMinute: 0, uiEnabled: true });
    expect(c.analyzerModules).toEqual([]);
    expect(c.logLevel).toBe('info');
  });

  it('equals loading CONFIG_KEYS itself as the environment', () => {
    expect(loadConfig({ ...CONFIG_KEYS })).toEqual(c);
  });
});

describe('loadConfig layering', () => {
  it('reads the environment', () => {
    const c = loadConfig({ UPSHIFT_PORT: '9000', UPSHIFT_WORKER_CONCURRENCY: '4', UPSHIFT_WORKER_PREFETCH: '200', UPSHIFT_LOG_LEVEL: 'warn', UPSHIFT_AUTH_MODE: 'api-key' });
    expect([c.port, c.worker.concurrency, c.worker.prefetch, c.logLevel, c.auth.mode]).toEqual([9000, 4, 200, 'warn', 'api-key']);
    expect(loadConfig({ UPSHIFT_WORKER_PREFETCH: '0' }).worker.prefetch).toBe(0);
  });

  it('lets overrides (CLI flags) win over the environment', () => {
    const c = loadConfig({ UPSHIFT_PORT: '9000', UPSHIFT_HOST: '127.0.0.2' }, { UPSHIFT_PORT: '9001' });
    expect(c.port).toBe(9001);
    expect(c.host).toBe('127.0.0.2');
  });

  it('parses lists, maps, booleans and database URLs', () => {
    const c = loadConfig({
      UPSHIFT_ANALYZERS: ' ./a.js, ,./b.mjs ',
      UPSHIFT_ORG_WEIGHTS: 'acme=3, globex=0.5',
      UPSHIFT_ORG_MAX_RUNNING: 'acme=2',
      UPSHIFT_WORKER_ENABLED: 'no',
      UPSHIFT_UI_ENABLED: 'false',
      UPSHIFT_DATABASE_URL: 'postgres://u:p@db:5432/upshift',
    });
    expect(c.analyzerModules).toEqual([resolve('./a.js'), resolve('./b.mjs')]);
    expect(c.fairness.weights).toEqual({ acme: 3, globex: 0.5 });
    expect(c.fairness.maxRunning).toEqual({ acme: 2 });
    expect(c.worker.enabled).toBe(false);
    expect(c.http.uiEnabled).toBe(false);
    expect(c.database).toEqual({ kind: 'postgres', url: 'postgres://u:p@db:5432/upshift', schema: 'upshift' });
    expect(loadConfig({}, { UPSHIFT_DATABASE_URL: 'postgres://db/x', UPSHIFT_DATABASE_SCHEMA: 'tenant_a' }).database).toEqual({ kind: 'postgres', url: 'postgres://db/x', schema: 'tenant_a' });
    expect(() => loadConfig({}, { UPSHIFT_DATABASE_URL: 'postgres://db/x', UPSHIFT_DATABASE_SCHEMA: 'Bad-Name' })).toThrow(/UPSHIFT_DATABASE_SCHEMA/);
    expect(parseDatabaseUrl('sqlite::memory:')).toEqual({ kind: 'sqlite', file: ':memory:' });
    expect(parseDatabaseUrl('sqlite:///tmp/x.db')).toEqual({ kind: 'sqlite', file: '/tmp/x.db' });
  });

  it('resolves the dispatch mode: auto is bullmq with PostgreSQL and Redis, store otherwise', () => {
    const pgUrl = 'postgres://db/upshift';
    expect(loadConfig({}).dispatch).toMatchObject({ mode: 'store', redisUrl: null });
    expect(loadConfig({ UPSHIFT_DATABASE_URL: pgUrl }).dispatch.mode).toBe('store');
    expect(loadConfig({ UPSHIFT_DATABASE_URL: pgUrl, UPSHIFT_REDIS_URL: 'redis://r:6379' }).dispatch).toMatchObject({ mode: 'bullmq', redisUrl: 'redis://r:6379' });
    expect(loadConfig({ UPSHIFT_DATABASE_URL: pgUrl, UPSHIFT_REDIS_URL: 'redis://r:6379', UPSHIFT_DISPATCH_MODE: 'store' }).dispatch.mode).toBe('store');
    expect(loadConfig({ UPSHIFT_DATABASE_URL: pgUrl, UPSHIFT_DATABASE_SCHEMA: 'tenant_x' }).database).toMatchObject({ schema: 'tenant_x' });
  });
});

describe('invalid values fail with CONFIG_INVALID naming the key and the rule', () => {
  const cases: [string, Record<string, string>, string][] = [
    ['not an integer', { UPSHIFT_PORT: 'eighty' }, 'an integer in [0, 65535]'],
    ['a fraction', { UPSHIFT_WORKER_CONCURRENCY: '1.5' }, 'an integer in [1, 10000]'],
    ['out of range', { UPSHIFT_PORT: '65536' }, 'an integer in [0, 65535]'],
    ['below range', { UPSHIFT_WORKER_CONCURRENCY: '0' }, 'an integer in [1, 10000]'],
    ['not a boolean', { UPSHIFT_WORKER_ENABLED: 'maybe' }, 'true or false'],
    ['a prefetch that is neither auto nor a count', { UPSHIFT_WORKER_PREFETCH: 'max' }, 'auto or an integer in [0, 10000]'],
    ['a negative prefetch', { UPSHIFT_WORKER_PREFETCH: '-1' }, 'auto or an integer in [0, 10000]'],
    ['not one of the choices', { UPSHIFT_AUTH_MODE: 'jwt-maybe' }, 'one of trusted-header, api-key, jwt'],
    ['a bad log level', { UPSHIFT_LOG_LEVEL: 'loud' }, 'one of fatal, error'],
    ['a malformed org map', { UPSHIFT_ORG_WEIGHTS: 'acme:3' }, 'org=number pairs'],
    ['bullmq without Redis', { UPSHIFT_DATABASE_URL: 'postgres://db/x', UPSHIFT_DISPATCH_MODE: 'bullmq' }, 'bullmq together with UPSHIFT_REDIS_URL'],
    ['bullmq on SQLite', { UPSHIFT_REDIS_URL: 'redis://r:6379', UPSHIFT_DISPATCH_MODE: 'bullmq' }, 'BullMQ dispatch needs UPSHIFT_DATABASE_URL=postgres'],
    ['a bad Redis URL', { UPSHIFT_REDIS_URL: 'http://r:6379' }, 'redis://'],
    ['an unknown dispatch mode', { UPSHIFT_DISPATCH_MODE: 'kafka' }, 'one of auto, store, bullmq'],
    ['a bad schema name', { UPSHIFT_DATABASE_URL: 'postgres://db/x', UPSHIFT_DATABASE_SCHEMA: 'Bad-Name' }, 'a lower-case PostgreSQL identifier'],
    ['a zero weight', { UPSHIFT_ORG_WEIGHTS: 'acme=0' }, 'number > 0'],
    ['an unknown database scheme', { UPSHIFT_DATABASE_URL: 'mysql://x' }, 'sqlite:<path> or postgres://'],
    ['an empty sqlite path', { UPSHIFT_DATABASE_URL: 'sqlite:' }, 'sqlite:<path>'],
    ['an empty host', { UPSHIFT_HOST: ' ' }, 'a host name or address'],
    ['a heartbeat not below the lease', { UPSHIFT_LEASE_MS: '1000', UPSHIFT_HEARTBEAT_MS: '1000' }, 'less than UPSHIFT_LEASE_MS'],
  ];
  for (const [what, env, rule] of cases) {
    it(`${what}: ${JSON.stringify(env)}`, () => {
      const e = invalid(env);
      const key = Object.keys(env).at(-1) as string;
      expect(e.details?.key).toBe(key);
      expect(e.message).toContain(key);
      expect(e.message).toContain(rule);
    });
  }

  it('an invalid override is reported like an invalid variable', () => {
    const e = invalid({ UPSHIFT_PORT: '8080' }, { UPSHIFT_PORT: '-1' });
    expect(e.details?.key).toBe('UPSHIFT_PORT');
    expect(e.message).toContain('"-1"');
  });

  it('never echoes database credentials', () => {
    const e = invalid({ UPSHIFT_DATABASE_URL: 'mongodb://admin:hunter2@db/x' });
    expect(e.message).not.toContain('hunter2');
  });
});

describe('trusted-header on a public bind', () => {
  it('is refused unless acknowledged', () => {
    const e = invalid({ UPSHIFT_HOST: '0.0.0.0' });
    expect(e.details?.key).toBe('UPSHIFT_HOST');
    expect(e.message).toContain('UPSHIFT_ALLOW_TRUSTED_HEADER_ON_PUBLIC_BIND');
  });

  it('is allowed when acknowledged', () => {
    const c = loadConfig({ UPSHIFT_HOST: '0.0.0.0', UPSHIFT_ALLOW_TRUSTED_HEADER_ON_PUBLIC_BIND: 'true' });
    expect(c.host).toBe('0.0.0.0');
    expect(c.auth.allowTrustedHeaderOnPublicBind).toBe(true);
  });

  it('is not an issue in api-key mode or on loopback', () => {
    expect(loadConfig({ UPSHIFT_HOST: '0.0.0.0', UPSHIFT_AUTH_MODE: 'api-key' }).host).toBe('0.0.0.0');
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) expect(isLoopback(h)).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.com']) expect(isLoopback(h)).toBe(false);
  });
});

describe('jwt auth mode', () => {
  const JWT = { UPSHIFT_AUTH_MODE: 'jwt', UPSHIFT_JWT_JWKS_URL: 'https://idp.example.com/.well-known/jwks.json', UPSHIFT_JWT_ISSUER: 'https://idp.example.com/', UPSHIFT_JWT_AUDIENCE: 'upshift' };

  it('fills the verifier settings with their defaults', () => {
    expect(loadConfig(JWT).auth).toEqual({
      mode: 'jwt',
      allowTrustedHeaderOnPublicBind: false,
      jwt: {
        jwksUrl: 'https://idp.example.com/.well-known/jwks.json',
        issuers: ['https://idp.example.com/'],
        audiences: ['upshift'],
        algorithms: ['RS256', 'ES256'],
        clockToleranceSeconds: 30,
        orgClaim: 'org_id',
        jwksCacheMaxAgeMs: 600_000,
        jwksCooldownMs: 30_000,
        jwksTimeoutMs: 5_000,
      },
    });
  });

  it('is frozen like the rest', () => {
    const jwt = loadConfig(JWT).auth.jwt;
    for (const part of [jwt, jwt?.issuers, jwt?.audiences, jwt?.algorithms]) expect(Object.isFrozen(part)).toBe(true);
  });

  it('takes lists, another claim and other limits', () => {
    const jwt = loadConfig({
      ...JWT,
      UPSHIFT_JWT_ISSUER: 'https://a.example/, https://b.example/',
      UPSHIFT_JWT_AUDIENCE: 'api,upshift',
      UPSHIFT_JWT_ALGORITHMS: 'PS256, EdDSA,PS256',
      UPSHIFT_JWT_ORG_CLAIM: 'https://upshift.dev/org',
      UPSHIFT_JWT_CLOCK_TOLERANCE_SECONDS: '0',
      UPSHIFT_JWT_JWKS_COOLDOWN_MS: '0',
    }).auth.jwt;
    expect(jwt).toMatchObject({
      issuers: ['https://a.example/', 'https://b.example/'],
      audiences: ['api', 'upshift'],
      algorithms: ['PS256', 'EdDSA'],
      orgClaim: 'https://upshift.dev/org',
      clockToleranceSeconds: 0,
      jwksCooldownMs: 0,
    });
  });

  it('binds to a public address without any acknowledgement', () => {
    expect(loadConfig({ ...JWT, UPSHIFT_HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
  });

  it('allows plain http for the JWKS only on a loopback host', () => {
    for (const url of ['http://127.0.0.1:9999/jwks', 'http://localhost/jwks', 'http://[::1]:8443/jwks']) {
      expect(loadConfig({ ...JWT, UPSHIFT_JWT_JWKS_URL: url }).auth.jwt?.jwksUrl).toBe(new URL(url).href);
    }
  });

  it('leaves the JWT keys alone in the other modes', () => {
    const c = loadConfig({ UPSHIFT_AUTH_MODE: 'api-key', UPSHIFT_JWT_ALGORITHMS: 'HS256', UPSHIFT_JWT_JWKS_URL: 'nonsense' });
    expect(c.auth.jwt).toBeNull();
  });

  const cases: [string, Record<string, string>, string][] = [
    ['no JWKS URL', { UPSHIFT_JWT_JWKS_URL: '' }, 'required with UPSHIFT_AUTH_MODE=jwt'],
    ['a JWKS URL that is no URL', { UPSHIFT_JWT_JWKS_URL: 'idp.example.com/jwks' }, 'an https:// URL'],
    ['a JWKS over plain http to another host', { UPSHIFT_JWT_JWKS_URL: 'http://idp.example.com/jwks' }, 'http:// only for a loopback host'],
    ['a JWKS URL with credentials', { UPSHIFT_JWT_JWKS_URL: 'https://u:hunter2@idp.example.com/jwks' }, 'without credentials'],
    ['no issuer', { UPSHIFT_JWT_ISSUER: ' ' }, 'the accepted token issuer(s)'],
    ['no audience', { UPSHIFT_JWT_AUDIENCE: '' }, 'the accepted token audience(s)'],
    ['HS256', { UPSHIFT_JWT_ALGORITHMS: 'RS256,HS256' }, 'never none or HS*'],
    ['none', { UPSHIFT_JWT_ALGORITHMS: 'none' }, 'never none or HS*'],
    ['an empty algorithm list', { UPSHIFT_JWT_ALGORITHMS: ',' }, 'asymmetric algorithms'],
    ['a lower-case algorithm', { UPSHIFT_JWT_ALGORITHMS: 'rs256' }, 'asymmetric algorithms'],
    ['a tolerance over 5 minutes', { UPSHIFT_JWT_CLOCK_TOLERANCE_SECONDS: '301' }, 'an integer in [0, 300]'],
    ['an empty org claim', { UPSHIFT_JWT_ORG_CLAIM: '' }, 'a claim name'],
    ['an org claim with a space', { UPSHIFT_JWT_ORG_CLAIM: 'org id' }, 'a claim name'],
    ['a JWKS timeout of 0', { UPSHIFT_JWT_JWKS_TIMEOUT_MS: '0' }, 'an integer in [100, 60000]'],
    ['a cache max age below a second', { UPSHIFT_JWT_JWKS_CACHE_MAX_AGE_MS: '10' }, 'an integer in [1000, 86400000]'],
  ];
  for (const [what, env, rule] of cases) {
    it(`refuses ${what} at load, naming the key`, () => {
      const e = invalid({ ...JWT, ...env });
      const key = Object.keys(env)[0] as string;
      expect(e.details?.key).toBe(key);
      expect(e.message).toContain(key);
      expect(e.message).toContain(rule);
      expect(e.message).not.toContain('hunter2');
    });
  }
});

describe('the result', () => {
  it('is frozen all the way down', () => {
    const c = loadConfig({ UPSHIFT_ORG_WEIGHTS: 'acme=2', UPSHIFT_ANALYZERS: './a.js' });
    expect(Object.isFrozen(c)).toBe(true);
    for (const part of [c.database, c.auth, c.worker, c.fairness, c.fairness.weights, c.fairness.maxRunning, c.http, c.analyzerModules]) {
      expect(Object.isFrozen(part)).toBe(true);
    }
    expect(() => {
      (c as { port: number }).port = 1;
    }).toThrow(TypeError);
  });
});

describe('CLI flags → overrides', () => {
  it('maps flags to keys and booleans to "true"', () => {
    expect(configOverrides({ port: '9000', allowTrustedHeaderOnPublicBind: true, concurrency: '2' }, {})).toEqual({
      UPSHIFT_PORT: '9000',
      UPSHIFT_ALLOW_TRUSTED_HEADER_ON_PUBLIC_BIND: 'true',
      UPSHIFT_WORKER_CONCURRENCY: '2',
    });
  });

  it('places the SQLite file in the data directory unless a database is named', () => {
    expect(configOverrides({ dataDir: '/srv/up' }, {}).UPSHIFT_DATABASE_URL).toBe('sqlite:/srv/up/upshift.db');
    expect(configOverrides({}, { UPSHIFT_DATA_DIR: '/srv/env' }).UPSHIFT_DATABASE_URL).toBe('sqlite:/srv/env/upshift.db');
    expect(configOverrides({ dataDir: '/srv/up', database: 'sqlite:/x.db' }, {}).UPSHIFT_DATABASE_URL).toBe('sqlite:/x.db');
    expect(configOverrides({ dataDir: '/srv/up' }, { UPSHIFT_DATABASE_URL: 'sqlite:/y.db' }).UPSHIFT_DATABASE_URL).toBeUndefined();
  });
});

describe('UPSHIFT_SQLITE_WRITER, UPSHIFT_STARTUP_TIMEOUT_MS, UPSHIFT_FEATURE_FLAGS', () => {
  it('auto picks the writer thread for a process that answers HTTP or has 4+ CPUs; thread and inline are taken as given; anything else is refused', () => {
    expect(loadConfig({}).sqliteWriter).toBe('auto');
    expect(resolveSqliteWriter('auto', { servesHttp: true, cpus: 2 })).toBe('thread');
    expect(resolveSqliteWriter('auto', { servesHttp: false, cpus: 2 })).toBe('inline');
    expect(resolveSqliteWriter('auto', { servesHttp: false, cpus: 4 })).toBe('thread');
    expect(resolveSqliteWriter('auto', { servesHttp: false })).toBe(availableParallelism() >= 4 ? 'thread' : 'inline');
    for (const mode of ['thread', 'inline'] as const) {
      expect(loadConfig({ UPSHIFT_SQLITE_WRITER: mode }).sqliteWriter).toBe(mode);
      expect(resolveSqliteWriter(mode, { servesHttp: true, cpus: 2 })).toBe(mode);
      expect(resolveSqliteWriter(mode, { servesHttp: false, cpus: 8 })).toBe(mode);
    }
    expect(invalid({ UPSHIFT_SQLITE_WRITER: 'threads' }).message).toMatch(/UPSHIFT_SQLITE_WRITER/);
  });

  it('UPSHIFT_STARTUP_TIMEOUT_MS is a bounded integer', () => {
    expect(loadConfig({}).startupTimeoutMs).toBe(30_000);
    expect(loadConfig({ UPSHIFT_STARTUP_TIMEOUT_MS: '0' }).startupTimeoutMs).toBe(0);
    expect(invalid({ UPSHIFT_STARTUP_TIMEOUT_MS: '-1' }).message).toMatch(/UPSHIFT_STARTUP_TIMEOUT_MS/);
  });

  it('UPSHIFT_FEATURE_FLAGS is parsed and validated at load', () => {
    expect(loadConfig({}).featureFlags).toEqual({ rules: {}, file: null });
    expect(loadConfig({ UPSHIFT_FEATURE_FLAGS: '{"legacy_async_default":{"enabled":true,"percentage":5}}' }).featureFlags.rules).toEqual({
      legacy_async_default: { enabled: true, percentage: 5, tenantsOn: [], tenantsOff: [] },
    });
    expect(invalid({ UPSHIFT_FEATURE_FLAGS: '{"nope":{"enabled":true}}' }).message).toMatch(/unknown flag/);
  });
});
