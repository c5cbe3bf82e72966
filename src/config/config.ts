import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { UpshiftError } from '../core/errors.js';
import { parseFeatureFlags, type FeatureFlags } from '../core/featureFlags.js';

/**
 * The one validated, frozen configuration. Only this module reads process.env; every other
 * component receives its slice as arguments. docs/configuration.md lists every key.
 */
export interface Config {
  readonly host: string;
  readonly port: number;
  /** `upshift worker` only: port of its /health and /ready listener; 0 = none. */
  readonly healthPort: number;
  readonly database: { readonly kind: 'sqlite'; readonly file: string } | { readonly kind: 'postgres'; readonly url: string; readonly schema: string };
  /** How long `serve`/`api`/`worker` retry an unavailable store at startup before giving up. */
  readonly startupTimeoutMs: number;
  /**
   * Where the SQLite store's writes run (sqliteWriter.ts). `auto` is resolved when the store is
   * created (resolveSqliteWriter): it depends on whether the process answers HTTP.
   */
  readonly sqliteWriter: 'auto' | 'thread' | 'inline';
  /**
   * How workers learn which jobs to claim (docs/scale-mode.md): `store` claims straight from the
   * store; `bullmq` relays a PostgreSQL outbox to BullMQ on Redis. Resolved from `auto` at load.
   */
  readonly dispatch: {
    readonly mode: 'store' | 'bullmq';
    readonly redisUrl: string | null;
    readonly sweepMs: number;
    readonly sweepGraceMs: number;
    /**
     * How old an outbox row of a first attempt must be before the relay takes it: the submitting
     * process publishes those itself right after its commit, the relay is their fallback.
     */
    readonly relayGraceMs: number;
  };
  readonly dataDir: string;
  readonly auth: {
    readonly mode: 'trusted-header' | 'api-key' | 'jwt';
    readonly allowTrustedHeaderOnPublicBind: boolean;
    /** Bearer JWT verification; set exactly when mode is `jwt`. */
    readonly jwt: JwtAuthConfig | null;
  };
  readonly worker: {
    readonly enabled: boolean;
    readonly concurrency: number;
    /** Claimed jobs held beyond `concurrency`, waiting for a slot (store dispatch only); `auto`: WorkerRuntime decides. */
    readonly prefetch: number | 'auto';
    readonly leaseMs: number;
    readonly heartbeatMs: number;
    readonly pollMs: number;
    readonly cancelGraceMs: number;
    readonly jobTimeoutMs: number;
    readonly maxAttempts: number;
    readonly backoffBaseMs: number;
    readonly backoffMaxMs: number;
    readonly shutdownGraceMs: number;
  };
  readonly fairness: {
    readonly weights: Readonly<Record<string, number>>;
    readonly maxRunning: Readonly<Record<string, number>>;
    readonly defaultMaxRunning: number;
  };
  readonly http: {
    readonly bodyLimitBytes: number;
    readonly uploadLimitBytes: number;
    readonly syncTimeoutMs: number;
    readonly sseHeartbeatMs: number;
    readonly rateLimitPerMinute: number;
    /** Serve the web UI under /ui/ (docs/ui.md). */
    readonly uiEnabled: boolean;
  };
  /** Scheduled retention inside the server (SPEC §4.2); `upshift retention` takes flags instead. */
  readonly retention: {
    /** 0 = no scheduled runs. */
    readonly intervalMs: number;
    readonly resultsTtlSeconds: number;
    readonly eventsTtlSeconds: number;
    /** null (key empty): in-app notifications and the webhook delivery log are kept. */
    readonly notificationsTtlSeconds: number | null;
    readonly batchSize: number;
    readonly maxRowsPerBatch: number;
    readonly pauseMs: number;
  };
  /** Notification delivery (SPEC §4.1): the dispatcher of this process, rate limits, webhooks. */
  readonly notifications: {
    readonly enabled: boolean;
    readonly pollMs: number;
    /** Deliveries per minute per org and channel kind; 0 = unlimited. Over the limit: delayed. */
    readonly inAppPerMinute: number;
    readonly webhookPerMinute: number;
    readonly webhook: {
      readonly timeoutMs: number;
      readonly retryPeriodMs: number;
      readonly backoffBaseMs: number;
      readonly backoffMaxMs: number;
      readonly concurrency: number;
      readonly allowPrivate: boolean;
    };
  };
  /** Read-model runners (docs/projections.md): run in processes with workers, poll fallback. */
  readonly projections: { readonly enabled: boolean; readonly pollMs: number; readonly batchSize: number };
  readonly analyzerModules: readonly string[];
  /**
   * Feature flags (core/featureFlags.ts): the rules of UPSHIFT_FEATURE_FLAGS (validated here), or
   * a file read at startup and re-read on change, which wins when set.
   */
  readonly featureFlags: { readonly rules: FeatureFlags; readonly file: string | null };
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** OpenTelemetry traces: on when enabled and an OTLP endpoint is set (docs/configuration.md). */
  readonly tracing: { readonly enabled: boolean; readonly otlpEndpoint: string | null; readonly serviceName: string };
}

