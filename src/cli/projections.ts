import { randomBytes } from 'node:crypto';
import { Command } from 'commander';
import { ProjectionRunner } from '../app/projectionRunner.js';
import { projectionStatus, PROJECTIONS, rebuildProjection, verifyProjection, type RebuildReport } from '../app/projections.js';
import { parseOrgId, type OrgId } from '../core/ids.js';
import { isProjectionName, PROJECTION_NAMES, type ProjectionName } from '../core/projection.js';
import { silentLogger } from '../ports/logger.js';
import { systemClock } from '../ports/clock.js';
import { addConfigFlags, STORE_FLAG_KEYS } from './configFlags.js';
import { CliError, EXIT, writeJson, type CliIo } from './io.js';
import type { Runner } from './runner.js';
import { withStore } from './storeAccess.js';

/**
 * `upshift projections rebuild | status | verify` (SPEC §5, docs/projections.md), directly on
 * the store; safe while servers and workers run (the rebuild takes the projection's lease and
 * swaps its states atomically). Output is JSON on stdout. verify exits 1 on a mismatch and 4
 * when the projection stayed behind the head (no runner catching up); bad flags exit 2.
 */
export const EXIT_LAGGING = 4;

export function projectionsCommand(io: CliIo, run: Runner): Command {
  const cmd = new Command('projections').description('event-sourced read models: rebuild from the event log, status, parity check');
  const sub = (name: string, description: string): Command =>
    addConfigFlags(
      new Command(name).description(description).option('--projection <name>', `one of ${PROJECTION_NAMES.join(', ')}`, 'dashboard_stats'),
      STORE_FLAG_KEYS,
    );
  const ownerId = (): string => `cli_${process.pid}_${randomBytes(4).toString('hex')}`;

  cmd.addCommand(
    sub('rebuild', 'replay the event log from position 0 into fresh state and swap it in (resets the checkpoint to the head)')
      .option('--org <org>', 'rebuild only this org (the checkpoint stays where it is)')
      .action(
        run(async (opts: Flags) => {
          const name = projectionOf(opts);
          const org = orgOf(opts);
          const report = await withStore(opts, io.env, async (store) => {
            await store.ping();
            return rebuildProjection({ store, clock: systemClock }, name, org, ownerId()) as Promise<RebuildReport>;
          });
          writeJson(io.stdout, report);
          return EXIT.ok;
        }),
      ),
  );

  cmd.addCommand(
    sub('status', 'checkpoint, head, lag and lease of the projection').action(
      run(async (opts: Flags) => {
        const name = projectionOf(opts);
        const status = await withStore(opts, io.env, async (store) => {
          await store.ping();
          return projectionStatus({ store, clock: systemClock }, name);
        });
        writeJson(io.stdout, status);
        return EXIT.ok;
      }),
    ),
  );

  cmd.addCommand(
    sub('verify', 'recompute the stats from the job rows and compare them with the projection (exit 1 on a mismatch)')
      .option('--org <org>', 'check only this org')
      .option('--wait-ms <n>', 'how long to wait for the projection to reach the head (default 20000)')
      .action(
        run(async (opts: Flags) => {
          const name = projectionOf(opts);
          const org = orgOf(opts);
          const waitMs = opts.waitMs === undefined ? undefined : Number(opts.waitMs);
          if (waitMs !== undefined && (!Number.isSafeInteger(waitMs) || waitMs < 0 || waitMs > 3_600_000)) {
            throw new CliError(`--wait-ms must be an integer in [0, 3600000], got ${JSON.stringify(opts.waitMs)}`, EXIT.usage);
          }
          const report = await withStore(opts, io.env, async (store) => {
            await store.ping();
            // Catches up itself when no other runner holds the lease (CAS-safe next to a server's runner).
            const deps = { store, clock: systemClock };
            const runner = new ProjectionRunner({
              ...deps,
              projection: PROJECTIONS[name],
              logger: silentLogger,
              ownerId: ownerId(),
              leaseMs: 1,
              // Never built: build it with the rebuild's seeds, as a server's runner would.
              rebuild: (opts) => rebuildProjection(deps, name, null, ownerId(), opts),
            });
            return verifyProjection(deps, name, org, { catchUp: () => runner.catchUp(), ...(waitMs !== undefined && { waitMs }) });
          });
          writeJson(io.stdout, report);
          if (report.status === 'mismatch') throw new CliError(`projection ${name} differs from the source tables for ${report.differences.length} org(s)`);
          if (report.status === 'lagging') {
            throw new CliError(`projection ${name} kept unapplied events of ${report.orgs_lagging.length} org(s) (position ${report.position} < head ${report.head}); is a runner stuck?`, EXIT_LAGGING);
          }
          return EXIT.ok;
        }),
      ),
  );
  return cmd;
}

type Flags = { projection: string; org?: string; waitMs?: string } & Record<string, unknown>;

function projectionOf(opts: Flags): ProjectionName {
  if (!isProjectionName(opts.projection)) throw new CliError(`--projection must be one of ${PROJECTION_NAMES.join(', ')}, got ${JSON.stringify(opts.projection)}`, EXIT.usage);
  return opts.projection;
}

function orgOf(opts: Flags): OrgId | null {
  if (opts.org === undefined) return null;
  try {
    return parseOrgId(opts.org);
  } catch {
    throw new CliError(`--org must be a valid org id, got ${JSON.stringify(opts.org)}`, EXIT.usage);
  }
}
