import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

/**
 * A stand-in identity provider for the jwt auth mode: real key pairs (jose generateKeyPair)
 * and a real JWKS endpoint on a loopback port that can rotate its keys, answer errors, go
 * down and come back on the same port.
 */

export interface TestKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export async function testKey(kid: string, alg = 'RS256'): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export interface JwksServer {
  /** The JWKS URL (http://127.0.0.1:<port>/.well-known/jwks.json). */
  readonly url: string;
  /** Successful JWKS answers served so far. */
  readonly fetches: number;
  /** What the endpoint publishes from now on. */
  setKeys(keys: readonly TestKey[]): void;
  /** Answer this status (and no key set) instead of 200; null = back to normal. */
  failWith(status: number | null): void;
  /** Stop listening (connections refused) / listen again on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startJwksServer(keys: readonly TestKey[]): Promise<JwksServer> {
  let published = keys.map((k) => k.publicJwk);
  let failure: number | null = null;
  let fetches = 0;
  let server: Server | null = null;
  let port = 0;
  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = createServer((req, res) => {
        if (req.url !== '/.well-known/jwks.json') {
          res.writeHead(404).end();
          return;
        }
        if (failure !== null) {
          res.writeHead(failure, { 'content-type': 'text/plain' }).end('idp trouble');
          return;
        }
        fetches++;
        res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: published }));
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as AddressInfo).port;
        server = s;
        resolve();
      });
    });
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      const s = server;
      server = null;
      if (!s) return resolve();
      s.close(() => resolve());
      s.closeAllConnections();
    });
  await listen();
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    get fetches() {
      return fetches;
    },
    setKeys(next) {
      published = next.map((k) => k.publicJwk);
    },
    failWith(status) {
      failure = status;
    },
    stop,
    start: listen,
    close: stop,
  };
}

export const ISSUER = 'https://idp.upshift.test/';
export const AUDIENCE = 'upshift-api';

/**
 * A signed JWT with sensible claims (iss, aud, sub, org_id, iat, exp = now + 5 min) and `kid`;
 * `claims` entries override them, an `undefined` entry removes the claim.
 */
export async function signToken(
  key: TestKey,
  claims: Record<string, unknown> = {},
  opts: { alg?: string; kid?: string | null; signWith?: CryptoKey | Uint8Array } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = { iss: ISSUER, aud: AUDIENCE, sub: 'user-1', org_id: 'acme', iat: now, exp: now + 300, ...claims };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  const kid = opts.kid === undefined ? key.kid : opts.kid;
  return new SignJWT(payload).setProtectedHeader({ alg: opts.alg ?? key.alg, ...(kid !== null && { kid }) }).sign(opts.signWith ?? key.privateKey);
}