/** `UPSHIFT_AUTH_MODE=jwt` (docs/api.md#jwt-mode): tokens signed by an identity provider, keys from its JWKS. */
export interface JwtAuthConfig {
  readonly jwksUrl: string;
  /** Accepted `iss` values (one of them must match exactly). */
  readonly issuers: readonly string[];
  /** Accepted `aud` values (the token must name at least one). */
  readonly audiences: readonly string[];
  /** Accepted `alg` values: asymmetric signatures only. */
  readonly algorithms: readonly JwtAlgorithm[];
  readonly clockToleranceSeconds: number;
  /** Name of the claim holding the org id (taken literally: `https://example.com/org` is one claim). */
  readonly orgClaim: string;
  readonly jwksCacheMaxAgeMs: number;
  readonly jwksCooldownMs: number;
  readonly jwksTimeoutMs: number;
}

/**
 * Signature algorithms a JWKS (public keys) can verify. Never `none` and never HS*: with a
 * public key set an HMAC "secret" would be public too.
 */
export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

export type Env = Readonly<Record<string, string | undefined>>;

/** Every key with its default; docs/configuration.md mirrors this table (a test checks it). */
export const CONFIG_KEYS = {
  UPSHIFT_HOST: '127.0.0.1',
  UPSHIFT_PORT: '8080',
  UPSHIFT_HEALTH_PORT: '0',
  UPSHIFT_DATABASE_URL: 'sqlite:./data/upshift.db',
  UPSHIFT_DATABASE_SCHEMA: 'upshift',
  UPSHIFT_SQLITE_WRITER: 'auto',
  UPSHIFT_REDIS_URL: '',
  UPSHIFT_DISPATCH_MODE: 'auto',
  UPSHIFT_DISPATCH_SWEEP_MS: '30000',
  UPSHIFT_DISPATCH_SWEEP_GRACE_MS: '10000',
  UPSHIFT_DISPATCH_RELAY_GRACE_MS: '2000',
  UPSHIFT_DATA_DIR: './data',
  UPSHIFT_AUTH_MODE: 'trusted-header',
  UPSHIFT_ALLOW_TRUSTED_HEADER_ON_PUBLIC_BIND: 'false',
  UPSHIFT_JWT_JWKS_URL: '',
  UPSHIFT_JWT_ISSUER: '',
  UPSHIFT_JWT_AUDIENCE: '',
  UPSHIFT_JWT_ALGORITHMS: 'RS256,ES256',
  UPSHIFT_JWT_ORG_CLAIM: 'org_id',
  UPSHIFT_JWT_CLOCK_TOLERANCE_SECONDS: '30',
  UPSHIFT_JWT_JWKS_CACHE_MAX_AGE_MS: '600000',
  UPSHIFT_JWT_JWKS_COOLDOWN_MS: '30000',
  UPSHIFT_JWT_JWKS_TIMEOUT_MS: '5000',
  UPSHIFT_WORKER_ENABLED: 'true',
  UPSHIFT_WORKER_CONCURRENCY: '16',
  UPSHIFT_WORKER_PREFETCH: 'auto',
  UPSHIFT_LEASE_MS: '30000',
  UPSHIFT_HEARTBEAT_MS: '10000',
  UPSHIFT_POLL_MS: '1000',
  UPSHIFT_CANCEL_GRACE_MS: '5000',
  UPSHIFT_JOB_TIMEOUT_MS: '900000',
  UPSHIFT_MAX_ATTEMPTS: '3',
  UPSHIFT_BACKOFF_BASE_MS: '1000',
  UPSHIFT_BACKOFF_MAX_MS: '300000',
  UPSHIFT_SHUTDOWN_GRACE_MS: '10000',
  UPSHIFT_STARTUP_TIMEOUT_MS: '30000',
  UPSHIFT_ORG_WEIGHTS: '',
  UPSHIFT_ORG_MAX_RUNNING: '',
  UPSHIFT_DEFAULT_ORG_MAX_RUNNING: '0',
  UPSHIFT_BODY_LIMIT_BYTES: '1048576',
  UPSHIFT_UPLOAD_LIMIT_BYTES: '1073741824',
  UPSHIFT_SYNC_TIMEOUT_MS: '60000',
  UPSHIFT_SSE_HEARTBEAT_MS: '15000',
  UPSHIFT_RATE_LIMIT_PER_MINUTE: '0',
  UPSHIFT_UI_ENABLED: 'true',
  UPSHIFT_RETENTION_INTERVAL_MS: '0',
  UPSHIFT_RETENTION_RESULTS_TTL_SECONDS: '604800',
  UPSHIFT_RETENTION_EVENTS_TTL_SECONDS: '259200',
  UPSHIFT_RETENTION_NOTIFICATIONS_TTL_SECONDS: '',
  UPSHIFT_RETENTION_BATCH_SIZE: '200',
  UPSHIFT_RETENTION_MAX_ROWS_PER_BATCH: '250',
  UPSHIFT_RETENTION_PAUSE_MS: '5',
  UPSHIFT_NOTIFICATIONS_ENABLED: 'true',
  UPSHIFT_PROJECTIONS_ENABLED: 'false',
  UPSHIFT_PROJECTIONS_POLL_MS: '1000',
  UPSHIFT_PROJECTIONS_BATCH_SIZE: '500',
  UPSHIFT_NOTIFICATIONS_POLL_MS: '1000',
  UPSHIFT_NOTIFICATIONS_IN_APP_RATE_PER_MINUTE: '0',
  UPSHIFT_NOTIFICATIONS_WEBHOOK_RATE_PER_MINUTE: '0',
  UPSHIFT_WEBHOOK_TIMEOUT_MS: '10000',
  UPSHIFT_WEBHOOK_RETRY_PERIOD_MS: '86400000',
  UPSHIFT_WEBHOOK_BACKOFF_BASE_MS: '5000',
  UPSHIFT_WEBHOOK_BACKOFF_MAX_MS: '3600000',
  UPSHIFT_WEBHOOK_CONCURRENCY: '32',
  UPSHIFT_WEBHOOK_ALLOW_PRIVATE: 'false',
  UPSHIFT_ANALYZERS: '',
  UPSHIFT_FEATURE_FLAGS: '',
  UPSHIFT_FEATURE_FLAGS_FILE: '',
  UPSHIFT_LOG_LEVEL: 'info',
  UPSHIFT_OTEL_ENABLED: 'true',
  // The standard OpenTelemetry names, so collectors and platforms configure Upshift as usual.
  OTEL_EXPORTER_OTLP_ENDPOINT: '',
  OTEL_SERVICE_NAME: 'upshift',
} as const;

