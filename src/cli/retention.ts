import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Command } from 'commander';
import { RETENTION_DEFAULTS, runRetention } from '../app/retention.js';
import type { RetentionReport } from '../core/retention.js';
import { systemClock } from '../ports/clock.js';
import { addConfigFlags, configFromFlags, STORE_FLAG_KEYS } from './configFlags.js';
import { CliError, EXIT, intFlag, type CliIo } from './io.js';
import type { Runner } from './runner.js';

interface RetentionFlags {
  readonly resultsTtlSeconds: string;
  readonly eventsTtlSeconds: string;
  readonly notificationsTtlSeconds?: string;
  readonly dryRun?: boolean;
  readonly outputJson?: string;
  readonly storeFile?: string;
  readonly database?: string;
  readonly batchSize?: string;
  readonly maxRowsPerBatch?: string;
  readonly pauseMs?: string;
  readonly now?: string;
}

/** Largest TTL accepted: 100 years. */
const MAX_TTL_SECONDS = 3_153_600_000;
/** How far in the future --now may lie (clock skew between hosts), so it cannot widen the cutoff. */
const NOW_SKEW_MS = 60_000;

/**
 * `upshift retention`: one retention run directly on the store (SPEC §4.2). Prints the JSON
 * report on stdout (and to --output-json). Exit 0 when the run completed; 1 when it failed
 * or was interrupted (the partial report is still written); 2 for bad flags.
 */
export function retentionCommand(io: CliIo, run: Runner): Command {
  const cmd = new Command('retention')
    .description('delete results, event logs and (with a TTL) notifications of terminal jobs older than their TTL (job rows are kept)')
    .requiredOption('--results-ttl-seconds <n>', 'delete results (partials and final) of jobs finished at least this long ago')
    .requiredOption('--events-ttl-seconds <n>', 'delete event logs of jobs finished at least this long ago')
    .option(
      '--notifications-ttl-seconds <n>',
      'delete in-app notifications and settled webhook deliveries (the delivery log) of jobs finished at least this long ago; without it they are kept',
    )
    .option('--dry-run', 'count only: report what a live run would delete, change nothing')
    .option('--output-json <file>', 'also write the JSON report to this file (parent folders are created)')
    .option('--store-file <file>', 'the SQLite store file (same as --database sqlite:<file>); must exist')
    .option('--batch-size <n>', `jobs per scan step and at most per delete transaction (default ${RETENTION_DEFAULTS.batchSize})`)
    .option('--max-rows-per-batch <n>', `rows deleted at most per transaction (default ${RETENTION_DEFAULTS.maxRowsPerBatch})`)
    .option('--pause-ms <n>', `pause between transactions (default ${RETENTION_DEFAULTS.pauseMs})`)
    .option('--now <iso>', 'count the TTLs back from this instant instead of the current time (not in the future); pins a dry run and the live run to the same cutoffs');
  return addConfigFlags(cmd, STORE_FLAG_KEYS).action(run((opts: RetentionFlags & Record<string, unknown>) => retention(opts, io)));
}

async function retention(opts: RetentionFlags & Record<string, unknown>, io: CliIo): Promise<number> {
  const resultsTtl = intFlag('--results-ttl-seconds', opts.resultsTtlSeconds, 0, MAX_TTL_SECONDS);
  const eventsTtl = intFlag('--events-ttl-seconds', opts.eventsTtlSeconds, 0, MAX_TTL_SECONDS);
  const notificationsTtl = opts.notificationsTtlSeconds === undefined ? null : intFlag('--notifications-ttl-seconds', opts.notificationsTtlSeconds, 0, MAX_TTL_SECONDS);
  const batchSize = opts.batchSize === undefined ? undefined : intFlag('--batch-size', opts.batchSize, 1, 100_000);
  const maxRows = opts.maxRowsPerBatch === undefined ? undefined : intFlag('--max-rows-per-batch', opts.maxRowsPerBatch, 1, 1_000_000);
  const pauseMs = opts.pauseMs === undefined ? undefined : intFlag('--pause-ms', opts.pauseMs, 0, 60_000);
  const now = opts.now === undefined ? systemClock.now() : parseNow(opts.now);
  if (opts.storeFile !== undefined && opts.database !== undefined) throw new CliError('give either --store-file or --database, not both', EXIT.usage);
  if (opts.storeFile !== undefined && opts.storeFile.trim() === '') throw new CliError('--store-file must name a file', EXIT.usage);
  const config = configFromFlags(opts.storeFile === undefined ? opts : { ...opts, database: `sqlite:${resolve(opts.storeFile)}` }, io.env);
  if (config.database.kind === 'sqlite' && config.database.file !== ':memory:' && !existsSync(config.database.file)) {
    // Opening would create an empty database, and "0 deleted" from the wrong file looks like success.
    throw new CliError(`store file ${config.database.file} does not exist; refusing to create an empty database (check --store-file / --database / --data-dir)`);
  }
  const output = opts.outputJson === undefined ? null : resolve(opts.outputJson);
  if (output) mkdirSync(dirname(output), { recursive: true });

  const { createStore } = await import('../main.js');
  const store = createStore(config);
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let report: RetentionReport;
  try {
    // Never migrates: an old schema is the operator's call (`upshift migrate`), a newer one is refused.
    await store.ping();
    report = await runRetention(
      { store, clock: systemClock },
      {
        now,
        resultsTtlMs: resultsTtl * 1000,
        eventsTtlMs: eventsTtl * 1000,
        notificationsTtlMs: notificationsTtl === null ? null : notificationsTtl * 1000,
        dryRun: opts.dryRun === true,
        signal: abort.signal,
        ...(batchSize !== undefined && { batchSize }),
        ...(maxRows !== undefined && { maxRowsPerBatch: maxRows }),
        ...(pauseMs !== undefined && { pauseMs }),
      },
    );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await store.close();
  }
  const text = `${JSON.stringify(report, null, 2)}\n`;
  io.stdout.write(text);
  if (output) {
    try {
      // Write-then-rename: a reader (dashboard, next run's comparison) never sees half a report.
      const tmp = `${output}.${process.pid}.tmp`;
      writeFileSync(tmp, text);
      renameSync(tmp, output);
    } catch (e) {
      throw new CliError(`cannot write the report to ${output}: ${(e as Error).message}`);
    }
  }
  if (!report.completed) throw new CliError('retention was interrupted before it examined every job; the report covers the part that ran');
  return EXIT.ok;
}

function parseNow(raw: string): number {
  const t = /^\d{4}-\d{2}-\d{2}T/.test(raw) ? Date.parse(raw) : NaN;
  if (!Number.isFinite(t) || t < 0) throw new CliError(`--now must be an ISO-8601 date-time (2026-01-31T00:00:00Z), got ${JSON.stringify(raw)}`, EXIT.usage);
  if (t > Date.now() + NOW_SKEW_MS) throw new CliError('--now must not be in the future', EXIT.usage);
  return t;
}
