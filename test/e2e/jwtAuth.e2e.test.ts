// UPSHIFT_AUTH_MODE=jwt against the real thing (SPEC §7): a JWKS endpoint on a loopback port
// serving keys made by jose, real Upshift servers in jwt mode over real sockets, tokens signed
// with those keys. Covers the org binding, every rejection, key rotation without restart and
// an identity provider that goes down and comes back.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPinoLogger } from '../../src/adapters/telemetry/pinoLogger.js';
import { asJobId, asOrgId } from '../../src/core/ids.js';
import { AUDIENCE, ISSUER, signToken, startJwksServer, testKey, type JwksServer, type TestKey } from '../helpers/jwks.js';
import { runUpshift } from '../helpers/upshiftCli.js';
import { apiClient, eventually, readSse, startTestServer, type TestServer } from '../helpers/server.js';

const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

function logSink(): { lines: string[]; sink: Writable } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  return { lines, sink };
}

const jwtEnv = (jwks: JwksServer, extra: Record<string, string> = {}) => ({
  UPSHIFT_AUTH_MODE: 'jwt',
  UPSHIFT_JWT_JWKS_URL: jwks.url,
  UPSHIFT_JWT_ISSUER: ISSUER,
  UPSHIFT_JWT_AUDIENCE: `other-api,${AUDIENCE}`,
  ...extra,
});

