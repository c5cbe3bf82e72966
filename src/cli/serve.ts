import { createServer, type Server } from 'node:http';
import { Command } from 'commander';
import { coerceError } from '../core/errors.js';
import { addConfigFlags, configFromFlags } from './configFlags.js';
import { EXIT, type CliIo } from './io.js';
import type { Runner } from './runner.js';
import type { HttpMetrics } from '../ports/metrics.js';

/** Signals that stop the server; the first drains, a second one exits at once. */
const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;
/** How long past the shutdown grace we wait for close() before giving up on a clean exit. */
const CLOSE_SLACK_MS = 5_000;

/** What one process runs: `serve` both, `api` the HTTP API only, `worker` the workers only. */
export type ProcessRole = 'serve' | 'api' | 'worker';

const ROLE_DESCRIPTION: Record<ProcessRole, string> = {
  serve: 'run the HTTP API and the workers in one process',
  api: 'run the HTTP API only (no workers; scale mode: pair with `upshift worker` processes)',
  worker: 'run the workers only (no HTTP listener; scale mode: pair with `upshift api` processes)',
};

export function serveCommand(io: CliIo, run: Runner, role: ProcessRole = 'serve'): Command {
  return addConfigFlags(new Command(role).description(ROLE_DESCRIPTION[role])).action(run((opts: Record<string, unknown>) => serve(opts, io, role)));
}

/**
 * Starts Upshift and resolves with the exit code once it has stopped: 0 after a graceful
 * shutdown (stop accepting, drain workers within UPSHIFT_SHUTDOWN_GRACE_MS, release the rest
 * back to the queue), 1 when shutdown failed or overran the grace by more than a few seconds.
 */
export async function serve(opts: Readonly<Record<string, unknown>>, io: CliIo, role: ProcessRole = 'serve'): Promise<number> {
  // The role decides whether this process runs workers, whatever UPSHIFT_WORKER_ENABLED says.
  const env = role === 'serve' ? io.env : { ...io.env, UPSHIFT_WORKER_ENABLED: role === 'worker' ? 'true' : 'false' };
  const config = configFromFlags(opts, env);
  // Loaded on demand: client commands must not pay for the server stack (fastify, SQLite).
  const { createUpshift } = await import('../main.js');
  const upshift = await createUpshift({ config, http: role !== 'worker' });
  const { logger } = upshift;
  let url: string | null;
  try {
    url = await upshift.start();
  } catch (e) {
    await upshift.close().catch(() => undefined);
    throw e;
  }
  // A worker has no API; with UPSHIFT_HEALTH_PORT it answers probes (liveness, readiness).
  let health: Server | null = null;
  if (role === 'worker' && config.healthPort > 0) {
    try {
      health = await listenHealth(config.host, config.healthPort, () => upshift.readiness(), upshift.metrics);
    } catch (e) {
      await upshift.close().catch(() => undefined);
      throw e;
    }
    url = `http://${config.host}:${config.healthPort}`;
  }
  logger.info(
    {
      role,
      url,
      store: upshift.store.kind,
      // Which SQLite writer `auto` resolved to for this role (docs/configuration.md).
      ...(upshift.sqliteWriter !== null && { sqlite_writer: upshift.sqliteWriter }),
      // The Node flags this process runs with (bin/upshift.js adds Upshift's, see nodeFlags.ts).
      node_flags: process.execArgv.join(' '),
      dispatch: config.dispatch.mode, auth_mode: config.auth.mode,
      worker: config.worker.enabled,
      analyzers: upshift.registry.names(),
    },
    role === 'worker' ? 'worker running' : 'listening',
  );

  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting without draining');
        process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
      }
      stopping = true;
      const graceMs = config.worker.shutdownGraceMs;
      logger.info({ signal, grace_ms: graceMs }, 'shutting down: no new work, draining running jobs');
      const overrun = setTimeout(() => {
        logger.error({ grace_ms: graceMs }, 'shutdown did not finish in time; exiting');
        resolve(EXIT.failure);
      }, graceMs + CLOSE_SLACK_MS);
      overrun.unref();
      health?.close();
      upshift.close().then(
        () => {
          clearTimeout(overrun);
          for (const s of STOP_SIGNALS) process.off(s, onSignal);
          logger.info({}, 'stopped');
          resolve(EXIT.ok);
        },
        (e: unknown) => {
          clearTimeout(overrun);
          logger.error({ err: coerceError(e) }, 'shutdown failed');
          resolve(EXIT.failure);
        },
      );
    };
    for (const s of STOP_SIGNALS) process.on(s, onSignal);
  });
}

/**
 * GET /health (200 while the process runs), GET /ready (200 or 503 with the checks) and
 * GET /metrics (this worker's Prometheus registry: its slots, busy slots, settled attempts —
 * numbers only a worker process has; docs/metrics.md).
 */
function listenHealth(
  host: string,
  port: number,
  readiness: () => Promise<{ ok: boolean; checks: Record<string, string> }>,
  metrics: Pick<HttpMetrics, 'scrape' | 'contentType'>,
): Promise<Server> {
  const server = createServer((req, res) => {
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return reply(405, { status: 'method not allowed' });
    if (req.url === '/health') return reply(200, { status: 'ok' });
    if (req.url === '/metrics') {
      metrics.scrape().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' }).end(text),
        (e: unknown) => reply(500, { status: 'metrics unavailable', error: coerceError(e).message }),
      );
      return;
    }
    if (req.url !== '/ready') return reply(404, { status: 'not found' });
    readiness().then(
      (r) => reply(r.ok ? 200 : 503, { status: r.ok ? 'ready' : 'not ready', checks: r.checks }),
      (e: unknown) => reply(503, { status: 'not ready', checks: { error: coerceError(e).message } }),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