export type ConfigKey = keyof typeof CONFIG_KEYS;

export function loadConfig(env: Env = process.env, overrides: Partial<Record<ConfigKey, string>> = {}): Config {
  const get = (k: ConfigKey): string => overrides[k] ?? env[k] ?? CONFIG_KEYS[k];
  const int = (k: ConfigKey, min: number, max: number, rule = `an integer in [${min}, ${max}]`): number => {
    const raw = get(k).trim();
    const n = Number(raw);
    if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) fail(k, raw, rule);
    return n;
  };
  const bool = (k: ConfigKey): boolean => {
    const raw = get(k).trim().toLowerCase();
    if (raw === 'true' || raw === '1' || raw === 'yes') return true;
    if (raw === 'false' || raw === '0' || raw === 'no' || raw === '') return false;
    return fail(k, raw, 'true or false');
  };
  const oneOf = <T extends string>(k: ConfigKey, allowed: readonly T[]): T => {
    const raw = get(k).trim();
    if (!(allowed as readonly string[]).includes(raw)) fail(k, raw, `one of ${allowed.join(', ')}`);
    return raw as T;
  };
  const orgMap = (k: ConfigKey): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const part of get(k).split(',').map((s) => s.trim()).filter(Boolean)) {
      const m = /^([A-Za-z0-9][A-Za-z0-9._:-]{0,63})=(\d+(?:\.\d+)?)$/.exec(part);
      if (!m || Number(m[2]) <= 0) fail(k, part, 'comma-separated org=number pairs with number > 0');
      out[m[1] as string] = Number(m[2]);
    }
    return out;
  };

  const list = (k: ConfigKey): string[] => get(k).split(',').map((s) => s.trim()).filter(Boolean);
  // The JWT keys are checked only in jwt mode: elsewhere they are not used.
  const jwt = (): JwtAuthConfig => {
    const jwksUrl = get('UPSHIFT_JWT_JWKS_URL').trim();
    if (jwksUrl === '') fail('UPSHIFT_JWT_JWKS_URL', jwksUrl, 'the URL of the identity provider\'s JSON Web Key Set (required with UPSHIFT_AUTH_MODE=jwt)');
    let url: URL | null = null;
    try {
      url = new URL(jwksUrl);
    } catch {
      // reported below
    }
    // Keys fetched over plain HTTP could be swapped on the way: only on this machine.
    if (!url || url.username !== '' || url.password !== '' || !(url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname)))) {
      fail('UPSHIFT_JWT_JWKS_URL', jwksUrl.replace(/\/\/[^@/]*@/, '//***@'), 'an https:// URL without credentials (http:// only for a loopback host)');
    }
    const issuers = list('UPSHIFT_JWT_ISSUER');
    if (issuers.length === 0) fail('UPSHIFT_JWT_ISSUER', get('UPSHIFT_JWT_ISSUER'), 'the accepted token issuer(s), comma-separated (required with UPSHIFT_AUTH_MODE=jwt)');
    const audiences = list('UPSHIFT_JWT_AUDIENCE');
    if (audiences.length === 0) fail('UPSHIFT_JWT_AUDIENCE', get('UPSHIFT_JWT_AUDIENCE'), 'the accepted token audience(s), comma-separated (required with UPSHIFT_AUTH_MODE=jwt)');
    const algorithms = list('UPSHIFT_JWT_ALGORITHMS');
    const bad = algorithms.find((a) => !(JWT_ALGORITHMS as readonly string[]).includes(a));
    if (algorithms.length === 0 || bad !== undefined) {
      fail('UPSHIFT_JWT_ALGORITHMS', bad ?? get('UPSHIFT_JWT_ALGORITHMS'), `comma-separated asymmetric algorithms from ${JWT_ALGORITHMS.join(', ')} (never none or HS*)`);
    }
    const orgClaim = get('UPSHIFT_JWT_ORG_CLAIM').trim();
    if (!/^[^\s,]{1,256}$/.test(orgClaim)) fail('UPSHIFT_JWT_ORG_CLAIM', orgClaim, 'a claim name (1-256 characters, no spaces or commas)');
    return {
      jwksUrl: url.href,
      issuers,
      audiences,
      algorithms: [...new Set(algorithms)] as JwtAlgorithm[],
      clockToleranceSeconds: int('UPSHIFT_JWT_CLOCK_TOLERANCE_SECONDS', 0, 300),
      orgClaim,
      jwksCacheMaxAgeMs: int('UPSHIFT_JWT_JWKS_CACHE_MAX_AGE_MS', 1000, 86_400_000),
      jwksCooldownMs: int('UPSHIFT_JWT_JWKS_COOLDOWN_MS', 0, 3_600_000),
      jwksTimeoutMs: int('UPSHIFT_JWT_JWKS_TIMEOUT_MS', 100, 60_000),
    };
  };

  const authMode = oneOf('UPSHIFT_AUTH_MODE', ['trusted-header', 'api-key', 'jwt'] as const);
  const port = int('UPSHIFT_PORT', 0, 65535);
  const host = get('UPSHIFT_HOST').trim();
  if (host === '') fail('UPSHIFT_HOST', host, 'a host name or address');
  const leaseMs = int('UPSHIFT_LEASE_MS', 500, 3_600_000);
  const heartbeatMs = int('UPSHIFT_HEARTBEAT_MS', 50, 3_600_000);
  if (heartbeatMs >= leaseMs) fail('UPSHIFT_HEARTBEAT_MS', String(heartbeatMs), `less than UPSHIFT_LEASE_MS (${leaseMs})`);
  const dataDir = resolve(get('UPSHIFT_DATA_DIR'));
  const database = parseDatabaseUrl(get('UPSHIFT_DATABASE_URL').trim(), get('UPSHIFT_DATABASE_SCHEMA').trim());
  const dispatch = parseDispatch(oneOf('UPSHIFT_DISPATCH_MODE', ['auto', 'store', 'bullmq'] as const), get('UPSHIFT_REDIS_URL').trim(), database.kind, {
    sweepMs: int('UPSHIFT_DISPATCH_SWEEP_MS', 0, 86_400_000),
    sweepGraceMs: int('UPSHIFT_DISPATCH_SWEEP_GRACE_MS', 0, 86_400_000),
    relayGraceMs: int('UPSHIFT_DISPATCH_RELAY_GRACE_MS', 0, 3_600_000),
  });

  const cfg: Config = {
    host,
    port,
    healthPort: int('UPSHIFT_HEALTH_PORT', 0, 65535),
    database,
    startupTimeoutMs: int('UPSHIFT_STARTUP_TIMEOUT_MS', 0, 3_600_000),
    sqliteWriter: oneOf('UPSHIFT_SQLITE_WRITER', ['auto', 'thread', 'inline'] as const),
    dispatch,
    dataDir,
    auth: {
      mode: authMode,
      allowTrustedHeaderOnPublicBind: bool('UPSHIFT_ALLOW_TRUSTED_HEADER_ON_PUBLIC_BIND'),
      jwt: authMode === 'jwt' ? jwt() : null,
    },
    worker: {
      enabled: bool('UPSHIFT_WORKER_ENABLED'),
      concurrency: int('UPSHIFT_WORKER_CONCURRENCY', 1, 10_000),
      prefetch: get('UPSHIFT_WORKER_PREFETCH').trim() === 'auto' ? 'auto' : int('UPSHIFT_WORKER_PREFETCH', 0, 10_000, 'auto or an integer in [0, 10000]'),
      leaseMs,
      heartbeatMs,
      pollMs: int('UPSHIFT_POLL_MS', 10, 600_000),
      cancelGraceMs: int('UPSHIFT_CANCEL_GRACE_MS', 0, 600_000),
      jobTimeoutMs: int('UPSHIFT_JOB_TIMEOUT_MS', 100, 86_400_000),
      maxAttempts: int('UPSHIFT_MAX_ATTEMPTS', 1, 1000),
      backoffBaseMs: int('UPSHIFT_BACKOFF_BASE_MS', 0, 86_400_000),
      backoffMaxMs: int('UPSHIFT_BACKOFF_MAX_MS', 0, 86_400_000),
      shutdownGraceMs: int('UPSHIFT_SHUTDOWN_GRACE_MS', 0, 3_600_000),
    },
    fairness: {
      weights: orgMap('UPSHIFT_ORG_WEIGHTS'),
      maxRunning: orgMap('UPSHIFT_ORG_MAX_RUNNING'),
      defaultMaxRunning: int('UPSHIFT_DEFAULT_ORG_MAX_RUNNING', 0, 1_000_000),
    },
    http: {
      bodyLimitBytes: int('UPSHIFT_BODY_LIMIT_BYTES', 1024, 1024 ** 3),
      uploadLimitBytes: int('UPSHIFT_UPLOAD_LIMIT_BYTES', 1024, 1024 ** 4),
      syncTimeoutMs: int('UPSHIFT_SYNC_TIMEOUT_MS', 100, 86_400_000),
      sseHeartbeatMs: int('UPSHIFT_SSE_HEARTBEAT_MS', 100, 600_000),
      rateLimitPerMinute: int('UPSHIFT_RATE_LIMIT_PER_MINUTE', 0, 100_000_000),
      uiEnabled: bool('UPSHIFT_UI_ENABLED'),
    },
    retention: {
      intervalMs: int('UPSHIFT_RETENTION_INTERVAL_MS', 0, 31_536_000_000),
      resultsTtlSeconds: int('UPSHIFT_RETENTION_RESULTS_TTL_SECONDS', 0, 3_153_600_000),
      eventsTtlSeconds: int('UPSHIFT_RETENTION_EVENTS_TTL_SECONDS', 0, 3_153_600_000),
      // Empty: inbox entries and the webhook delivery log are kept.
      notificationsTtlSeconds: get('UPSHIFT_RETENTION_NOTIFICATIONS_TTL_SECONDS').trim() === '' ? null : int('UPSHIFT_RETENTION_NOTIFICATIONS_TTL_SECONDS', 0, 3_153_600_000),
      batchSize: int('UPSHIFT_RETENTION_BATCH_SIZE', 1, 100_000),
      maxRowsPerBatch: int('UPSHIFT_RETENTION_MAX_ROWS_PER_BATCH', 1, 1_000_000),
      pauseMs: int('UPSHIFT_RETENTION_PAUSE_MS', 0, 60_000),
    },
    notifications: {
      enabled: bool('UPSHIFT_NOTIFICATIONS_ENABLED'),
      pollMs: int('UPSHIFT_NOTIFICATIONS_POLL_MS', 10, 600_000),
      inAppPerMinute: int('UPSHIFT_NOTIFICATIONS_IN_APP_RATE_PER_MINUTE', 0, 100_000_000),
      webhookPerMinute: int('UPSHIFT_NOTIFICATIONS_WEBHOOK_RATE_PER_MINUTE', 0, 100_000_000),
      webhook: {
        timeoutMs: int('UPSHIFT_WEBHOOK_TIMEOUT_MS', 100, 600_000),
        retryPeriodMs: int('UPSHIFT_WEBHOOK_RETRY_PERIOD_MS', 0, 31_536_000_000),
        backoffBaseMs: int('UPSHIFT_WEBHOOK_BACKOFF_BASE_MS', 1, 86_400_000),
        backoffMaxMs: int('UPSHIFT_WEBHOOK_BACKOFF_MAX_MS', 1, 86_400_000),
        concurrency: int('UPSHIFT_WEBHOOK_CONCURRENCY', 1, 10_000),
        allowPrivate: bool('UPSHIFT_WEBHOOK_ALLOW_PRIVATE'),
      },
    },
    projections: {
      enabled: bool('UPSHIFT_PROJECTIONS_ENABLED'),
      pollMs: int('UPSHIFT_PROJECTIONS_POLL_MS', 10, 600_000),
      batchSize: int('UPSHIFT_PROJECTIONS_BATCH_SIZE', 1, 100_000),
    },
    featureFlags: {
      rules: parseFeatureFlags(get('UPSHIFT_FEATURE_FLAGS'), 'UPSHIFT_FEATURE_FLAGS'),
      file: get('UPSHIFT_FEATURE_FLAGS_FILE').trim() === '' ? null : resolve(get('UPSHIFT_FEATURE_FLAGS_FILE').trim()),
    },
    analyzerModules: get('UPSHIFT_ANALYZERS').split(',').map((s) => s.trim()).filter(Boolean).map((p) => resolve(p)),
    logLevel: oneOf('UPSHIFT_LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
    tracing: parseTracing(bool('UPSHIFT_OTEL_ENABLED'), get('OTEL_EXPORTER_OTLP_ENDPOINT').trim(), get('OTEL_SERVICE_NAME').trim()),
  };
  if (cfg.auth.mode === 'trusted-header' && !isLoopback(cfg.host) && !cfg.auth.allowTrustedHeaderOnPublicBind) {
    fail('UPSHIFT_HOST', host, 'a loopback address while UPSHIFT_AUTH_MODE=trusted-header (set UPSHIFT_ALLOW_TRUSTED_HEADER_ON_PUBLIC_BIND=true behind a gateway that sets the tenant header)');
  }
  return deepFreeze(cfg);
}