describe('jwt auth mode', () => {
  let rsa: TestKey;
  let ec: TestKey;
  let rs384: TestKey;
  let jwks: JwksServer;
  let server: TestServer;
  const log = logSink();
  const issued: string[] = [];
  /** Signs and remembers the token, so the log check can look for every one of them. */
  const token = async (...args: Parameters<typeof signToken>): Promise<string> => {
    const t = await signToken(...args);
    issued.push(t);
    return t;
  };
  const api = () => apiClient(server.url, null);
  const bearer = (t: string, extra: Record<string, string> = {}) => ({ headers: { authorization: `Bearer ${t}`, ...extra } });

  beforeAll(async () => {
    [rsa, ec, rs384] = await Promise.all([testKey('rsa-1', 'RS256'), testKey('ec-1', 'ES256'), testKey('rs384-1', 'RS384')]);
    jwks = await startJwksServer([rsa, ec, rs384]);
    server = await startTestServer(jwtEnv(jwks, { UPSHIFT_JWT_JWKS_COOLDOWN_MS: '300' }), { logger: createPinoLogger('debug', log.sink) });
  });
  afterAll(async () => {
    await server?.close();
    await jwks?.close();
  });

  it('a valid token acts for the org of its claim; another org sees 404', async () => {
    const acme = await token(rsa, { org_id: 'acme' });
    const globex = await token(ec, { org_id: 'globex' });
    const sub = await api()('/analyze/jobs', { body: { analyzer: 'sleep', input: { ms: 1 } }, ...bearer(acme) });
    expect(sub.status).toBe(202);
    const jobId = sub.body.job_id as string;
    // The store filed the job under the claim's org, and only there.
    expect((await server.app.store.getJob(asOrgId('acme'), asJobId(jobId)))?.orgId).toBe('acme');
    expect(await server.app.store.getJob(asOrgId('globex'), asJobId(jobId))).toBeUndefined();

    const done = await eventually(async () => {
      const r = await api()(`/analyze/jobs/${jobId}`, bearer(acme));
      return r.status === 200 && r.body.status === 'completed' ? r : null;
    });
    expect(done.body.job_id).toBe(jobId);
    const other = await api()(`/analyze/jobs/${jobId}`, bearer(globex));
    expect([other.status, other.body.code]).toEqual([404, 'JOB_NOT_FOUND']);
    const list = await api()('/analyze/jobs', bearer(globex));
    expect(list.status).toBe(200);
    expect(list.body.jobs.map((j: { job_id: string }) => j.job_id)).not.toContain(jobId);
    // A tenant header naming the token's own org is fine.
    expect((await api()(`/analyze/jobs/${jobId}`, bearer(acme, { 'x-org-id': 'acme', 'x-tenant-id': 'acme' }))).status).toBe(200);
    // Other tenant routes take the token too.
    expect((await api()('/notifications', bearer(acme))).status).toBe(200);
    expect((await api()(`/analyze/jobs/${jobId}/results`, bearer(acme))).status).toBe(200);
  });

  it('follows the SSE stream with a token, and refuses it without one or for another org', async () => {
    const acme = await token(rsa, { org_id: 'acme' });
    const sub = await api()('/analyze/jobs', { body: { analyzer: 'sleep', input: { ms: 50, steps: 2 } }, ...bearer(acme) });
    expect(sub.status).toBe(202);
    const url = `${server.url}/analyze/jobs/${sub.body.job_id}/stream`;
    const stream = await readSse(url, { authorization: `Bearer ${acme}` });
    expect(stream.status).toBe(200);
    expect(stream.ended).toBe(true);
    expect(stream.events.at(-1)?.event).toBe('job.completed');
    const none = await readSse(url, {});
    expect(none.status).toBe(401);
    expect(JSON.parse(none.raw).code).toBe('AUTH_REQUIRED');
    const other = await readSse(url, { authorization: `Bearer ${await token(rsa, { org_id: 'globex' })}` });
    expect(other.status).toBe(404);
  });

  it('refuses a tenant header that names another org than the claim, like api-key mode (403 TENANT_MISMATCH)', async () => {
    const acme = await token(rsa, { org_id: 'acme' });
    for (const header of ['x-org-id', 'x-tenant-id']) {
      const r = await api()('/analyze/jobs', { body: { analyzer: 'noop', input: 1 }, ...bearer(acme, { [header]: 'globex' }) });
      expect([r.status, r.body.code]).toEqual([403, 'TENANT_MISMATCH']);
    }
    expect((await server.app.service.list(asOrgId('globex'), {})).jobs).toEqual([]);
  });

  it('answers 401 with a stable code and reason for every bad token, never echoing it', async () => {
    const now = Math.floor(Date.now() / 1000);
    const noneAlg = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ iss: ISSUER, aud: AUDIENCE, org_id: 'acme', exp: now + 300 })}.`;
    const good = await token(rsa);
    const [h, p, s] = good.split('.') as [string, string, string];
    const forgedPayload = `${h}.${b64url({ iss: ISSUER, aud: AUDIENCE, org_id: 'globex', exp: now + 300 })}.${s}`;
    const flippedSig = `${h}.${p}.${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
    const cases: [string, string, string, string | null][] = [
      ['expired beyond the tolerance', await token(rsa, { exp: now - 120, iat: now - 600 }), 'AUTH_TOKEN_EXPIRED', null],
      ['not yet valid', await token(rsa, { nbf: now + 120 }), 'AUTH_TOKEN_INVALID', 'not_yet_valid'],
      ['wrong issuer', await token(rsa, { iss: 'https://evil.example/' }), 'AUTH_TOKEN_INVALID', 'issuer'],
      ['wrong audience', await token(rsa, { aud: 'someone-else' }), 'AUTH_TOKEN_INVALID', 'audience'],
      ['no exp', await token(rsa, { exp: undefined }), 'AUTH_TOKEN_INVALID', 'claims'],
      ['payload swapped under a valid signature', forgedPayload, 'AUTH_TOKEN_INVALID', 'signature'],
      ['tampered signature', flippedSig, 'AUTH_TOKEN_INVALID', 'signature'],
      ['signed by a key the JWKS does not vouch for, under its kid', await token(rsa, {}, { signWith: ec.privateKey, alg: 'ES256' }), 'AUTH_TOKEN_INVALID', 'unknown_key'],
      ['HS256 with the kid of a public key', await token(rsa, {}, { alg: 'HS256', signWith: new TextEncoder().encode('x'.repeat(32)) }), 'AUTH_TOKEN_INVALID', 'algorithm_not_allowed'],
      ['an asymmetric alg outside UPSHIFT_JWT_ALGORITHMS', await token(rs384), 'AUTH_TOKEN_INVALID', 'algorithm_not_allowed'],
      ['alg none', noneAlg, 'AUTH_TOKEN_INVALID', 'algorithm_not_allowed'],
      ['no org claim', await token(rsa, { org_id: undefined }), 'AUTH_TOKEN_INVALID', 'org_claim_missing'],
      ['an org claim that is not an org id', await token(rsa, { org_id: 'acme corp!' }), 'AUTH_TOKEN_INVALID', 'org_claim_invalid'],
      ['an org claim that is not a string', await token(rsa, { org_id: ['acme'] }), 'AUTH_TOKEN_INVALID', 'org_claim_invalid'],
      ['not a JWT at all', 'not-a-jwt', 'AUTH_TOKEN_INVALID', 'malformed'],
    ];
    issued.push(noneAlg, forgedPayload, flippedSig);
    for (const [what, t, code, reason] of cases) {
      const r = await api()('/analyze/jobs', { body: { analyzer: 'noop', input: 1 }, ...bearer(t) });
      expect([what, r.status, r.body.code, r.body.reason ?? null]).toEqual([what, 401, code, reason]);
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
      expect(r.text).not.toContain(t.split('.')[1] || t);
    }
    // A skew within the clock tolerance (default 30 s) is still accepted.
    expect((await api()('/analyze/jobs', bearer(await token(rsa, { exp: now - 5 })))).status).toBe(200);
    // No credential / not a Bearer credential: the codes api-key mode answers.
    const none = await api()('/analyze/jobs', {});
    expect([none.status, none.body.code]).toEqual([401, 'AUTH_REQUIRED']);
    const basic = await api()('/analyze/jobs', { headers: { authorization: 'Basic Zm9vOmJhcg==' } });
    expect([basic.status, basic.body.code]).toEqual([401, 'AUTH_INVALID']);
    // Nothing was submitted for anyone by the rejected requests.
    expect((await server.app.service.list(asOrgId('globex'), {})).jobs).toEqual([]);
  });

  it('caches the key set, and accepts a rotated-in key (unknown kid) without a restart', async () => {
    const before = jwks.fetches;
    for (let i = 0; i < 5; i++) expect((await api()('/analyze/jobs', bearer(await token(ec)))).status).toBe(200);
    expect(jwks.fetches).toBe(before); // cached: no fetch per request

    const next = await testKey('rsa-2', 'RS256');
    const fresh = await token(next, { org_id: 'initech' });
    const unknown = await api()('/analyze/jobs', bearer(fresh));
    expect([unknown.status, unknown.body.code, unknown.body.reason]).toEqual([401, 'AUTH_TOKEN_INVALID', 'unknown_key']);

    // The IdP rotates: rsa-2 in, rsa-1 out. Once the refetch cooldown (300 ms here) has passed,
    // the unknown kid makes Upshift fetch the set again.
    jwks.setKeys([next, ec, rs384]);
    const accepted = await eventually(async () => {
      const r = await api()('/analyze/jobs', { body: { analyzer: 'noop', input: 1 }, ...bearer(fresh) });
      return r.status === 202 ? r : null;
    }, 5000);
    expect((await server.app.store.getJob(asOrgId('initech'), asJobId(accepted.body.job_id as string)))?.orgId).toBe('initech');
    const retired = await api()('/analyze/jobs', bearer(await token(rsa)));
    expect([retired.status, retired.body.reason]).toEqual([401, 'unknown_key']);
    // Back to the first set for the tests after this one, once Upshift has fetched it again.
    jwks.setKeys([rsa, ec, rs384]);
    const back = await token(rsa);
    await eventually(async () => (await api()('/analyze/jobs', bearer(back))).status === 200, 5000);
  });

  it('describes the jwt bearer scheme in the OpenAPI document; ops routes stay open', async () => {
    const doc = await api()('/openapi.json');
    expect(doc.body.security).toEqual([{ jwt: [] }]);
    expect(doc.body.components.securitySchemes.jwt).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    expect((await api()('/health')).status).toBe(200);
  });

  it('the CLI client sends a token from UPSHIFT_TOKEN or --token', async () => {
    const acme = await token(rsa, { org_id: 'acme' });
    const viaEnv = await runUpshift(['jobs', 'submit', 'noop', '--input', '1', '--wait', '--url', server.url], { UPSHIFT_TOKEN: acme });
    expect(viaEnv.stderr).not.toContain(acme);
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    const job = JSON.parse(viaEnv.stdout) as { job_id: string; status: string };
    expect(job.status).toBe('completed');
    expect((await server.app.store.getJob(asOrgId('acme'), asJobId(job.job_id)))?.orgId).toBe('acme');

    const viaFlag = await runUpshift(['jobs', 'get', job.job_id, '--url', server.url, '--token', acme]);
    expect([viaFlag.code, JSON.parse(viaFlag.stdout).job_id]).toEqual([0, job.job_id]);
    const mismatch = await runUpshift(['jobs', 'get', job.job_id, '--url', server.url, '--org', 'globex'], { UPSHIFT_TOKEN: acme });
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(/^TENANT_MISMATCH: /);
    const expired = await runUpshift(['jobs', 'get', job.job_id, '--url', server.url], { UPSHIFT_TOKEN: await token(rsa, { exp: Math.floor(Date.now() / 1000) - 600 }) });
    expect(expired.stderr).toMatch(/^AUTH_TOKEN_EXPIRED: /);
    const both = await runUpshift(['jobs', 'get', job.job_id, '--url', server.url, '--token', acme, '--api-key', 'upk_x']);
    expect(both.code).toBe(2);
  });

  it('never writes a token to the log', () => {
    const text = log.lines.join('\n');
    expect(log.lines.length).toBeGreaterThan(0);
    for (const t of issued) for (const part of t.split('.').filter((x) => x.length > 8)) expect(text).not.toContain(part);
  });
});

