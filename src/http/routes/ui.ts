import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Config } from '../../config/config.js';
import { UpshiftError } from '../../core/errors.js';

/**
 * The web UI (SPEC §6, docs/ui.md): static HTML/CSS/ES modules from the package's `ui/`
 * folder. The UI is a client of the public HTTP API like any other; this module only serves
 * its files. Every path under /ui/ that is not an asset answers the same HTML shell, so
 * page URLs (/ui/jobs/…, /ui/results/…) are permalinks the browser can reload.
 */

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * The UI loads nothing from elsewhere and runs no inline script: a strict policy makes an
 * injected `<script>` (say, from a job's input echoed into the page) inert.
 */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // Revalidate every time (ETag): a new build is picked up without stale modules.
  'cache-control': 'no-cache',
} as const;

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

export interface UiOptions {
  /** The folder holding index.html and assets/. */
  readonly dir: string;
  /** Tells the UI whether to ask for an org id or a Bearer credential (API key, or a JWT in jwt mode). */
  readonly authMode: Config['auth']['mode'];
  /** Analyzer names for the submit form. */
  readonly analyzers: () => readonly string[];
}

const REL = 'ui';

/**
 * The `ui/` folder of the package. `tsc` does not copy it (it is not TypeScript), so, like the
 * SQLite migrations, it is found by walking up from this file: from src/http/routes/ under
 * vitest, from dist/src/http/routes/ when built. Null when the package ships without it.
 */
export function uiDir(): string | null {
  let dir = fileURLToPath(new URL('.', import.meta.url));
  for (let i = 0; i < 8; i++) {
    const candidate = join(dir, REL);
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return null;
}

/** Reads every servable file once, keyed by its URL path below /ui/ (e.g. `assets/app.js`). */
function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const type = CONTENT_TYPES[extname(entry.name)];
    if (type === undefined) continue;
    const full = join(entry.parentPath, entry.name);
    const body = readFileSync(full);
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    assets.set(relative(dir, full).split(sep).join('/'), { body, type, etag });
  }
  return assets;
}

export function uiRoutes(app: FastifyInstance, opts: UiOptions): void {
  const assets = loadAssets(opts.dir);
  const shell = assets.get('index.html');
  if (shell === undefined) throw new UpshiftError('INTERNAL', `web UI folder ${opts.dir} has no index.html`);

  const send = (ifNoneMatch: string | undefined, reply: FastifyReply, asset: Asset): FastifyReply => {
    reply.headers(SECURITY_HEADERS).header('etag', asset.etag);
    if (ifNoneMatch === asset.etag) return reply.code(304).send();
    return reply.type(asset.type).send(asset.body);
  };
  const hide = { schema: { hide: true } } as const;

  // `/` is no API route: send people who open the server in a browser to the UI.
  app.get('/', hide, (_request, reply) => reply.redirect('/ui/', 302));
  app.get('/ui', hide, (_request, reply) => reply.redirect('/ui/', 302));

  // What the UI needs before its first API call; no tenant data, no secrets.
  app.get('/ui/config.json', hide, (_request, reply) =>
    reply.headers(SECURITY_HEADERS).send({ auth_mode: opts.authMode, analyzers: [...opts.analyzers()].sort() }),
  );

  app.get<{ Params: { '*': string } }>('/ui/assets/*', hide, (request, reply) => {
    const asset = assets.get(`assets/${request.params['*']}`);
    if (asset === undefined) throw new UpshiftError('ROUTE_NOT_FOUND', `no UI asset ${request.params['*']}`);
    return send(request.headers['if-none-match'], reply, asset);
  });

  app.get('/ui/*', hide, (request, reply) => send(request.headers['if-none-match'], reply, shell));
}