export function parseDatabaseUrl(raw: string, schema = 'upshift'): Config['database'] {
  if (raw.startsWith('sqlite:')) {
    const path = raw.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '') fail('UPSHIFT_DATABASE_URL', raw, 'sqlite:<path>');
    return { kind: 'sqlite', file: path === ':memory:' ? path : resolve(path) };
  }
  if (/^postgres(ql)?:\/\//.test(raw)) {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) fail('UPSHIFT_DATABASE_SCHEMA', schema, 'a lower-case PostgreSQL identifier ([a-z_][a-z0-9_]*, at most 63 characters)');
    return { kind: 'postgres', url: raw, schema };
  }
  return fail('UPSHIFT_DATABASE_URL', raw.replace(/\/\/[^@/]*@/, '//***@'), 'sqlite:<path> or postgres://…');
}

function parseDispatch(
  mode: 'auto' | 'store' | 'bullmq',
  redisUrl: string,
  db: Config['database']['kind'],
  sweep: { sweepMs: number; sweepGraceMs: number; relayGraceMs: number },
): Config['dispatch'] {
  if (redisUrl !== '' && !/^rediss?:\/\/[^/\s]/.test(redisUrl)) fail('UPSHIFT_REDIS_URL', redisUrl.replace(/\/\/[^@/]*@/, '//***@'), 'redis://[user:password@]host:port[/db] or rediss://…');
  const resolved = mode === 'auto' ? (redisUrl !== '' && db === 'postgres' ? 'bullmq' : 'store') : mode;
  if (resolved === 'bullmq' && redisUrl === '') fail('UPSHIFT_DISPATCH_MODE', mode, 'store, or bullmq together with UPSHIFT_REDIS_URL');
  if (resolved === 'bullmq' && db !== 'postgres') fail('UPSHIFT_DISPATCH_MODE', mode, 'store with an embedded (sqlite:) database: BullMQ dispatch needs UPSHIFT_DATABASE_URL=postgres://…');
  return { mode: resolved, redisUrl: redisUrl === '' ? null : redisUrl, ...sweep };
}