describe('jwt auth mode: the identity provider is unreachable', () => {
  let key: TestKey;
  let jwks: JwksServer;
  let server: TestServer;
  const log = logSink();
  const sent: string[] = [];

  beforeAll(async () => {
    key = await testKey('rsa-1');
    jwks = await startJwksServer([key]);
    await jwks.stop(); // Upshift boots while its IdP is down: it must not need it to start.
    server = await startTestServer(jwtEnv(jwks, { UPSHIFT_JWT_JWKS_CACHE_MAX_AGE_MS: '1000' }), { logger: createPinoLogger('info', log.sink) });
  });
  afterAll(async () => {
    await server?.close();
    await jwks?.close();
  });

  const call = async (t: string) => {
    sent.push(t);
    return apiClient(server.url, null)('/analyze/jobs', { headers: { authorization: `Bearer ${t}` } });
  };

  it('answers 503 AUTH_JWKS_UNAVAILABLE (not 500, not 401) while it is down and recovers by itself', async () => {
    const t = await signToken(key);
    const down = await call(t);
    expect([down.status, down.body.code]).toEqual([503, 'AUTH_JWKS_UNAVAILABLE']);
    expect(down.headers.get('retry-after')).toBe('1');
    expect(down.text).not.toContain(t);
    // Right after a failure Upshift answers at once instead of asking the IdP again.
    expect((await call(t)).status).toBe(503);
    expect(jwks.fetches).toBe(0);

    await jwks.start();
    const up = await eventually(async () => {
      const r = await call(t);
      return r.status === 200 ? r : null;
    }, 5000);
    expect(up.status).toBe(200);
    expect(jwks.fetches).toBe(1);
  });

  it('a key set older than its max age that cannot be refetched: 503, then 200 again', async () => {
    const t = await signToken(key);
    expect((await call(t)).status).toBe(200);
    jwks.failWith(500);
    const failing = await eventually(async () => {
      const r = await call(t); // the cache (max age 1 s here) runs out
      return r.status === 503 ? r : null;
    }, 5000);
    expect(failing.body.code).toBe('AUTH_JWKS_UNAVAILABLE');
    jwks.failWith(null);
    await jwks.stop();
    expect((await eventually(async () => ((await call(t)).status === 503 ? true : null), 5000))).toBe(true);
    await jwks.start();
    expect((await eventually(async () => ((await call(t)).status === 200 ? true : null), 5000))).toBe(true);
  });

  it('logs the outage for the operator, without the token', async () => {
    const records = log.lines.map((l) => JSON.parse(l) as { code?: string; err?: { message?: string } });
    const outage = records.filter((r) => r.code === 'AUTH_JWKS_UNAVAILABLE');
    expect(outage.length).toBeGreaterThan(0);
    expect(outage[0]?.err?.message).toContain(jwks.url);
    // Also the answers given without a fetch (right after a failed one) name the real cause.
    for (const r of outage) expect(r.err?.message).toMatch(/ECONNREFUSED|Expected 200 OK/);
    const text = log.lines.join('\n');
    for (const t of new Set(sent)) for (const part of t.split('.').filter((x) => x.length > 8)) expect(text).not.toContain(part);
  });
});
