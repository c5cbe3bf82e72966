import { Command } from 'commander';
import { coerceError } from '../core/errors.js';
import { addConfigFlags, configFromFlags } from './configFlags.js';
import { EXIT, type CliIo } from './io.js';
import type { Runner } from './runner.js';

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
  logger.info(
    { role, url, store: upshift.store.kind, dispatch: config.dispatch.mode, auth_mode: config.auth.mode, worker: config.worker.enabled, analyzers: upshift.registry.names() },
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