function parseTracing(enabled: boolean, endpoint: string, serviceName: string): Config['tracing'] {
  if (endpoint !== '') {
    let url: URL | null = null;
    try {
      url = new URL(endpoint);
    } catch {
      // reported below
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) fail('OTEL_EXPORTER_OTLP_ENDPOINT', endpoint, 'an http(s) URL, e.g. http://collector:4318');
  }
  if (serviceName === '') fail('OTEL_SERVICE_NAME', serviceName, 'a non-empty service name');
  return { enabled: enabled && endpoint !== '', otlpEndpoint: endpoint === '' ? null : endpoint, serviceName };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function fail(key: string, value: string, rule: string): never {
  throw new UpshiftError('CONFIG_INVALID', `${key}=${JSON.stringify(value)} is invalid: expected ${rule}`, { details: { key } });
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/**
 * `auto` for UPSHIFT_SQLITE_WRITER (docs/configuration.md): the writer thread when the process
 * answers HTTP — a write batch on the event loop would hold every request queued behind it
 * (measured: GET p99 while processing ~10 ms inline vs ~5 ms with the thread on 2 cores) — or
 * when there are 4+ CPUs for it; otherwise (a headless worker, the CLI, the library on a small
 * machine) in-thread, where the thread's hand-offs would cost more than its parallelism gains.
 */
export function resolveSqliteWriter(mode: Config['sqliteWriter'], role: { readonly servesHttp: boolean; readonly cpus?: number }): 'thread' | 'inline' {
  if (mode !== 'auto') return mode;
  return role.servesHttp || (role.cpus ?? availableParallelism()) >= 4 ? 'thread' : 'inline';
}
